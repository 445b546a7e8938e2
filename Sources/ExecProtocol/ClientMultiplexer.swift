import NIOCore

/// Client side: matches responses to requests by id, so many requests can be in flight on one connection.
///
/// Outbound it takes a `Pending` (the request and the promise for its response); inbound it completes that
/// promise when the response with the same id arrives, in whatever order. Every promise it holds is completed
/// exactly once: by its response, by its timeout, by an `Abandon` event (task cancellation), or with the reason the
/// connection ended. (NIOExtras' `NIORequestResponseWithIDHandler` is close, but cannot drop one pending
/// request, and treats the server's id-0 connection error as an unknown id, losing its message.)
final class ClientMultiplexer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = Execd_V1_Response
    typealias OutboundIn = Pending
    typealias OutboundOut = Execd_V1_Request

    /// A request on its way out, the promise its response will complete, and how long to wait for it.
    struct Pending: Sendable {
        var request: Execd_V1_Request
        var promise: EventLoopPromise<Execd_V1_Response>
        var timeout: Duration?
    }

    private struct Waiter {
        var promise: EventLoopPromise<Execd_V1_Response>
        var timer: Scheduled<Void>?

        func fail(_ error: any Error) {
            self.timer?.cancel()
            self.promise.fail(error)
        }

        func succeed(_ response: Execd_V1_Response) {
            self.timer?.cancel()
            self.promise.succeed(response)
        }
    }

    /// Outbound user event: stop waiting for request `id` and fail it with `error`; a late response is dropped.
    /// Must be triggered after the request's write (both from the same thread, or on the event loop).
    struct Abandon: Sendable {
        var id: UInt64
        var error: any Error
    }

    private var pending: [UInt64: Waiter] = [:]
    /// Set once the connection is unusable: why, for requests still pending and any sent later.
    private var closedReason: ExecClientError?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let pending = self.unwrapOutboundIn(data)
        if let reason = self.closedReason {
            pending.promise.fail(reason)
            promise?.fail(reason)
            return
        }
        let id = pending.request.id
        precondition(self.pending[id] == nil, "request id \(id) is already in flight")
        // The timer starts here, not in the caller, so it cannot fire before the request is registered.
        let timer = pending.timeout.map { timeout in
            context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) { () -> Void in
                self.pending.removeValue(forKey: id)?.fail(ExecClientError.timeout(timeout))
            }
        }
        self.pending[id] = Waiter(promise: pending.promise, timer: timer)
        let written = promise ?? context.eventLoop.makePromise()
        written.futureResult.assumeIsolated().whenFailure { error in
            self.pending.removeValue(forKey: id)?.fail(Self.clientError(forWriteFailure: error))
        }
        context.write(self.wrapOutboundOut(pending.request), promise: written)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let response = self.unwrapInboundIn(data)
        guard response.id != ExecProtocol.connectionErrorID else {
            // The server rejected the connection as a whole (e.g. an oversized frame) and is closing it.
            let reason: ExecClientError
            if case .error(let error) = response.body {
                reason = .server(code: error.code, message: error.message)
            } else {
                reason = .protocolViolation("response with id 0 that is not an error")
            }
            self.shutDown(context: context, reason: reason)
            return
        }
        // No promise: the request was abandoned (timeout, cancellation); its late answer is not needed.
        self.pending.removeValue(forKey: response.id)?.succeed(response)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let reason: ExecClientError
        switch error {
        case ExecProtocolError.truncatedFrame:
            reason = .connectionClosed(reason: "\(error)")
        case let violation as ExecProtocolError:
            reason = .protocolViolation(violation.description)
        default:
            reason = .connectionClosed(reason: "\(error)")
        }
        self.shutDown(context: context, reason: reason)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.failAll(self.closedReason ?? .connectionClosed(reason: "execd closed the connection"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.failAll(self.closedReason ?? .connectionClosed(reason: "the client's pipeline was torn down"))
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let abandon = event as? Abandon else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        self.pending.removeValue(forKey: abandon.id)?.fail(abandon.error)
        promise?.succeed(())
    }

    private func shutDown(context: ChannelHandlerContext, reason: ExecClientError) {
        self.failAll(reason)
        context.close(promise: nil)
    }

    /// Fails every pending request with `reason`; requests sent later fail as "connection closed" because of it.
    private func failAll(_ reason: ExecClientError) {
        if self.closedReason == nil {
            if case .connectionClosed = reason {
                self.closedReason = reason
            } else {
                self.closedReason = .connectionClosed(reason: reason.description)
            }
        }
        let failed = self.pending
        self.pending.removeAll()
        for waiter in failed.values {
            waiter.fail(reason)
        }
    }

    static func clientError(forWriteFailure error: any Error) -> any Error {
        switch error {
        case let error as ExecClientError:
            return error
        case ExecProtocolError.frameTooLarge(let length, let limit):
            return ExecClientError.requestTooLarge(bytes: length, limit: limit)
        default:
            return ExecClientError.connectionClosed(reason: "\(error)")
        }
    }
}

@available(*, unavailable)
extension ClientMultiplexer: Sendable {}
