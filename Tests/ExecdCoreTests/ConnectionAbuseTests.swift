import ExecProtocol
import Foundation
import Glibc
import SwiftProtobuf
import Testing

/// A blocking raw Unix-socket connection, for sending bytes no well-behaved client would.
final class RawConnection {
    let fd: Int32

    init(_ path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Vanishes like a crashed client (the fd stays ours until deinit, so it is never closed twice).
    func hangUp() { shutdown(fd, Int32(SHUT_RDWR)) }

    func send(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }

    func send(_ request: Execd_V1_Request) throws {
        let body: [UInt8] = try request.serializedBytes()
        send(Self.header(UInt32(body.count)) + body)
    }

    static func header(_ length: UInt32) -> [UInt8] {
        [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
    }

    private func readExactly(_ count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            if n <= 0 { return nil }
            got += n
        }
        return buffer
    }

    /// The next response, or nil when the server closed the connection.
    func receive() throws -> Execd_V1_Response? {
        guard let header = readExactly(4) else { return nil }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        guard let body = readExactly(length) else { return nil }
        return try Execd_V1_Response(serializedBytes: body)
    }

    /// True once the server has closed its side.
    func isClosedByServer() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    static func hello(version: UInt32 = ExecProtocol.protocolVersion) -> Execd_V1_Request {
        var request = Execd_V1_Request()
        request.id = 1
        var hello = Execd_V1_Hello()
        hello.protocolVersion = version
        request.hello = hello
        return request
    }
}

extension EndToEnd {
@Suite(.serialized)
struct ConnectionAbuseTests {
    func daemon() async throws -> TestDaemon { try await TestDaemon.shared.value }

    /// A healthy client on its own connection, proving the daemon still serves everyone else.
    func stillServes(_ d: TestDaemon) async throws {
        let r = try await d.run(.python, "print(6 * 7)")
        #expect(r.status == .ok && r.out == "42\n")
    }

    @Test func oversizedFrameIsRejectedBeforeItsBody() async throws {
        let d = try await daemon()
        let raw = try RawConnection(d.socketPath)
        raw.send(RawConnection.header(40 << 20))  // announce 40 MiB, send none of it
        let response = try #require(try raw.receive())
        #expect(response.error.code == .frameTooLarge, "\(response)")
        #expect(response.error.message.contains("16 MiB"))
        #expect(raw.isClosedByServer())
        try await stillServes(d)
    }

    @Test func malformedFrameGetsAnErrorAndTheConnectionCloses() async throws {
        let d = try await daemon()
        let raw = try RawConnection(d.socketPath)
        let garbage: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x13, 0x37]
        raw.send(RawConnection.header(UInt32(garbage.count)) + garbage)
        let response = try #require(try raw.receive())
        #expect(response.error.code == .malformedFrame, "\(response)")
        #expect(raw.isClosedByServer())
        try await stillServes(d)
    }

    @Test func truncatedFrameFromAVanishingClientHurtsNoOne() async throws {
        let d = try await daemon()
        do {
            let raw = try RawConnection(d.socketPath)
            raw.send(RawConnection.header(1000) + [1, 2, 3])
        }  // closed mid-frame
        try await stillServes(d)
    }

    @Test func helloIsRequiredAndVersionsAreChecked() async throws {
        let d = try await daemon()
        let raw = try RawConnection(d.socketPath)
        var run = Execd_V1_Request()
        run.id = 9
        run.run = Execd_V1_RunRequest()
        try raw.send(run)
        let refused = try #require(try raw.receive())
        #expect(refused.id == 9 && refused.error.code == .helloRequired)
        try raw.send(RawConnection.hello())
        let hello = try #require(try raw.receive())
        #expect(hello.hello.protocolVersion == 1 && hello.hello.languages == [.python, .javascript])
        var unknown = Execd_V1_Request()
        unknown.id = 10
        try raw.send(unknown)
        #expect(try raw.receive()?.error.code == .badRequest)
        let other = try RawConnection(d.socketPath)
        try other.send(RawConnection.hello(version: 99))
        let mismatch = try #require(try other.receive())
        #expect(mismatch.error.code == .unsupportedVersion && mismatch.error.message.contains("99"))
        #expect(other.isClosedByServer())
    }

    @Test func manyRequestsInFlightOnOneConnection() async throws {
        let client = try await daemon().client()
        defer { Task { await client.close() } }
        let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for i in 0..<6 {
                group.addTask {
                    var request = Execd_V1_RunRequest()
                    request.language = i.isMultiple(of: 2) ? .python : .javascript
                    request.code = Data((i.isMultiple(of: 2) ? "print(\(i) * 2)" : "console.log(\(i) * 2)").utf8)
                    return (i, try await client.run(request).out)
                }
            }
            return try await group.reduce(into: [Int: String]()) { $0[$1.0] = $1.1 }
        }
        for i in 0..<6 { #expect(results[i] == "\(i * 2)\n") }
    }

    @Test func disconnectingClientKillsItsRun() async throws {
        let d = try await daemon()
        let raw = try RawConnection(d.socketPath)
        try raw.send(RawConnection.hello())
        _ = try raw.receive()
        var request = Execd_V1_Request()
        request.id = 2
        var run = Execd_V1_RunRequest()
        run.language = .python
        run.code = Data("import time\ntime.sleep(50)".utf8)
        run.limits.wallTimeMs = 60_000
        request.run = run
        try raw.send(request)
        // Wait until the sandbox is up, then vanish.
        for _ in 0..<200 where d.scanProcesses().isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!d.scanProcesses().isEmpty)
        raw.hangUp()
        for _ in 0..<300 where !d.leftoverProcesses().isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        #expect(d.leftoverProcesses().isEmpty, "the abandoned run must be killed, not left to its 60 s limit")
        try await stillServes(d)
    }

    @Test func fullQueueGetsBusyImmediately() async throws {
        let d = try await TestDaemon(tag: "busy", hostIDBase: 920_000, maxConcurrentRuns: 1, queueLimit: 0)
        let client = try await d.client()
        let sleeper = Task {
            var request = Execd_V1_RunRequest()
            request.language = .python
            request.code = Data("import time\ntime.sleep(3)".utf8)
            return try await client.run(request)
        }
        for _ in 0..<200 where d.engine.activeCount == 0 { try await Task.sleep(for: .milliseconds(10)) }
        let clock = ContinuousClock()
        let start = clock.now
        await #expect { _ = try await d.run(.python, "print(1)") } throws: { error in
            guard case ExecClientError.server(let code, _) = error else { return false }
            return code == .busy
        }
        #expect(clock.now - start < .seconds(2))  // refused, not queued behind the 3 s sleeper
        #expect(try await sleeper.value.status == .ok)
        await client.close()
        try await d.stop()
        #expect(!FileManager.default.fileExists(atPath: d.socketPath), "shutdown removes the socket")
        #expect(d.leftoverCgroups().isEmpty)
    }
}
}
