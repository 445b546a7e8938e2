import ArgumentParser
import ExecdCore
import ExecProtocol
import Foundation
import Logging
import SandboxOS
import ServiceLifecycle

/// execd: the privileged sandbox daemon. Parses arguments and the config file, then runs the server.
@main
struct Execd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "execd",
        abstract: "Runs untrusted Python and JavaScript in kernel sandboxes, served on a Unix socket.")

    @Option(help: "Unix socket to listen on (default: $EXECD_SOCKET or /run/execd/execd.sock).")
    var socket: String?

    @Option(help: "JSON config file; command-line options override it.")
    var config: String?

    @Option(help: "Runs executing at once (default: 2 × cores, at least 4).")
    var maxConcurrentRuns: Int?

    @Option(help: "Of those, runs using the CPU at once (default: cores); a run found waiting makes room for another.")
    var maxActiveRuns: Int?

    @Option(help: "Runs that may wait for a slot before requests get `busy`.")
    var queueLimit: Int?

    @Option(help: "First unprivileged host uid that sandbox root maps to.")
    var hostIdBase: UInt32?

    @Option(help: "Empty directory sandboxes mount their private root on.")
    var rootDir: String?

    @Option(help: "Name of this daemon's cgroup subtree (cgroup v1); one execd per name, enforced by a lock.")
    var cgroupSubtree: String?

    @Option(help: "Group (numeric gid) allowed to use the socket; the socket is mode 0660.")
    var socketGroup: UInt32?

    @Option(help: "Warm slots per language, e.g. python=4,javascript=2 (0 disables a pool).")
    var pool: String?

    @Option(help: "A warm Python slot is replaced after this many runs (default 10000).")
    var slotMaxRuns: Int?

    @Option(help: "A warm slot is replaced after this many seconds (default 600).")
    var slotMaxAge: Int?

    @Flag(inversion: .prefixedNo,
          help: "Keep each warm Python slot (its zygote and runs) on one CPU, the slots spread over the CPUs (default on).")
    var slotPinning: Bool?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level?

    func run() async throws {
        let file = try config.map(ExecdConfigFile.load) ?? ExecdConfigFile()
        let level = logLevel ?? file.logLevel.flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "execd")
        // A sandbox that exits without reading its stdin must not take the daemon down with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        guard geteuid() == 0 else {
            throw ValidationError("execd must run as root (it creates namespaces, cgroups and id maps)")
        }

        var engineConfig = EngineConfig()
        if let n = maxConcurrentRuns ?? file.maxConcurrentRuns { engineConfig.maxConcurrentRuns = n }
        if let n = maxActiveRuns ?? file.maxActiveRuns { engineConfig.maxActiveRuns = n }
        if let n = queueLimit ?? file.queueLimit { engineConfig.maxQueuedRuns = n }
        if let base = hostIdBase ?? file.hostIdBase { engineConfig.hostIDBase = base }
        if let dir = rootDir ?? file.rootDir { engineConfig.rootDirectory = dir }
        if let paths = file.readOnlyPaths { engineConfig.mounts = MountPlan.host(paths: paths) }
        for (language, slots) in try Self.poolSizes(pool ?? file.pool) {
            if language == "python" { engineConfig.pythonSlots = slots } else { engineConfig.javascriptSlots = slots }
        }
        if let n = slotMaxRuns ?? file.slotMaxRuns { engineConfig.maxRunsPerSlot = n }
        if let seconds = slotMaxAge ?? file.slotMaxAge { engineConfig.maxSlotAge = .seconds(seconds) }
        if let pin = slotPinning ?? file.slotPinning { engineConfig.pinPythonSlots = pin }
        guard engineConfig.maxConcurrentRuns >= 1, engineConfig.maxActiveRuns >= 1, engineConfig.maxQueuedRuns >= 0 else {
            throw ValidationError("max-concurrent-runs and max-active-runs must be at least 1 and queue-limit at least 0")
        }
        guard engineConfig.maxRunsPerSlot >= 1, engineConfig.maxSlotAge >= .seconds(1) else {
            throw ValidationError("slot-max-runs and slot-max-age must be at least 1")
        }

        let subtree = cgroupSubtree ?? file.cgroupSubtree ?? "execd"
        let lock: InstanceLock
        do { lock = try InstanceLock(name: subtree) } catch {
            throw ValidationError("\(error): another execd is running with cgroup subtree \"\(subtree)\"; stop it or pass --cgroup-subtree")
        }
        defer { withExtendedLifetime(lock) {} }
        let cgroups = try Cgroups.detect(CgroupHost(subtreeName: subtree))
        let stale = try cgroups.removeStaleGroups()
        if stale > 0 { logger.notice("removed cgroups left by an earlier execd", metadata: ["count": "\(stale)"]) }
        let engine = try RunEngine(config: engineConfig, cgroups: cgroups)

        var settings = ExecdServer.Settings(socketPath: socket ?? file.socket ?? ExecClient.defaultSocketPath)
        if let gid = socketGroup ?? file.socketGroup { settings.socketGroup = gid }
        try FileManager.default.createDirectory(
            atPath: (settings.socketPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let server = ExecdServer(settings: settings, engine: engine, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

extension Execd {
    /// Parses `python=4,javascript=2`.
    static func poolSizes(_ text: String?) throws -> [(String, Int)] {
        guard let text, !text.isEmpty else { return [] }
        return try text.split(separator: ",").map { item in
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, ["python", "javascript"].contains(parts[0]), let n = Int(parts[1]), (0...256).contains(n) else {
                throw ValidationError("--pool: \"\(item)\" is not language=count (python or javascript, 0 to 256)")
            }
            return (parts[0], n)
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// The optional JSON config file: the same settings as the options, in snake_case.
struct ExecdConfigFile: Decodable {
    var socket: String?
    var maxConcurrentRuns: Int?
    var maxActiveRuns: Int?
    var queueLimit: Int?
    var hostIdBase: UInt32?
    var rootDir: String?
    var socketGroup: UInt32?
    var cgroupSubtree: String?
    var logLevel: String?
    var pool: String?
    var slotMaxRuns: Int?
    /// Seconds.
    var slotMaxAge: Int?
    var slotPinning: Bool?
    /// Host paths mirrored read-only into every sandbox (default: /usr, /lib*, /bin, /sbin, /etc).
    var readOnlyPaths: [String]?

    static func load(_ path: String) throws -> ExecdConfigFile {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do { return try decoder.decode(ExecdConfigFile.self, from: data) } catch {
            throw ValidationError("config file \(path): \(error)")
        }
    }
}
