import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import ExecProtocol

@Suite("Frame codec")
struct FrameCodecTests {
    static let helloRequest: Execd_V1_Request = {
        var request = Execd_V1_Request()
        request.id = 1
        request.hello = .with {
            $0.protocolVersion = 1
            $0.clientName = "t"
        }
        return request
    }()
    /// length 9 | id=1 | field 2 (hello), 5 bytes: protocol_version=1, client_name="t"
    static let helloFrame: [UInt8] = [0, 0, 0, 9, 0x08, 0x01, 0x12, 0x05, 0x08, 0x01, 0x12, 0x01, 0x74]

    static let golden7Run: Execd_V1_Request = {
        var request = Execd_V1_Request()
        request.id = 7
        request.run = runRequest("print(1)")
        request.deadlineMs = 250
        return request
    }()
    /// length 20 | id=7 | field 3 (run), 12 bytes: language=1, code="print(1)" | field 16 deadline_ms=250
    static let runFrame: [UInt8] =
        [0, 0, 0, 20, 0x08, 0x07, 0x1A, 0x0C, 0x08, 0x01, 0x12, 0x08]
        + Array("print(1)".utf8) + [0x80, 0x01, 0xFA, 0x01]

    @Test(
        "a Request encodes to the exact golden frame",
        arguments: [
            (helloRequest, helloFrame), (golden7Run, runFrame),
        ]
    )
    func goldenRequestEncoding(request: Execd_V1_Request, golden: [UInt8]) throws {
        let client = try makeClientChannel()
        try client.writeOutbound(request)
        #expect(try drainOutbound(client) == golden)
    }

    @Test(
        "the golden frame decodes to the Request",
        arguments: [
            (helloRequest, helloFrame), (golden7Run, runFrame),
        ]
    )
    func goldenRequestDecoding(request: Execd_V1_Request, golden: [UInt8]) throws {
        let server = try makeServerChannel()
        try server.writeInbound(buffer(golden))
        #expect(try server.readInbound(as: Execd_V1_Request.self) == request)
        #expect(try server.readInbound(as: Execd_V1_Request.self) == nil)
    }

    @Test("an error Response encodes to the exact golden frame")
    func goldenErrorResponse() throws {
        let server = try makeServerChannel()
        try server.writeOutbound(Execd_V1_Response.error(id: 0, code: .frameTooLarge, message: "x"))
        // length 7 | field 15 (error), 5 bytes: code=3, message="x"
        #expect(try drainOutbound(server) == [0, 0, 0, 7, 0x7A, 0x05, 0x08, 0x03, 0x12, 0x01, 0x78])
    }

    @Test("requests survive a byte-by-byte delivery; responses several frames per read")
    func roundTripFragmented() throws {
        var run = runRequest("import sys\nprint(sys.stdin.read())")
        run.stdin = Data("input\n".utf8)
        run.limits = .with {
            $0.cpuTimeMs = 1500
            $0.memoryBytes = 256 << 20
        }
        run.files = [
            .with {
                $0.path = "data/in.txt"
                $0.content = Data([0, 1, 2, 255])
                $0.executable = true
            }
        ]
        run.args = ["-v", "ü"]
        var requests = [Self.helloRequest, Self.golden7Run]
        requests.append(
            .with {
                $0.id = 9
                $0.run = run
            }
        )
        requests.append(
            .with {
                $0.id = 10
                $0.cancel = .with { $0.targetID = 9 }
            }
        )
        requests.append(.with { $0.id = 11 })  // empty body: valid protobuf, the server answers BAD_REQUEST

        let client = try makeClientChannel()
        for request in requests { try client.writeOutbound(request) }
        let server = try makeServerChannel()
        for byte in try drainOutbound(client) { try server.writeInbound(buffer([byte])) }
        for request in requests {
            #expect(try server.readInbound(as: Execd_V1_Request.self) == request)
        }
        #expect(try server.readInbound(as: Execd_V1_Request.self) == nil)

        var result = Execd_V1_RunResult()
        result.status = .runtimeError
        result.exitCode = 3
        result.stdout = Data(repeating: 0x61, count: 100_000)
        let responses: [Execd_V1_Response] = [
            .with {
                $0.id = 9
                $0.run = result
            },
            .with {
                $0.id = 1
                $0.hello = TestServer.helloReply()
            },
            .error(id: 10, code: .notFound, message: "no request 9"),
        ]
        for response in responses { try server.writeOutbound(response) }
        try client.writeInbound(buffer(try drainOutbound(server)))
        for response in responses {
            #expect(try client.readInbound(as: Execd_V1_Response.self) == response)
        }
    }

    @Test("a header announcing 40 MiB is answered and the connection closed before any body arrives")
    func oversizedHeaderRejectedBeforeBody() throws {
        let server = try makeServerChannel()
        let announced: UInt64 = 40 << 20
        #expect(throws: ExecProtocolError.frameTooLarge(length: announced, limit: 16 << 20)) {
            try server.writeInbound(buffer([0x02, 0x80, 0x00, 0x00]))
        }
        let responses = try decodeFrames(try drainOutbound(server), as: Execd_V1_Response.self)
        try #require(responses.count == 1)
        #expect(responses[0].id == 0)
        #expect(responses[0].error.code == .frameTooLarge)
        #expect(responses[0].error.message.hasPrefix("frame of 40 MiB exceeds the 16 MiB limit"))
        #expect(!server.isActive)
        #expect(try server.readInbound(as: Execd_V1_Request.self) == nil)
    }

    @Test("the limit is inclusive; frames before an oversized header in the same read are still delivered")
    func limitBoundary() throws {
        let limit = ExecProtocol.smallestMaxFrameBytes
        var request = Execd_V1_Request.with {
            $0.id = 1
            $0.run = runRequest(String(repeating: " ", count: limit))
        }
        var exactlyAtLimit: [UInt8] = try request.serializedBytes()
        while exactlyAtLimit.count > limit {  // shrink the code until the varint lengths settle
            request.run.code.removeLast(exactlyAtLimit.count - limit)
            exactlyAtLimit = try request.serializedBytes()
        }
        try #require(exactlyAtLimit.count == limit)

        let server = try makeServerChannel(maxFrameBytes: limit)
        let oversizedHeader: [UInt8] = [0, 0, 0x04, 0x01]  // limit + 1
        #expect(throws: ExecProtocolError.frameTooLarge(length: UInt64(limit) + 1, limit: limit)) {
            try server.writeInbound(buffer(frame(exactlyAtLimit) + oversizedHeader + [1, 2, 3]))
        }
        #expect(try server.readInbound(as: Execd_V1_Request.self) == request)
        #expect(try server.readInbound(as: Execd_V1_Request.self) == nil)
        let responses = try decodeFrames(try drainOutbound(server), as: Execd_V1_Response.self)
        #expect(responses.map(\.error.code) == [.frameTooLarge])
        #expect(responses.first?.error.message.hasPrefix("frame of 1025 bytes exceeds the 1 KiB limit") == true)
        #expect(!server.isActive)
    }

    @Test("garbage bytes get a MALFORMED_FRAME error, later frames are dropped, the connection closes")
    func garbageIsMalformed() throws {
        let server = try makeServerChannel()
        // 0xFF is field 31 with wire type 7, which does not exist: never a valid protobuf message.
        #expect(throws: ExecProtocolError.self) {
            try server.writeInbound(buffer(frame([0xFF, 0xFF, 0xFF, 0xFF]) + Self.helloFrame))
        }
        #expect(try server.readInbound(as: Execd_V1_Request.self) == nil)
        let responses = try decodeFrames(try drainOutbound(server), as: Execd_V1_Response.self)
        try #require(responses.count == 1)
        #expect(responses[0].id == 0)
        #expect(responses[0].error.code == .malformedFrame)
        #expect(responses[0].error.message.contains("execd.v1.Request"))
        #expect(!server.isActive)
    }

    @Test(
        "a connection closed mid-frame closes quietly and reports how far it got",
        arguments: [
            ([0, 0] as [UInt8], 2),  // inside the header
            ([0, 0, 0, 10, 1, 2, 3], 7),  // inside the body
            ([0, 0, 0, 10], 4),  // header complete, no body yet: the decoder holds no bytes, the guard still knows
        ]
    )
    func truncatedFrame(bytes: [UInt8], receivedBytes: Int) throws {
        let server = try makeServerChannel()
        try server.writeInbound(buffer(bytes))
        try server.close().wait()
        #expect(throws: ExecProtocolError.truncatedFrame(receivedBytes: receivedBytes)) {
            try server.throwIfErrorCaught()
        }
        #expect(try drainOutbound(server).isEmpty)
        #expect(try server.readInbound(as: Execd_V1_Request.self) == nil)
    }

    @Test("a close between frames reports nothing")
    func cleanClose() throws {
        let server = try makeServerChannel()
        try server.writeInbound(buffer(Self.helloFrame))
        try server.close().wait()
        try server.throwIfErrorCaught()
        #expect(try server.readInbound(as: Execd_V1_Request.self) == Self.helloRequest)
    }

    @Test("an outbound message over the limit fails its write and sends nothing")
    func outboundTooLarge() throws {
        let limit = ExecProtocol.smallestMaxFrameBytes
        let server = try makeServerChannel(maxFrameBytes: limit)
        var result = Execd_V1_RunResult()
        result.stdout = Data(repeating: 0x61, count: limit)
        let response = Execd_V1_Response.with {
            $0.id = 3
            $0.run = result
        }
        let size = UInt64((try response.serializedBytes() as [UInt8]).count)
        let write = server.writeAndFlush(response)
        #expect(throws: ExecProtocolError.frameTooLarge(length: size, limit: limit)) { try write.wait() }
        #expect(try drainOutbound(server).isEmpty)
        #expect(server.isActive)
    }

    @Test("the client pipeline reports a server's framing violations without answering them")
    func clientSideViolations() throws {
        let client = try makeClientChannel(maxFrameBytes: 1024)
        #expect(throws: ExecProtocolError.frameTooLarge(length: 1025, limit: 1024)) {
            try client.writeInbound(buffer([0, 0, 0x04, 0x01]))
        }
        #expect(try drainOutbound(client).isEmpty)

        let other = try makeClientChannel()
        do {
            try other.writeInbound(buffer(frame([0xFF])))
            Issue.record("garbage was accepted")
        } catch let error as ExecProtocolError {
            guard case .malformedFrame(let message, _) = error else { throw error }
            #expect(message == "execd.v1.Response")
        }
        #expect(try drainOutbound(other).isEmpty)
    }

    @Test(
        "byte counts read naturally in error messages",
        arguments: [
            (40 << 20, "40 MiB"), (16 << 20, "16 MiB"), ((16 << 20) + (1 << 19), "16.5 MiB"), (1, "1 byte"),
            (1023, "1023 bytes"), (2048, "2 KiB"), ((1 << 20) - 1, "1048575 bytes"), (1025, "1025 bytes"),
            (0x7F00_0000, "2032 MiB"), (3 << 30, "3 GiB"),
        ] as [(UInt64, String)]
    )
    func byteCountText(bytes: UInt64, text: String) {
        #expect(ByteCountText(bytes).description == text)
    }
}
