/// A violation of the framing layer, detected by the handlers that `ExecProtocol` installs in a pipeline.
///
/// These travel through the pipeline as `errorCaught` so the handler the server or client adds last can log
/// them; by the time that handler sees one, the protocol handlers have already answered (server side) and
/// started closing the connection. Each description says what was wrong and what to do.
public enum ExecProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A frame header announced `length` body bytes, more than `limit`; the body was never buffered.
    case frameTooLarge(length: UInt64, limit: Int)
    /// A frame's body did not decode as the expected protobuf message.
    case malformedFrame(message: String, reason: String)
    /// The peer closed the connection in the middle of a frame, `receivedBytes` into it.
    case truncatedFrame(receivedBytes: Int)

    public var description: String {
        switch self {
        case .frameTooLarge(let length, let limit):
            return "frame of \(ByteCountText(length)) exceeds the \(ByteCountText(UInt64(limit))) limit; "
                + "send less data per request (a huge length usually means the peer is not speaking the execd "
                + "protocol: a 4-byte big-endian length, then one protobuf message)"
        case .malformedFrame(let message, let reason):
            return "frame does not decode as an \(message) protobuf message (\(reason)); "
                + "each frame must be a 4-byte big-endian length followed by exactly one serialized \(message)"
        case .truncatedFrame(let receivedBytes):
            return "connection closed in the middle of a frame, \(receivedBytes) bytes into it"
        }
    }

    /// The wire error code the server sends for this violation, or `nil` if nothing is sent.
    public var errorCode: Execd_V1_ErrorCode? {
        switch self {
        case .frameTooLarge: return .frameTooLarge
        case .malformedFrame: return .malformedFrame
        case .truncatedFrame: return nil
        }
    }
}

/// Human-readable byte count: "512 bytes", "40 MiB", "16.5 MiB", "3 KiB", "1025 bytes".
struct ByteCountText: CustomStringConvertible, Sendable {
    let bytes: UInt64
    init(_ bytes: UInt64) { self.bytes = bytes }

    var description: String {
        let units: [(UInt64, String)] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, name) in units where self.bytes >= size {
            if self.bytes % size == 0 { return "\(self.bytes / size) \(name)" }
            // One decimal, rounded (integer math); exact bytes where rounding would hide the difference,
            // so "1025 bytes exceeds the 1 KiB limit" never reads as "1.0 KiB exceeds the 1 KiB limit".
            let tenths = (self.bytes % size * 10 + size / 2) / size
            if tenths == 0 || tenths == 10 { continue }
            return "\(self.bytes / size).\(tenths) \(name)"
        }
        return self.bytes == 1 ? "1 byte" : "\(self.bytes) bytes"
    }
}
