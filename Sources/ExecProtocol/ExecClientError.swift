/// Why an `ExecClient` call failed.
public enum ExecClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The client could not connect to execd's socket.
    case connectFailed(socketPath: String, reason: String)
    /// execd answered with an error response; `message` says what was wrong and what to do.
    case server(code: Execd_V1_ErrorCode, message: String)
    /// The connection is gone (closed by either side, or failed); requests in flight on it have failed.
    case connectionClosed(reason: String)
    /// No response arrived within the client-side timeout; the request was cancelled on the server.
    case timeout(Duration)
    /// The request serializes to more than the frame limit; it was not sent and the connection is still usable.
    case requestTooLarge(bytes: UInt64, limit: Int)
    /// The server broke the protocol (wrong reply kind, undecodable or oversized frame, unknown version).
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .connectFailed(let socketPath, let reason):
            return "cannot connect to execd at \(socketPath): \(reason) (is execd running? "
                + "set EXECD_SOCKET to its socket path)"
        case .server(let code, let message):
            return "execd error \(code): \(message)"
        case .connectionClosed(let reason):
            return "connection to execd closed: \(reason)"
        case .timeout(let timeout):
            return "no response from execd within \(timeout)"
        case .requestTooLarge(let bytes, let limit):
            return "request of \(ByteCountText(bytes)) exceeds the \(ByteCountText(UInt64(limit))) frame limit; "
                + "send less code, stdin or files"
        case .protocolViolation(let detail):
            return "execd protocol violation: \(detail)"
        }
    }
}
