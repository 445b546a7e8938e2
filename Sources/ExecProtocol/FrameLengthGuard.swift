import NIOCore

/// Rejects a frame whose announced length exceeds the limit *before* its body is buffered.
///
/// NIOExtras' `LengthFieldBasedFrameDecoder` (1.35) has no maximum-length option: it would accumulate the whole
/// announced body (up to 2 GiB) in memory first. This handler sits in front of it and only follows frame
/// boundaries (it counts bytes, it never buffers): it reads each 4-byte header as it streams past, forwards the
/// bytes untouched, and on an oversized header forwards what came before it, fires
/// `ExecProtocolError.frameTooLarge` and drops everything after. It also reports a connection that ends inside
/// a frame as `ExecProtocolError.truncatedFrame`.
final class FrameLengthGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State {
        /// Collecting a header; `value` holds the `count` bytes seen so far.
        case header(value: UInt64, count: Int)
        /// Inside a body with `remaining` bytes still to come (of `length`).
        case body(remaining: Int, length: Int)
        /// An oversized frame was seen; the connection is being closed and input is ignored.
        case rejected
    }

    private let maxFrameBytes: Int
    private var state: State = .header(value: 0, count: 0)

    init(maxFrameBytes: Int) {
        self.maxFrameBytes = maxFrameBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        let start = buffer.readerIndex
        while buffer.readableBytes > 0 {
            switch self.state {
            case .rejected:
                return
            case .body(let remaining, let length):
                let skipped = min(remaining, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: skipped)
                if skipped == remaining {
                    self.state = .header(value: 0, count: 0)
                } else {
                    self.state = .body(remaining: remaining - skipped, length: length)
                }
            case .header(var value, var count):
                while count < ExecProtocol.lengthFieldBytes, let byte = buffer.readInteger(as: UInt8.self) {
                    value = value << 8 | UInt64(byte)
                    count += 1
                }
                if count < ExecProtocol.lengthFieldBytes {
                    self.state = .header(value: value, count: count)
                } else if value > UInt64(self.maxFrameBytes) {
                    self.reject(context: context, length: value, validPrefix: buffer, start: start)
                    return
                } else if value == 0 {
                    self.state = .header(value: 0, count: 0)  // an empty message: no body to skip
                } else {
                    self.state = .body(remaining: Int(value), length: Int(value))
                }
            }
        }
        buffer.moveReaderIndex(to: start)
        context.fireChannelRead(self.wrapInboundOut(buffer))
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch self.state {
        case .header(_, let count) where count > 0:
            context.fireErrorCaught(ExecProtocolError.truncatedFrame(receivedBytes: count))
        case .body(let remaining, let length):
            context.fireErrorCaught(
                ExecProtocolError.truncatedFrame(receivedBytes: ExecProtocol.lengthFieldBytes + length - remaining)
            )
        case .header, .rejected:
            break
        }
        self.state = .header(value: 0, count: 0)
        context.fireChannelInactive()
    }

    /// Forwards the complete frames that preceded the oversized header, then reports it.
    private func reject(context: ChannelHandlerContext, length: UInt64, validPrefix buffer: ByteBuffer, start: Int) {
        self.state = .rejected
        let headerStart = buffer.readerIndex - ExecProtocol.lengthFieldBytes
        if headerStart > start {
            var prefix = buffer
            prefix.moveReaderIndex(to: start)
            prefix.moveWriterIndex(to: headerStart)
            context.fireChannelRead(self.wrapInboundOut(prefix))
        }
        context.fireErrorCaught(ExecProtocolError.frameTooLarge(length: length, limit: self.maxFrameBytes))
    }
}

@available(*, unavailable)
extension FrameLengthGuard: Sendable {}
