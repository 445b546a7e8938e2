extension Execd_V1_Response {
    /// A response carrying an error instead of a result.
    ///
    /// - Parameters:
    ///   - id: the id of the request it answers, or `ExecProtocol.connectionErrorID` for a connection-level error.
    ///   - message: what was wrong and what to do, e.g. "frame of 40 MiB exceeds the 16 MiB limit".
    public static func error(id: UInt64, code: Execd_V1_ErrorCode, message: String) -> Execd_V1_Response {
        var response = Execd_V1_Response()
        response.id = id
        response.error = Execd_V1_Error(code: code, message: message)
        return response
    }
}

extension Execd_V1_Error {
    /// An error with its code and human-readable message.
    public init(code: Execd_V1_ErrorCode, message: String) {
        self.init()
        self.code = code
        self.message = message
    }
}
