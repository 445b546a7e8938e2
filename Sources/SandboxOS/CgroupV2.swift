import Glibc
import Synchronization

/// cgroup v2 under a delegated subtree (systemd `Delegate=yes`):
///
///     <delegated>/               our unit's cgroup; subtree_control "+memory +pids +cpu"
///     <delegated>/daemon/        the daemon itself ("no internal processes" in <delegated>)
///     <delegated>/runs/          subtree_control "+memory +pids +cpu"
///     <delegated>/runs/<name>/   one leaf per run
public struct CgroupV2Manager: CgroupManager {
    /// Leaf that holds the daemon process.
    public static let daemonLeaf = "daemon"
    /// Parent of all run leaves.
    public static let runsDirectory = "runs"

    /// Always `.v2`.
    public var version: CgroupVersion { .v2 }
    /// The daemon's delegated cgroup directory, e.g. /sys/fs/cgroup/system.slice/execd.service.
    public let delegatedPath: String
    /// `<delegated>/runs`.
    public var runsPath: String { delegatedPath + "/" + Self.runsDirectory }
    let ops: CgroupDirectoryOps

    /// Sets up the subtree: checks that memory, pids and cpu are delegated, moves `pid` into
    /// `<delegated>/daemon`, enables the controllers for children and creates `<delegated>/runs`.
    /// Safe to repeat (existing directories are reused).
    public init(delegatedPath: String, pid: pid_t, directoryOps: CgroupDirectoryOps = .kernel) throws {
        self.delegatedPath = delegatedPath
        self.ops = directoryOps
        try requireControllers(at: delegatedPath)
        let daemon = delegatedPath + "/" + Self.daemonLeaf
        try makeDirectoryIfMissing(daemon)
        // Must precede enabling controllers: a cgroup with processes cannot hand domain
        // controllers to its children (EBUSY).
        try CgroupFS.write(daemon + "/cgroup.procs", "\(pid)")
        try enableControllers(in: delegatedPath)
        try makeDirectoryIfMissing(runsPath)
        try requireControllers(at: runsPath)
        try enableControllers(in: runsPath)
    }

    /// See `CgroupManager.createRunGroup`. Writes memory.max, memory.swap.max=0, memory.oom.group=1,
    /// pids.max and cpu.max; removes the leaf again if any write fails.
    public func createRunGroup(name: String, limits: CgroupLimits) throws -> any RunCgroup {
        try CgroupRules.validate(name: name)
        try CgroupRules.validate(limits: limits)
        let leaf = runsPath + "/" + name
        try ops.makeDirectory(leaf)
        do {
            try writeSwapOff(leaf)
            // One OOM kills the whole run: a half-killed program's output is meaningless.
            try CgroupFS.write(leaf + "/memory.oom.group", "1")
            let fd = try CgroupFS.openPath(leaf)
            let group = CgroupV2RunGroup(name: name, path: leaf, fd: fd, ops: ops)
            try group.apply(limits)
            return group
        } catch {
            try? ops.removeDirectory(leaf)
            throw error
        }
    }

    /// See `CgroupManager.removeSubtree`: `<delegated>/runs` (the delegated cgroup itself is systemd's).
    public func removeSubtree() {
        try? ops.removeDirectory(runsPath)
    }

    /// See `CgroupManager.removeStaleGroups`: every directory under `<delegated>/runs`.
    public func removeStaleGroups() throws -> Int {
        var removed = 0
        for name in try CgroupFS.subdirectories(runsPath) {
            try CgroupV2RunGroup.killAndRemove(runsPath + "/" + name, ops: ops)
            removed += 1
        }
        return removed
    }

    private func requireControllers(at path: String) throws {
        let available = CgroupFormat.words(try CgroupFS.read(path + "/cgroup.controllers"))
        let missing = Cgroups.v2Controllers.filter { !available.contains($0) }
        if !missing.isEmpty { throw CgroupError.controllersMissing(version: .v2, missing: missing, path: path) }
    }

    private func enableControllers(in path: String) throws {
        try CgroupFS.write(
            path + "/cgroup.subtree_control",
            Cgroups.v2Controllers.map { "+" + $0 }.joined(separator: " ")
        )
    }

    private func makeDirectoryIfMissing(_ path: String) throws {
        do {
            try ops.makeDirectory(path)
        } catch CgroupError.system(_, _, EEXIST) {
            return
        }
    }

    /// memory.swap.max is absent only when the kernel has no swap accounting (then there is no
    /// per-cgroup swap to turn off); any other failure is real.
    private func writeSwapOff(_ leaf: String) throws {
        do {
            try CgroupFS.write(leaf + "/memory.swap.max", "0")
        } catch CgroupError.system(_, _, ENOENT) {
            return
        }
    }
}

/// One run's leaf in the v2 hierarchy.
public final class CgroupV2RunGroup: RunCgroup {
    /// The leaf's name.
    public let name: String
    /// The leaf's directory.
    public let path: String
    private let ops: CgroupDirectoryOps
    private let state: Mutex<(fd: Int32?, removed: Bool)>

    init(name: String, path: String, fd: Int32, ops: CgroupDirectoryOps) {
        self.name = name
        self.path = path
        self.ops = ops
        self.state = Mutex((fd: fd, removed: false))
    }

    deinit {
        state.withLock { if let fd = $0.fd { close(fd) } }
    }

    /// The leaf's O_PATH fd for `clone3(CLONE_INTO_CGROUP)` until `destroy()`.
    public var cloneIntoFD: Int32? { state.withLock { $0.fd } }

    /// See `RunCgroup.recycle`: memory.peak cannot simply be reset, so a v2 run always gets a fresh group.
    public func recycle() throws -> Bool { false }

    /// memory.max, pids.max and cpu.max.
    public func apply(_ limits: CgroupLimits) throws {
        try CgroupRules.validate(limits: limits)
        try CgroupFS.write(path + "/memory.max", "\(limits.memoryBytes)")
        try CgroupFS.write(path + "/pids.max", "\(limits.maxProcesses)")
        let quota = CgroupRules.quotaMicroseconds(millicores: limits.cpuQuotaMillicores)
        try CgroupFS.write(path + "/cpu.max", "\(quota) \(CgroupRules.cpuPeriodMicroseconds)")
    }

    /// cpu.weight: 100 (the kernel's default) or 12.
    public func setCPUWeight(_ weight: CgroupCPUWeight) throws {
        try CgroupFS.write(path + "/cpu.weight", weight == .normal ? "100" : "12")
    }

    /// Writes `pid` to the leaf's cgroup.procs (for spawns that don't use CLONE_INTO_CGROUP).
    public func add(pid: pid_t) throws {
        try CgroupFS.write(path + "/cgroup.procs", "\(pid)")
    }

    /// cpu.stat `usage_usec`, memory.peak (memory.current on kernels before 5.19), memory.events
    /// `oom_kill` (the kernel counts each victim of a group kill there; `oom_group_kill` counts
    /// group kills, so the larger of the two is used, never the sum).
    public func usage() throws -> CgroupUsage {
        let cpuStatPath = path + "/cpu.stat"
        let usec = try CgroupFormat.key("usage_usec", in: try CgroupFS.read(cpuStatPath), path: cpuStatPath)
        let peak: UInt64
        if CgroupFS.exists(path + "/memory.peak") {
            peak = try CgroupFormat.number(try CgroupFS.read(path + "/memory.peak"), path: path + "/memory.peak")
        } else {
            peak = try CgroupFormat.number(try CgroupFS.read(path + "/memory.current"), path: path + "/memory.current")
        }
        let eventsPath = path + "/memory.events"
        let events = try CgroupFS.read(eventsPath)
        let kills = try CgroupFormat.key("oom_kill", in: events, path: eventsPath)
        let groupKills = CgroupFormat.flatKeyed(events)["oom_group_kill"] ?? 0
        return CgroupUsage(
            cpuTime: .microseconds(Int64(clamping: usec)),
            memoryPeakBytes: peak,
            oomKills: Int(clamping: max(kills, groupKills))
        )
    }

    /// Writes "1" to cgroup.kill (kernel ≥ 5.14); on older kernels signals each listed pid in rounds.
    public func killAll() throws {
        try Self.kill(path)
    }

    public func signalAll() throws {
        do {
            try CgroupFS.write(path + "/cgroup.kill", "1")
        } catch CgroupError.system(_, _, ENOENT) {
            try CgroupV1RunGroup.killOnce(procsFile: path + "/cgroup.procs")
        }
    }

    /// Closes the fd, waits for `populated 0` in cgroup.events, removes the leaf.
    public func destroy() throws {
        try state.withLock { state in
            if let fd = state.fd {
                close(fd)
                state.fd = nil
            }
            if state.removed { return }
            try Self.waitAndRemove(path, ops: ops)
            state.removed = true
        }
    }

    static func kill(_ path: String) throws {
        do {
            try CgroupFS.write(path + "/cgroup.kill", "1")
        } catch CgroupError.system(_, _, ENOENT) {
            try CgroupV1RunGroup.killRounds(procsFiles: [path + "/cgroup.procs"])
        }
    }

    /// Removes a stale leaf (and anything nested in it): kill, wait, rmdir depth-first.
    static func killAndRemove(_ path: String, ops: CgroupDirectoryOps) throws {
        try kill(path)
        try waitAndRemove(path, ops: ops)
    }

    private static func waitAndRemove(_ path: String, ops: CgroupDirectoryOps) throws {
        let eventsPath = path + "/cgroup.events"
        let empty = try CgroupRules.waitUntilEmpty {
            do {
                return try CgroupFormat.key("populated", in: try CgroupFS.read(eventsPath), path: eventsPath) == 0
            } catch CgroupError.system(_, _, ENOENT) {
                return true  // already removed
            }
        }
        if !empty { throw CgroupError.stillPopulated(path: path, waited: CgroupRules.emptyTimeout) }
        try CgroupRules.removeRetryingBusy { try CgroupTree.remove(path, ops: ops) }
    }
}

/// Depth-first removal of a cgroup directory that we own.
enum CgroupTree {
    /// Removes `path` and every cgroup below it; a missing `path` is not an error (idempotence).
    static func remove(_ path: String, ops: CgroupDirectoryOps) throws {
        let children: [String]
        do {
            children = try CgroupFS.subdirectories(path)
        } catch CgroupError.system(_, _, ENOENT) {
            return
        }
        for child in children { try remove(path + "/" + child, ops: ops) }
        do {
            try ops.removeDirectory(path)
        } catch CgroupError.system(_, _, ENOENT) {
            return
        }
    }
}
