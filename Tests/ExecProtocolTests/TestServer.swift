import Foundation
import NIOCore
import NIOPosix

@testable import ExecProtocol

/// One accepted connection of a `TestServer`, as seen by its script.
struct TestConnection: Sendable {
    let channel: any Channel

    func reply(_ response: Execd_V1_Response) {
        self.channel.writeAndFlush(response, promise: nil)
    }

    func reply(to request: Execd_V1_Request, _ body: Execd_V1_Response.OneOf_Body) {
        var response = Execd_V1_Response()
        response.id = request.id
        response.body = body
        self.reply(response)
    }

    func close() {
        self.channel.close(promise: nil)
    }
}

/// A tiny execd stand-in on a temporary Unix socket: the real server pipeline plus a scripted handler.
final class TestServer: Sendable {
    typealias Script = @Sendable (Execd_V1_Request, TestConnection) -> Void

    let socketPath: String
    /// Framing errors the server pipeline passed to the script's handler.
    let errors = Box<[ExecProtocolError]>([])
    private let channel: any Channel

    /// - Parameter answerHello: reply to hello with version 1 before the script sees anything else.
    init(
        maxFrameBytes: Int = ExecProtocol.defaultMaxFrameBytes,
        answerHello: Bool = true,
        script: @escaping Script
    )
        async throws
    {
        let socketPath = temporarySocketPath()
        let errors = self.errors
        self.socketPath = socketPath
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addExecServerHandlers(maxFrameBytes: maxFrameBytes)
                    let handler = ScriptedHandler(answerHello: answerHello, script: script, errors: errors)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true)
            .get()
    }

    func stop() async {
        try? await self.channel.close()
        unlink(self.socketPath)
    }

    static func helloReply(version: UInt32 = 1) -> Execd_V1_HelloReply {
        var reply = Execd_V1_HelloReply()
        reply.protocolVersion = version
        reply.serverVersion = "test"
        reply.maxFrameBytes = UInt64(ExecProtocol.defaultMaxFrameBytes)
        reply.languages = [.python, .javascript]
        return reply
    }
}

private final class ScriptedHandler: ChannelInboundHandler {
    typealias InboundIn = Execd_V1_Request
    typealias OutboundOut = Execd_V1_Response

    private let answerHello: Bool
    private let script: TestServer.Script
    private let errors: Box<[ExecProtocolError]>

    init(answerHello: Bool, script: @escaping TestServer.Script, errors: Box<[ExecProtocolError]>) {
        self.answerHello = answerHello
        self.script = script
        self.errors = errors
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = self.unwrapInboundIn(data)
        let connection = TestConnection(channel: context.channel)
        if self.answerHello, case .hello = request.body {
            connection.reply(to: request, .hello(TestServer.helloReply()))
        } else {
            self.script(request, connection)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? ExecProtocolError {
            self.errors.withLock { $0.append(error) }
        }
    }
}
