import ExecProtocol
import Foundation
import Logging
import NIOCore
import Synchronization

/// Serves one client connection: hello first, then any number of requests in flight, answered by id in any order.
/// A vanished client cancels its runs (their sandboxes are killed). Runs on the connection's event loop; work
/// happens in tasks that write their response back through the channel.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Execd_V1_Request
    typealias OutboundOut = Execd_V1_Response

    private let service: RequestService
    private var logger: Logger
    private var greeted = false
    /// Requests in flight by id: runs by their handle (started without a task), the rest by their task.
    private var inflight: [UInt64: Inflight] = [:]
    private enum Inflight {
        case run(RunHandle)
        case task(Task<Void, Never>)

        func cancel() {
            switch self {
            case .run(let handle): handle.cancel()
            case .task(let task): task.cancel()
            }
        }
    }
    /// Identifies this connection to the admission gate (round-robin between connections).
    private let connectionID = ConnectionHandler.ids.add(1, ordering: .relaxed).newValue
    private static let ids = Atomic<UInt64>(0)

    init(service: RequestService, logger: Logger) {
        self.service = service
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        PeerCredentials.of(context.channel)?.whenSuccess { peer in
            bound.value.logger[metadataKey: "peer"] = "pid=\(peer.pid) uid=\(peer.uid)"
            bound.value.logger.debug("connection opened")
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = unwrapInboundIn(data)
        guard greeted else {
            if case .hello(let hello) = request.body {
                let reply = service.hello(hello)
                respond(context, id: request.id, reply)
                if case .hello = reply { greeted = true } else { context.close(promise: nil) }
            } else {
                respond(context, id: request.id, .error(Execd_V1_Error(
                    code: .helloRequired, message: "the first request on a connection must be hello (protocol version \(ExecProtocol.protocolVersion))")))
            }
            return
        }
        switch request.body {
        case .hello(let hello):
            respond(context, id: request.id, service.hello(hello))
        case .cancel(let cancel):
            var reply = Execd_V1_CancelReply()
            if let request = inflight[cancel.targetID] {
                request.cancel()
                reply.found = true
            }
            respond(context, id: request.id, .cancel(reply))
        case .some(let body):
            guard inflight[request.id] == nil else {
                respond(context, id: request.id, .error(Execd_V1_Error(code: .badRequest, message: "request id \(request.id) is already in flight on this connection")))
                return
            }
            start(context, id: request.id, body: body, deadlineMs: request.deadlineMs)
        case .none:
            respond(context, id: request.id, .error(Execd_V1_Error(
                code: .badRequest, message: "unknown or empty request kind; this server speaks protocol version \(ExecProtocol.protocolVersion)")))
        }
    }

    private func start(_ context: ChannelHandlerContext, id: UInt64, body: Execd_V1_Request.OneOf_Body, deadlineMs: UInt64) {
        let channel = context.channel
        let loop = context.eventLoop
        let service = self.service
        let bound = NIOLoopBound(self, eventLoop: loop)
        let connectionID = self.connectionID
        let deadline = deadlineMs > 0 ? ContinuousClock.now + .milliseconds(Int64(clamping: deadlineMs)) : nil
        let answer: @Sendable (Execd_V1_Response.OneOf_Body) -> Void = { reply in
            let response = Execd_V1_Response.with {
                $0.id = id
                $0.body = reply
            }
            loop.execute {
                bound.value.inflight[id] = nil
                channel.writeAndFlush(response, promise: nil)
            }
        }
        if case .run(let run) = body {
            let handle = RunHandle()
            inflight[id] = .run(handle)
            service.submitRun(run, handle: handle, queueDeadline: deadline, client: connectionID, reply: answer)
            return
        }
        inflight[id] = .task(Task {
            answer(await service.handle(body, queueDeadline: deadline, client: connectionID))
        })
    }

    private func respond(_ context: ChannelHandlerContext, id: UInt64, _ body: Execd_V1_Response.OneOf_Body) {
        var response = Execd_V1_Response()
        response.id = id
        response.body = body
        context.writeAndFlush(wrapOutboundOut(response), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !inflight.isEmpty { logger.info("client went away; cancelling its runs", metadata: ["runs": "\(inflight.count)"]) }
        for request in inflight.values { request.cancel() }
        inflight.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Framing errors were already answered by the protocol layer, which closes the connection.
        logger.notice("connection error", metadata: ["error": "\(error)"])
    }
}
