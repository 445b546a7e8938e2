/// The execd wire protocol: constants and pipeline set-up.
///
/// Every message travels as one *frame*: a 4-byte big-endian unsigned length, then that many bytes of one
/// protobuf message (`Execd_V1_Request` client→server, `Execd_V1_Response` server→client). The full contract
/// (lifecycle, ids, error codes, compatibility) is in `docs/protocol.md`; the messages are in `Protos/execd.proto`.
public enum ExecProtocol {
    /// The protocol version this code speaks; sent in `Hello.protocol_version` and checked against `HelloReply`.
    public static let protocolVersion: UInt32 = 1

    /// Default limit on a frame's body (the protobuf message, excluding the 4-byte length): 16 MiB.
    public static let defaultMaxFrameBytes = 16 * 1024 * 1024

    /// Size of the big-endian length that precedes every frame body.
    public static let lengthFieldBytes = 4

    /// The smallest accepted `maxFrameBytes`: room for any error response (whose message may run to a few hundred
    /// bytes), so a connection-level error can always be sent.
    public static let smallestMaxFrameBytes = 1024

    /// The largest accepted `maxFrameBytes`: NIOExtras' `LengthFieldBasedFrameDecoder` refuses lengths above
    /// `Int32.max`.
    public static let largestPossibleMaxFrameBytes = Int(Int32.max)

    /// Response id used for connection-level errors (frame too large, malformed frame) that answer no request.
    /// Clients therefore number their requests from 1.
    public static let connectionErrorID: UInt64 = 0
}
