import NIOCore
import NIOExtras

extension ExecProtocol {
    /// Installs the server side of the protocol on an accepted connection.
    ///
    /// After this, the handler the server adds last receives one `Execd_V1_Request` per `channelRead` and writes
    /// `Execd_V1_Response` values; framing, size limits and protobuf coding are done. That handler:
    /// - answers every request with a response carrying the same `id` (any order; many may be in flight);
    /// - gets framing violations (`ExecProtocolError`) in `errorCaught`, for logging only: an oversized or
    ///   malformed frame has already been answered with an id-0 error response and the connection is closing;
    ///   a truncated frame means the peer left. It should not close the channel for these itself;
    /// - sees a failed write promise with `ExecProtocolError.frameTooLarge` if a response exceeds
    ///   `maxFrameBytes`, and should then answer `ERROR_CODE_INTERNAL` instead.
    ///
    /// Pipeline, head to tail: `FrameLengthGuard` → `ByteToMessageHandler(LengthFieldBasedFrameDecoder)` →
    /// `LengthFieldPrepender` → `ProtobufCodec<Request, Response>` → `ConnectionErrorResponder` → (yours).
    ///
    /// - Parameter maxFrameBytes: the largest frame body accepted or sent, between `smallestMaxFrameBytes` and
    ///   `largestPossibleMaxFrameBytes`; report it in `HelloReply.max_frame_bytes`.
    public static func configureServerPipeline(
        _ channel: any Channel,
        maxFrameBytes: Int = ExecProtocol.defaultMaxFrameBytes
    ) -> EventLoopFuture<Void> {
        Self.onEventLoop(of: channel) { try $0.addExecServerHandlers(maxFrameBytes: maxFrameBytes) }
    }

    /// Installs the client side of the protocol: the handler added last receives `Execd_V1_Response` and
    /// writes `Execd_V1_Request`. Framing violations by the server arrive in `errorCaught` as
    /// `ExecProtocolError`; the client should then fail its pending requests and close. `ExecClient` does this.
    public static func configureClientPipeline(
        _ channel: any Channel,
        maxFrameBytes: Int = ExecProtocol.defaultMaxFrameBytes
    ) -> EventLoopFuture<Void> {
        Self.onEventLoop(of: channel) { try $0.addExecClientHandlers(maxFrameBytes: maxFrameBytes) }
    }

    private static func onEventLoop(
        of channel: any Channel,
        _ body: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    ) -> EventLoopFuture<Void> {
        if channel.eventLoop.inEventLoop {
            return channel.eventLoop.makeCompletedFuture { try body(channel.pipeline.syncOperations) }
        }
        return channel.eventLoop.submit { try body(channel.pipeline.syncOperations) }
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// Synchronous form of `ExecProtocol.configureServerPipeline(_:maxFrameBytes:)`, for channel initializers.
    public func addExecServerHandlers(maxFrameBytes: Int = ExecProtocol.defaultMaxFrameBytes) throws {
        try self.addFramingHandlers(maxFrameBytes: maxFrameBytes)
        try self.addHandler(ProtobufCodec<Execd_V1_Request, Execd_V1_Response>(maxFrameBytes: maxFrameBytes))
        try self.addHandler(ConnectionErrorResponder())
    }

    /// Synchronous form of `ExecProtocol.configureClientPipeline(_:maxFrameBytes:)`, for channel initializers.
    public func addExecClientHandlers(maxFrameBytes: Int = ExecProtocol.defaultMaxFrameBytes) throws {
        try self.addFramingHandlers(maxFrameBytes: maxFrameBytes)
        try self.addHandler(ProtobufCodec<Execd_V1_Response, Execd_V1_Request>(maxFrameBytes: maxFrameBytes))
    }

    private func addFramingHandlers(maxFrameBytes: Int) throws {
        let accepted = ExecProtocol.smallestMaxFrameBytes...ExecProtocol.largestPossibleMaxFrameBytes
        precondition(accepted.contains(maxFrameBytes), "maxFrameBytes must be in \(accepted), got \(maxFrameBytes)")
        try self.addHandler(FrameLengthGuard(maxFrameBytes: maxFrameBytes))
        try self.addHandler(ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldBitLength: .fourBytes)))
        try self.addHandler(LengthFieldPrepender(lengthFieldBitLength: .fourBytes))
    }
}
