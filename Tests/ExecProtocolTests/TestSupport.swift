import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import SwiftProtobuf
import Testing

@testable import ExecProtocol

/// Builds a frame by hand (independently of the codec under test): 4-byte big-endian length + body.
func frame(_ body: [UInt8]) -> [UInt8] {
    let length = UInt32(body.count)
    return [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)] + body
}

/// Splits bytes into frames by hand and decodes each as `M`; fails the test on a partial frame.
func decodeFrames<M: SwiftProtobuf.Message>(_ bytes: [UInt8], as type: M.Type = M.self) throws -> [M] {
    var messages: [M] = []
    var rest = bytes[...]
    while !rest.isEmpty {
        try #require(rest.count >= 4, "partial header: \(Array(rest))")
        let length = rest.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        rest = rest.dropFirst(4)
        try #require(rest.count >= length, "partial body: want \(length), have \(rest.count)")
        messages.append(try M(serializedBytes: Array(rest.prefix(length))))
        rest = rest.dropFirst(length)
    }
    return messages
}

/// Everything the channel wrote, concatenated.
func drainOutbound(_ channel: EmbeddedChannel) throws -> [UInt8] {
    var bytes: [UInt8] = []
    while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
        bytes += buffer.readableBytesView
    }
    return bytes
}

/// An active EmbeddedChannel with the server pipeline; requests and errors reach its tail for inspection.
func makeServerChannel(maxFrameBytes: Int = ExecProtocol.defaultMaxFrameBytes) throws -> EmbeddedChannel {
    let channel = EmbeddedChannel()
    try channel.pipeline.syncOperations.addExecServerHandlers(maxFrameBytes: maxFrameBytes)
    try channel.connect(to: SocketAddress(unixDomainSocketPath: "/execd-test")).wait()
    return channel
}

func makeClientChannel(maxFrameBytes: Int = ExecProtocol.defaultMaxFrameBytes) throws -> EmbeddedChannel {
    let channel = EmbeddedChannel()
    try channel.pipeline.syncOperations.addExecClientHandlers(maxFrameBytes: maxFrameBytes)
    try channel.connect(to: SocketAddress(unixDomainSocketPath: "/execd-test")).wait()
    return channel
}

func buffer(_ bytes: [UInt8]) -> ByteBuffer {
    ByteBuffer(bytes: bytes)
}

func runRequest(_ code: String, language: Execd_V1_Language = .python) -> Execd_V1_RunRequest {
    var run = Execd_V1_RunRequest()
    run.language = language
    run.code = Data(code.utf8)
    return run
}

/// A short, unique Unix socket path (sun_path holds at most 107 bytes).
func temporarySocketPath() -> String {
    "/tmp/execd-proto-\(getpid())-\(UUID().uuidString.prefix(8)).sock"
}

/// Polls `condition` every 10 ms for up to 10 s; for waiting on another thread, never for timing assertions.
func eventually(_ condition: @Sendable () -> Bool) async throws {
    for _ in 0..<1000 where !condition() {
        try await Task.sleep(for: .milliseconds(10))
    }
    #expect(condition())
}

/// A thread-safe box for what a test server saw.
final class Box<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<R>(_ body: (inout Value) -> R) -> R {
        self.lock.lock()
        defer { self.lock.unlock() }
        return body(&self.value)
    }

    var current: Value { self.withLock { $0 } }
}
