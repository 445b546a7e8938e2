import NIOCore

/// Server side: answers a framing violation with an error `Response` (id 0) and closes the connection.
///
/// Installed after the codec, so the error response goes through the same encoder as every other response.
/// The violation is passed on so the server's own handler can log it; that handler need not (and should not)
/// close the connection itself, or the error response might be cut off.
final class ConnectionErrorResponder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Execd_V1_Request
    typealias InboundOut = Execd_V1_Request
    typealias OutboundOut = Execd_V1_Response

    private var closing = false

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !self.closing, let violation = error as? ExecProtocolError, let code = violation.errorCode {
            self.closing = true
            let response = Execd_V1_Response.error(
                id: ExecProtocol.connectionErrorID,
                code: code,
                message: violation.description
            )
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(response)).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
        context.fireErrorCaught(error)
    }
}

@available(*, unavailable)
extension ConnectionErrorResponder: Sendable {}
