import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import ExecProtocol

@Suite("ExecClient against an in-test server on a Unix socket", .timeLimit(.minutes(1)))
struct ExecClientTests {
    /// Echoes a run's code as its stdout.
    static func echo(_ request: Execd_V1_Request, on connection: TestConnection) {
        var result = Execd_V1_RunResult()
        result.status = .ok
        result.stdout = request.run.code
        connection.reply(to: request, .run(result))
    }

    @Test("hello happens on connect and the server's reply is exposed")
    func hello() async throws {
        let server = try await TestServer { request, connection in Self.echo(request, on: connection) }
        let client = try await ExecClient.connect(socketPath: server.socketPath, clientName: "tests")
        #expect(client.serverHello.protocolVersion == 1)
        #expect(client.serverHello.languages == [.python, .javascript])
        let result = try await client.run(runRequest("print('hi')"))
        #expect(result.stdout == Data("print('hi')".utf8))
        await client.close()
        await server.stop()
    }

    @Test("responses that arrive in reverse order reach the right callers")
    func outOfOrderMultiplexing() async throws {
        let held = Box<[(Execd_V1_Request, TestConnection)]>([])
        let server = try await TestServer { request, connection in
            // Hold runs until three are in flight, then answer the newest first.
            let batch = held.withLock { held in
                held.append((request, connection))
                defer { if held.count == 3 { held.removeAll() } }
                return held.count == 3 ? held : []
            }
            for (request, connection) in batch.reversed() { Self.echo(request, on: connection) }
        }
        let client = try await ExecClient.connect(socketPath: server.socketPath)
        let codes = ["a = 1", "b = 2", "c = 3"]
        let results = try await withThrowingTaskGroup(of: (String, Execd_V1_RunResult).self) { group in
            for code in codes {
                group.addTask { (code, try await client.run(runRequest(code))) }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        for code in codes {
            #expect(results[code]?.stdout == Data(code.utf8))
        }
        await client.close()
        await server.stop()
    }

    @Test("a dropped connection fails every pending call, and later calls fail at once")
    func droppedConnectionFailsPending() async throws {
        let seenHold = Box(false)
        let server = try await TestServer { request, connection in
            switch request.run.code {
            case Data("hold".utf8): seenHold.withLock { $0 = true }  // never answered
            default: connection.close()
            }
        }
        let client = try await ExecClient.connect(socketPath: server.socketPath)
        let held = Task { try await client.run(runRequest("hold")) }
        try await eventually { seenHold.current }
        await #expect(throws: ExecClientError.connectionClosed(reason: "execd closed the connection")) {
            try await client.run(runRequest("drop"))
        }
        await #expect(throws: ExecClientError.connectionClosed(reason: "execd closed the connection")) {
            try await held.value
        }
        await #expect(throws: ExecClientError.self) { try await client.run(runRequest("after")) }
        await server.stop()
    }

    @Test("an error response is thrown with its code and message")
    func serverError() async throws {
        let server = try await TestServer { request, connection in
            connection.reply(.error(id: request.id, code: .unsupportedLanguage, message: "no ruby here"))
        }
        let client = try await ExecClient.connect(socketPath: server.socketPath)
        await #expect(throws: ExecClientError.server(code: .unsupportedLanguage, message: "no ruby here")) {
            try await client.run(runRequest("puts 1"))
        }
        // The connection stays usable after a per-request error.
        await #expect(throws: ExecClientError.server(code: .unsupportedLanguage, message: "no ruby here")) {
            try await client.send(.status(Execd_V1_StatusRequest()))
        }
        await client.close()
        await server.stop()
    }

    @Test("a connection-level error (id 0) fails every pending call with the server's message")
    func connectionLevelError() async throws {
        let seenHold = Box(false)
        let server = try await TestServer { request, connection in
            if request.run.code == Data("hold".utf8) {
                seenHold.withLock { $0 = true }
            } else {
                connection.reply(.error(id: 0, code: .malformedFrame, message: "bad frame"))
                connection.close()
            }
        }
        let client = try await ExecClient.connect(socketPath: server.socketPath)
        let held = Task { try await client.run(runRequest("hold")) }
        try await eventually { seenHold.current }
        let expected = ExecClientError.server(code: .malformedFrame, message: "bad frame")
        await #expect(throws: expected) { try await client.run(runRequest("boom")) }
        await #expect(throws: expected) { try await held.value }
        await server.stop()
    }

    @Test("a timeout fails the call and cancels the request on the server")
    func timeoutCancelsOnServer() async throws {
        let cancelled = Box<[UInt64]>([])
        let runIDs = Box<[UInt64]>([])
        let server = try await TestServer { request, connection in
            switch request.body {
            case .run: runIDs.withLock { $0.append(request.id) }  // never answered
            case .cancel(let cancel):
                cancelled.withLock { $0.append(cancel.targetID) }
                connection.reply(to: request, .cancel(.with { $0.found = true }))
            default: break
            }
        }
        let client = try await ExecClient.connect(socketPath: server.socketPath)
        await #expect(throws: ExecClientError.timeout(.milliseconds(50))) {
            try await client.run(runRequest("while True: pass"), timeout: .milliseconds(50))
        }
        try await eventually { !cancelled.current.isEmpty }
        #expect(cancelled.current == runIDs.current)
        await client.close()
        await server.stop()
    }

    @Test("cancelling the calling task throws CancellationError and cancels on the server")
    func taskCancellation() async throws {
        let cancelled = Box<[UInt64]>([])
        let runIDs = Box<[UInt64]>([])
        let server = try await TestServer { request, connection in
            switch request.body {
            case .run: runIDs.withLock { $0.append(request.id) }
            case .cancel(let cancel): cancelled.withLock { $0.append(cancel.targetID) }
            default: break
            }
        }
        let client = try await ExecClient.connect(socketPath: server.socketPath)
        let task = Task { try await client.run(runRequest("while True: pass")) }
        try await eventually { !runIDs.current.isEmpty }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        try await eventually { !cancelled.current.isEmpty }
        #expect(cancelled.current == runIDs.current)
        await client.close()
        await server.stop()
    }

    @Test("deadlines travel as deadline_ms, rounded up to whole milliseconds")
    func deadlineOnTheWire() async throws {
        let deadlines = Box<[UInt64]>([])
        let server = try await TestServer { request, connection in
            deadlines.withLock { $0.append(request.deadlineMs) }
            Self.echo(request, on: connection)
        }
        let client = try await ExecClient.connect(socketPath: server.socketPath)
        _ = try await client.run(runRequest("1"), deadline: .milliseconds(1500))
        _ = try await client.run(runRequest("2"), deadline: .microseconds(1))
        _ = try await client.run(runRequest("3"))
        #expect(deadlines.current == [1500, 1, 0])
        await client.close()
        await server.stop()
    }

    @Test("a request over the frame limit is refused locally and the connection stays usable")
    func requestTooLarge() async throws {
        let server = try await TestServer { request, connection in Self.echo(request, on: connection) }
        let client = try await ExecClient.connect(socketPath: server.socketPath, maxFrameBytes: 1024)
        let big = runRequest(String(repeating: "#", count: 2000))
        do {
            _ = try await client.run(big)
            Issue.record("an oversized request was sent")
        } catch ExecClientError.requestTooLarge(let bytes, let limit) {
            #expect(bytes > 2000)
            #expect(limit == 1024)
        }
        #expect(try await client.run(runRequest("small")).stdout == Data("small".utf8))
        await client.close()
        await server.stop()
    }

    @Test("hello: a server speaking another version is refused")
    func versionMismatch() async throws {
        let server = try await TestServer(answerHello: false) { request, connection in
            connection.reply(to: request, .hello(TestServer.helloReply(version: 2)))
        }
        do {
            _ = try await ExecClient.connect(socketPath: server.socketPath)
            Issue.record("connected to a version-2 server")
        } catch ExecClientError.protocolViolation(let message) {
            #expect(message.contains("version 2"))
        }
        await server.stop()
    }

    @Test("hello: the server's UNSUPPORTED_VERSION error is thrown; the hello says version 1 and our name")
    func unsupportedVersion() async throws {
        let hellos = Box<[Execd_V1_Hello]>([])
        let server = try await TestServer(answerHello: false) { request, connection in
            hellos.withLock { $0.append(request.hello) }
            connection.reply(.error(id: request.id, code: .unsupportedVersion, message: "speak 7"))
        }
        await #expect(throws: ExecClientError.server(code: .unsupportedVersion, message: "speak 7")) {
            try await ExecClient.connect(socketPath: server.socketPath, clientName: "tests/1")
        }
        #expect(hellos.current.map(\.protocolVersion) == [1])
        #expect(hellos.current.map(\.clientName) == ["tests/1"])
        await server.stop()
    }

    @Test("connecting to a missing socket says where it looked")
    func connectFailed() async throws {
        let path = temporarySocketPath()
        do {
            _ = try await ExecClient.connect(socketPath: path)
            Issue.record("connected to nothing")
        } catch let error as ExecClientError {
            guard case .connectFailed(let socketPath, _) = error else { throw error }
            #expect(socketPath == path)
            #expect(error.description.contains("EXECD_SOCKET"))
        }
    }

    @Test("the default socket path is $EXECD_SOCKET, else /run/execd/execd.sock")
    func defaultSocketPath() {
        #expect(ExecClient.socketPath(environment: ["EXECD_SOCKET": "/tmp/x.sock"]) == "/tmp/x.sock")
        #expect(ExecClient.socketPath(environment: ["EXECD_SOCKET": ""]) == "/run/execd/execd.sock")
        #expect(ExecClient.socketPath(environment: [:]) == "/run/execd/execd.sock")
    }
}
