import NIOCore
import NIOExtras
import SwiftProtobuf

/// Turns frame bodies into protobuf messages (inbound) and messages into frame bodies (outbound).
///
/// Sits between NIOExtras' length-field handlers (below) and the message handlers (above). A body that does not
/// decode fires `ExecProtocolError.malformedFrame` and every later frame is dropped: after a framing error the
/// stream cannot be trusted and the connection is being closed. An outbound message larger than `maxFrameBytes`
/// fails its write promise with `ExecProtocolError.frameTooLarge` and is not sent, so the writer can report it.
final class ProtobufCodec<Inbound: SwiftProtobuf.Message, Outbound: SwiftProtobuf.Message>: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Inbound
    typealias OutboundIn = Outbound
    typealias OutboundOut = ByteBuffer

    private let maxFrameBytes: Int
    private var failed = false

    init(maxFrameBytes: Int) {
        self.maxFrameBytes = maxFrameBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.failed else { return }
        let frame = self.unwrapInboundIn(data)
        let message: Inbound
        do {
            message = try Inbound(serializedBytes: ProtobufBytes(frame))
        } catch {
            self.failed = true
            let violation = ExecProtocolError.malformedFrame(
                message: Inbound.protoMessageName,
                reason: "\(frame.readableBytes) bytes: \(String(reflecting: error))"
            )
            context.fireErrorCaught(violation)
            return
        }
        context.fireChannelRead(self.wrapInboundOut(message))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case is NIOExtrasErrors.LeftOverBytesError:
            // The decoder's view of a truncated frame; FrameLengthGuard already reported it with its size.
            return
        case ExecProtocolError.frameTooLarge:
            self.failed = true
        default:
            break
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let message = self.unwrapOutboundIn(data)
        let body: ProtobufBytes
        do {
            body = try message.serializedBytes()
        } catch {
            promise?.fail(error)
            return
        }
        guard body.count <= self.maxFrameBytes else {
            promise?.fail(ExecProtocolError.frameTooLarge(length: UInt64(body.count), limit: self.maxFrameBytes))
            return
        }
        context.write(self.wrapOutboundOut(body.buffer), promise: promise)
    }
}

@available(*, unavailable)
extension ProtobufCodec: Sendable {}

/// A `ByteBuffer` that SwiftProtobuf can decode from and serialize into directly, saving a copy per message.
struct ProtobufBytes: SwiftProtobufContiguousBytes {
    var buffer: ByteBuffer

    init(_ buffer: ByteBuffer) {
        self.buffer = buffer
    }

    init(repeating: UInt8, count: Int) {
        self.buffer = ByteBuffer(repeating: repeating, count: count)
    }

    init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        self.buffer = ByteBuffer(bytes: sequence)
    }

    var count: Int { self.buffer.readableBytes }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try self.buffer.withUnsafeReadableBytes(body)
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try self.buffer.withUnsafeMutableReadableBytes(body)
    }
}
