import ExecdCore
import ExecProtocol
import Foundation
import Logging
import SandboxOS
import ServiceLifecycle

/// A real execd (real namespaces, cgroups, seccomp, python3 and node) served in-process on a temporary socket.
/// Its cgroups live in a subtree of their own and its sandboxes map to their own host uids, so it never meets a
/// daemon running beside the tests.
final class TestDaemon: Sendable {
    let socketPath: String
    let hostIDBase: UInt32
    let cgroupSubtree: String
    let engine: RunEngine
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    /// The daemon most tests share.
    static let shared = Task { try await TestDaemon(tag: "shared", hostIDBase: 910_000) }

    /// The tests' daemons never stop (they live as long as the test process), so their cgroup subtrees outlive it:
    /// each test process first removes those of test processes that are gone (only `execd-test-<pid>-<tag>`).
    static let staleSubtreesRemoved: Void = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup/pids")) ?? []
        for name in names where name.hasPrefix("execd-test-") {
            guard let pid = Int32(name.dropFirst("execd-test-".count).prefix { $0.isNumber }), pid != getpid(),
                  kill(pid, 0) != 0 && errno == ESRCH,
                  let stale = try? Cgroups.detect(CgroupHost(subtreeName: name))
            else { continue }
            _ = try? stale.removeStaleGroups()
            stale.removeSubtree()
        }
    }()

    init(tag: String, hostIDBase: UInt32, maxConcurrentRuns: Int = 2, maxActiveRuns: Int? = nil, queueLimit: Int = 64) async throws {
        Self.staleSubtreesRemoved
        let pid = getpid()
        socketPath = "/tmp/execd-test-\(pid)-\(tag).sock"
        cgroupSubtree = "execd-test-\(pid)-\(tag)"
        self.hostIDBase = hostIDBase
        var config = EngineConfig()
        config.rootDirectory = "/tmp/execd-test-\(pid)-root"
        config.hostIDBase = hostIDBase
        config.maxConcurrentRuns = maxConcurrentRuns
        if let maxActiveRuns { config.maxActiveRuns = maxActiveRuns }
        config.maxQueuedRuns = queueLimit
        let cgroups = try Cgroups.detect(CgroupHost(subtreeName: cgroupSubtree))
        let engine = try RunEngine(config: config, cgroups: cgroups)
        self.engine = engine
        var logger = Logger(label: "execd-test")
        logger.logLevel = .warning
        let server = ExecdServer(settings: .init(socketPath: socketPath), engine: engine, logger: logger)
        group = ServiceGroup(configuration: .init(services: [.init(service: server)], logger: logger))
        let group = self.group
        task = Task { try await group.run() }
        // Ready once the socket accepts a hello.
        for _ in 0..<200 {
            if let client = try? await ExecClient.connect(socketPath: socketPath) {
                await client.close()
                return
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw ExecdError(.internalError, "test daemon did not start on \(socketPath)")
    }

    func client() async throws -> ExecClient {
        try await ExecClient.connect(socketPath: socketPath, clientName: "execd-tests")
    }

    /// Stops the daemon the way SIGTERM does and waits for it.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }

    /// Runs one program through a fresh connection.
    func run(_ language: Execd_V1_Language, _ code: String, stdin: String = "", limits: (inout Execd_V1_Limits) -> Void = { _ in }) async throws -> Execd_V1_RunResult {
        var request = Execd_V1_RunRequest()
        request.language = language
        request.code = Data(code.utf8)
        request.stdin = Data(stdin.utf8)
        limits(&request.limits)
        let client = try await client()
        defer { Task { await client.close() } }
        return try await client.run(request)
    }

    /// Processes on the host whose uid belongs to this daemon's sandboxes, but for the warm slots themselves.
    /// Slots refill in the background, so a slot still starting is given a moment to become idle.
    func leftoverProcesses() -> [String] {
        var found = scanProcesses()
        for _ in 0..<100 where !found.isEmpty {
            usleep(20_000)
            found = scanProcesses()
        }
        return found
    }

    /// The same scan, once, without waiting.
    func scanProcesses() -> [String] {
        let range = hostIDBase..<(hostIDBase + 4096)
        let zygotes = engine.zygoteUIDs
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> String? in
            guard Int(entry) != nil,
                  let status = try? String(contentsOfFile: "/proc/\(entry)/status", encoding: .utf8),
                  let uidLine = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
                  let uid = uidLine.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap({ UInt32($0) }),
                  range.contains(uid), !zygotes.contains(uid)
            else { return nil }
            return "pid \(entry) uid \(uid)"
        }
    }

    /// Run cgroups of this daemon still present (in any hierarchy); the pool's slot cgroups are meant to stay.
    func leftoverCgroups() -> [String] {
        let roots = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct"]
        var found: [String] = []
        for root in roots {
            let dir = "\(root)/\(cgroupSubtree)"
            let children = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            var isDir: ObjCBool = false
            for child in children where !child.hasPrefix("slot-") && FileManager.default.fileExists(atPath: "\(dir)/\(child)", isDirectory: &isDir) && isDir.boolValue {
                found.append("\(dir)/\(child)")
            }
        }
        return found
    }
}

extension Execd_V1_RunResult {
    var out: String { String(decoding: stdout, as: UTF8.self) }
    var err: String { String(decoding: stderr, as: UTF8.self) }
}
