import Glibc
import Synchronization

/// One mounted v1 hierarchy that carries some of our controllers.
public struct CgroupV1Hierarchy: Sendable, Equatable {
    /// Our controllers this hierarchy carries: ["memory"], or ["cpu", "cpuacct"] when co-mounted.
    public var controllers: [String]
    /// Our subtree in it: `<mount>/<daemon's own path>/<subtree name>`.
    public var basePath: String

    /// Creates a hierarchy description.
    public init(controllers: [String], basePath: String) {
        self.controllers = controllers
        self.basePath = basePath
    }
}

/// cgroup v1: one leaf per run in each hierarchy, `<mount>/<own path>/<subtree>/<name>`. The daemon
/// stays where it is (v1 has no "no internal processes" rule).
public struct CgroupV1Manager: CgroupManager {
    /// Always `.v1`.
    public var version: CgroupVersion { .v1 }
    /// The hierarchies used, each controller of `Cgroups.v1Controllers` in exactly one.
    public let hierarchies: [CgroupV1Hierarchy]
    let ops: CgroupDirectoryOps

    /// Checks that memory, pids, cpu and cpuacct are each covered and creates the base directories.
    public init(hierarchies: [CgroupV1Hierarchy], directoryOps: CgroupDirectoryOps = .kernel) throws {
        let covered = Set(hierarchies.flatMap(\.controllers))
        let missing = Cgroups.v1Controllers.filter { !covered.contains($0) }
        if !missing.isEmpty {
            throw CgroupError.controllersMissing(
                version: .v1,
                missing: missing,
                path: hierarchies.map(\.basePath).joined(separator: ", ")
            )
        }
        self.hierarchies = hierarchies
        self.ops = directoryOps
        for hierarchy in hierarchies {
            do {
                try ops.makeDirectory(hierarchy.basePath)
            } catch CgroupError.system(_, _, EEXIST) {
                continue
            }
        }
    }

    /// See `CgroupManager.removeSubtree`.
    public func removeSubtree() {
        for hierarchy in hierarchies { try? ops.removeDirectory(hierarchy.basePath) }
    }

    /// See `CgroupManager.createRunGroup`. memory.limit_in_bytes, memory.memsw.limit_in_bytes (or
    /// memory.swappiness=0 without swap accounting), pids.max, cpu.cfs_period_us/cfs_quota_us.
    /// Removes what it created if any step fails.
    public func createRunGroup(name: String, limits: CgroupLimits) throws -> any RunCgroup {
        try CgroupRules.validate(name: name)
        try CgroupRules.validate(limits: limits)
        let group = CgroupV1RunGroup(
            name: name,
            leaves: hierarchies.map {
                CgroupV1Hierarchy(controllers: $0.controllers, basePath: $0.basePath + "/" + name)
            },
            ops: ops
        )
        var created: [String] = []
        do {
            for leaf in group.leaves {
                try ops.makeDirectory(leaf.basePath)
                created.append(leaf.basePath)
            }
            try group.apply(limits)
            return group
        } catch {
            for path in created.reversed() { try? ops.removeDirectory(path) }
            throw error
        }
    }

    /// See `CgroupManager.removeStaleGroups`: every directory under each hierarchy's base; a name
    /// present in several hierarchies counts once.
    public func removeStaleGroups() throws -> Int {
        var names = Set<String>()
        for hierarchy in hierarchies {
            for name in try CgroupFS.subdirectories(hierarchy.basePath) {
                names.insert(name)
            }
        }
        for name in names {
            let paths = hierarchies.map { $0.basePath + "/" + name }.filter { CgroupFS.exists($0) }
            try CgroupV1RunGroup.killRounds(procsFiles: paths.map { $0 + "/cgroup.procs" })
            try CgroupV1RunGroup.waitAndRemove(paths, ops: ops)
        }
        return names.count
    }
}

/// One run's leaves in the v1 hierarchies.
public final class CgroupV1RunGroup: RunCgroup {
    /// The leaf's name.
    public let name: String
    /// The leaf directory in each hierarchy.
    public let leaves: [CgroupV1Hierarchy]
    private let ops: CgroupDirectoryOps
    private let removed = Mutex(false)
    /// The control files read or written on every run (a pooled slot reuses its group for many runs): their paths,
    /// and their fds, opened on first use (-1 until then). Indexed by `ControlFile`.
    private let controlPaths: [String]
    private let controlFDs: Mutex<[Int32]>

    private enum ControlFile {
        case cpuUsage, memoryPeak, oomControl, pidsCurrent, procs(Int)

        var index: Int {
            switch self {
            case .cpuUsage: 0
            case .memoryPeak: 1
            case .oomControl: 2
            case .pidsCurrent: 3
            case .procs(let leaf): 4 + leaf
            }
        }
    }

    init(name: String, leaves: [CgroupV1Hierarchy], ops: CgroupDirectoryOps) {
        self.name = name
        self.leaves = leaves
        self.ops = ops
        func directory(_ controller: String) -> String { Self.leaf(carrying: controller, in: leaves)?.basePath ?? "" }
        controlPaths = [directory("cpuacct") + "/cpuacct.usage", directory("memory") + "/memory.max_usage_in_bytes",
                        directory("memory") + "/memory.oom_control", directory("pids") + "/pids.current"]
            + leaves.map { $0.basePath + "/cgroup.procs" }
        controlFDs = Mutex([Int32](repeating: -1, count: controlPaths.count))
    }

    deinit { closeFiles() }

    private func closeFiles() {
        controlFDs.withLock { fds in
            for index in fds.indices where fds[index] >= 0 {
                close(fds[index])
                fds[index] = -1
            }
        }
    }

    /// The cached fd of a control file (read and write, but pids.current, which is read-only). cgroup.procs is only
    /// written through it (see `signalAll`).
    private func file(_ file: ControlFile) throws -> (fd: Int32, path: String) {
        let index = file.index
        let path = controlPaths[index]
        let fd = try controlFDs.withLock { fds in
            if fds[index] < 0 {
                fds[index] = try CgroupFS.open(path, flags: index == ControlFile.pidsCurrent.index ? O_RDONLY : O_RDWR)
            }
            return fds[index]
        }
        return (fd, path)
    }

    /// Reads a control file through its cached fd.
    private func read<T>(_ control: ControlFile, _ parse: (UnsafeRawBufferPointer) -> T?) throws -> T {
        let (fd, path) = try file(control)
        guard let value = try CgroupFS.parse(fd: fd, path: path, parse) else {
            throw CgroupError.malformed(path: path, content: (try? CgroupFS.read(fd: fd, path: path)) ?? "")
        }
        return value
    }

    /// Always nil: v1 has no CLONE_INTO_CGROUP; use `add(pid:)`.
    public var cloneIntoFD: Int32? { nil }

    static func leaf(carrying controller: String, in leaves: [CgroupV1Hierarchy]) -> CgroupV1Hierarchy? {
        leaves.first { $0.controllers.contains(controller) }
    }

    /// The leaf directory that carries `controller`.
    func directory(_ controller: String) -> String {
        guard let leaf = Self.leaf(carrying: controller, in: leaves) else {
            preconditionFailure("cgroup v1 controller \(controller) has no hierarchy")
        }
        return leaf.basePath
    }

    public func apply(_ limits: CgroupLimits) throws {
        let memory = directory("memory")
        // memsw (RAM + swap) equal to the RAM limit means no swap. The kernel requires memsw >= limit at all
        // times, so raising a limit writes memsw first and lowering one writes it last (a reused group does both).
        if CgroupFS.exists(memory + "/memory.memsw.limit_in_bytes") {
            let memsw = memory + "/memory.memsw.limit_in_bytes"
            if (try? CgroupFS.write(memsw, "\(limits.memoryBytes)")) != nil {
                try CgroupFS.write(memory + "/memory.limit_in_bytes", "\(limits.memoryBytes)")
            } else {
                try CgroupFS.write(memory + "/memory.limit_in_bytes", "\(limits.memoryBytes)")
                try CgroupFS.write(memsw, "\(limits.memoryBytes)")
            }
        } else {
            try CgroupFS.write(memory + "/memory.limit_in_bytes", "\(limits.memoryBytes)")
            try CgroupFS.write(memory + "/memory.swappiness", "0")
        }
        try CgroupFS.write(directory("pids") + "/pids.max", "\(limits.maxProcesses)")
        let cpu = directory("cpu")
        try CgroupFS.write(cpu + "/cpu.cfs_period_us", "\(CgroupRules.cpuPeriodMicroseconds)")
        try CgroupFS.write(
            cpu + "/cpu.cfs_quota_us",
            "\(CgroupRules.quotaMicroseconds(millicores: limits.cpuQuotaMillicores))"
        )
        // Fresh leaves start with zeroed counters (cpuacct.usage, memory.max_usage_in_bytes,
        // oom_kill), so there is nothing to reset.
    }

    /// cpu.shares: 1024 (the kernel's default) or 128.
    public func setCPUWeight(_ weight: CgroupCPUWeight) throws {
        try CgroupFS.write(directory("cpu") + "/cpu.shares", weight == .normal ? "1024" : "128")
    }

    /// Writes `pid` into cgroup.procs of every hierarchy.
    public func add(pid: pid_t) throws {
        for index in leaves.indices {
            let (fd, path) = try file(.procs(index))
            try CgroupFS.write(fd: fd, path: path, "\(pid)")
        }
    }

    /// cpuacct.usage (ns), memory.max_usage_in_bytes, `oom_kill` of memory.oom_control (kernel ≥ 4.13).
    public func usage() throws -> CgroupUsage {
        let nanoseconds = try read(.cpuUsage, CgroupFormat.number)
        let peak = try read(.memoryPeak, CgroupFormat.number)
        let kills = try read(.oomControl) { CgroupFormat.key("oom_kill", in: $0) }
        return CgroupUsage(
            cpuTime: .nanoseconds(Int64(clamping: nanoseconds)),
            memoryPeakBytes: peak,
            oomKills: Int(clamping: kills)
        )
    }

    /// SIGKILLs every pid listed in any hierarchy's cgroup.procs, in bounded rounds until all read empty.
    /// With a pids hierarchy (every process of the group is in all of them) an empty group costs one read.
    public func killAll() throws {
        if try isEmpty() { return }
        try Self.killRounds(procsFiles: leaves.map { $0.basePath + "/cgroup.procs" })
    }

    public func signalAll() throws {
        // Every process of the run is in each hierarchy's leaf: one hierarchy's list is all of them.
        // Opened afresh, never through the cached fd: v1 keeps the pid list an open cgroup.procs read first and
        // serves it again to the same open file for a second after (the list would miss what was forked since).
        if let leaf = leaves.first { try Self.killOnce(procsFile: leaf.basePath + "/cgroup.procs") }
    }

    /// True when no task is left: pids.current (which counts a task until it is reaped) is 0, or, without a pids
    /// hierarchy, every cgroup.procs reads empty.
    func isEmpty() throws -> Bool {
        if Self.leaf(carrying: "pids", in: leaves) != nil { return try read(.pidsCurrent, CgroupFormat.number) == 0 }
        return try leaves.allSatisfy { try Self.readPids($0.basePath + "/cgroup.procs").isEmpty }
    }

    /// See `RunCgroup.recycle`: memory.max_usage_in_bytes is reset by writing 0.
    public func recycle() throws -> Bool {
        try killAll()
        guard try CgroupRules.waitUntilEmpty({ try isEmpty() }) else {
            throw CgroupError.stillPopulated(path: leaves.map(\.basePath).joined(separator: ", "), waited: CgroupRules.emptyTimeout)
        }
        let (fd, path) = try file(.memoryPeak)
        try CgroupFS.write(fd: fd, path: path, "0")
        return true
    }

    /// Waits until every hierarchy's cgroup.procs is empty, then removes the leaves. Idempotent.
    public func destroy() throws {
        try removed.withLock { removed in
            if removed { return }
            closeFiles()  // an open control file keeps nothing alive, but close before the directory goes
            try Self.waitAndRemove(leaves.map(\.basePath), ops: ops)
            removed = true
        }
    }

    /// Rounds of "read every cgroup.procs, SIGKILL each pid" until a round finds none. A process that
    /// forks between our read and our kill shows up in the next round; pids.max bounds each round.
    /// Missing files (group already gone) count as empty. Returns without error if rounds run out:
    /// `destroy()` then reports the leftovers.
    static func killOnce(procsFile: String) throws {
        for pid in try readPids(procsFile) { try CgroupFS.kill(pid, SIGKILL) }
    }

    static func killRounds(procsFiles: [String]) throws {
        var backoff = CgroupRules.Backoff(cap: .milliseconds(1))
        for _ in 0..<CgroupRules.killRounds {
            let pids = try procsFiles.flatMap(readPids)
            if pids.isEmpty { return }
            for pid in pids { try CgroupFS.kill(pid, SIGKILL) }
            backoff.nap()
        }
    }

    static func waitAndRemove(_ paths: [String], ops: CgroupDirectoryOps) throws {
        let procsFiles = paths.map { $0 + "/cgroup.procs" }
        let empty = try CgroupRules.waitUntilEmpty { try procsFiles.allSatisfy { try readPids($0).isEmpty } }
        if !empty {
            throw CgroupError.stillPopulated(path: paths.joined(separator: ", "), waited: CgroupRules.emptyTimeout)
        }
        for path in paths { try CgroupRules.removeRetryingBusy { try CgroupTree.remove(path, ops: ops) } }
    }

    static func readPids(_ procsFile: String) throws -> [pid_t] {
        do {
            return CgroupFormat.pids(try CgroupFS.read(procsFile))
        } catch CgroupError.system(_, _, ENOENT) {
            return []
        }
    }
}
