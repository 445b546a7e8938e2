import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import ExecProtocol

/// The server pipeline on a real Unix socket, driven by a raw byte client.
@Suite("Server pipeline on a real socket", .timeLimit(.minutes(1)))
struct ServerSocketTests {
    /// Connects, sends `bytes`, and returns everything received until the server closes the connection.
    static func exchangeRaw(_ bytes: [UInt8], with server: TestServer) async throws -> [UInt8] {
        let received = Box<[UInt8]>([])
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawCollector(received: received))
                }
            }
            .connect(unixDomainSocketPath: server.socketPath)
            .get()
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
        try await channel.closeFuture.get()
        return received.current
    }

    @Test("a 40 MiB header alone gets FRAME_TOO_LARGE and a close; the server's handler sees the violation")
    func oversizedHeader() async throws {
        let server = try await TestServer { _, _ in Issue.record("no request should get through") }
        let received = try await Self.exchangeRaw([0x02, 0x80, 0x00, 0x00], with: server)
        let responses = try decodeFrames(received, as: Execd_V1_Response.self)
        #expect(responses.map(\.id) == [0])
        #expect(responses.map(\.error.code) == [.frameTooLarge])
        #expect(responses.first?.error.message.hasPrefix("frame of 40 MiB exceeds the 16 MiB limit") == true)
        try await eventually { !server.errors.current.isEmpty }
        #expect(server.errors.current == [.frameTooLarge(length: 40 << 20, limit: 16 << 20)])
        await server.stop()
    }

    @Test("a garbage frame gets MALFORMED_FRAME and a close")
    func garbage() async throws {
        let server = try await TestServer { _, _ in Issue.record("no request should get through") }
        let received = try await Self.exchangeRaw(frame(Array("GET / HTTP/1.1\r\n".utf8)), with: server)
        let responses = try decodeFrames(received, as: Execd_V1_Response.self)
        #expect(responses.map(\.error.code) == [.malformedFrame])
        await server.stop()
    }

    @Test("a plain-text client is told about the framing (its first 4 bytes read as a huge length)")
    func plainText() async throws {
        let server = try await TestServer { _, _ in Issue.record("no request should get through") }
        let received = try await Self.exchangeRaw(Array("GET / HTTP/1.1\r\n\r\n".utf8), with: server)
        let responses = try decodeFrames(received, as: Execd_V1_Response.self)
        #expect(responses.map(\.error.code) == [.frameTooLarge])
        #expect(responses.first?.error.message.contains("4-byte big-endian length") == true)
        await server.stop()
    }
}

private final class RawCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let received: Box<[UInt8]>

    init(received: Box<[UInt8]>) {
        self.received = received
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        self.received.withLock { $0 += buffer.readableBytesView }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)  // e.g. ECONNRESET after the server closed with our bytes unread
    }
}
