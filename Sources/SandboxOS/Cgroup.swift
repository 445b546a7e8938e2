import Glibc

/// Resource limits of one run's cgroup.
public struct CgroupLimits: Sendable, Equatable {
    /// Memory limit in bytes (RAM; swap is always off). Must be > 0.
    public var memoryBytes: UInt64
    /// Maximum number of tasks (processes and threads) in the group. Must be > 0.
    public var maxProcesses: Int
    /// CPU bandwidth in thousandths of a core: 1000 = one core, 500 = half a core. Must be > 0.
    public var cpuQuotaMillicores: Int

    /// Creates limits; see the properties for units.
    public init(memoryBytes: UInt64, maxProcesses: Int, cpuQuotaMillicores: Int) {
        self.memoryBytes = memoryBytes
        self.maxProcesses = maxProcesses
        self.cpuQuotaMillicores = cpuQuotaMillicores
    }
}

/// What one run's cgroup consumed.
public struct CgroupUsage: Sendable, Equatable {
    /// CPU time of all processes in the group (user + system).
    public var cpuTime: Duration
    /// Highest memory charge seen (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`).
    public var memoryPeakBytes: UInt64
    /// Number of processes the kernel's OOM killer killed in the group. > 0 means memory limit exceeded.
    public var oomKills: Int

    /// Creates a usage record.
    public init(cpuTime: Duration, memoryPeakBytes: UInt64, oomKills: Int) {
        self.cpuTime = cpuTime
        self.memoryPeakBytes = memoryPeakBytes
        self.oomKills = oomKills
    }
}

/// The cgroup interface in use.
public enum CgroupVersion: Sendable, Equatable {
    /// Legacy per-controller hierarchies.
    case v1
    /// The unified hierarchy.
    case v2
}

/// Creates per-run cgroups inside the daemon's own subtree. One per daemon.
public protocol CgroupManager: Sendable {
    /// Which interface this manager drives.
    var version: CgroupVersion { get }
    /// Creates a leaf cgroup for one run with `limits` applied and swap off. `name` must be a single
    /// path component (non-empty, no "/", not "." or ".."); it must not exist yet.
    func createRunGroup(name: String, limits: CgroupLimits) throws -> any RunCgroup
    /// Kills whatever is left in run groups of a crashed earlier daemon and removes them. Touches only
    /// our subtree. Returns how many run groups were removed.
    func removeStaleGroups() throws -> Int
    /// At a clean shutdown, once every run group is gone: removes the directories the manager made for its run
    /// groups (v1: the subtree in each hierarchy; v2: `runs`), if they are empty. Best effort: anything still there
    /// stays, and the next start reuses or cleans it.
    func removeSubtree()
}

/// A run cgroup's share of contended CPU, relative to the other sandboxes' groups.
public enum CgroupCPUWeight: Sendable, Equatable {
    /// The kernel's default: what a run gets.
    case normal
    /// An eighth of a run's: work ahead of demand (a worker starting up) yields to runs, but still progresses.
    case background
}

/// One run's leaf cgroup.
public protocol RunCgroup: Sendable {
    /// The leaf's name, as given to `createRunGroup`.
    var name: String { get }
    /// v2: an O_PATH|O_DIRECTORY|O_CLOEXEC fd of the leaf for `clone3(CLONE_INTO_CGROUP)`; owned by
    /// this object and closed by `destroy()` (nil afterwards), so don't call `destroy()` while a spawn
    /// that uses it is in flight. Always nil on v1.
    var cloneIntoFD: Int32? { get }
    /// Moves `pid` (its whole thread group) into the leaf: every hierarchy's `cgroup.procs` on v1.
    /// Call before the child is released so it never runs unconstrained.
    func add(pid: pid_t) throws
    /// Rewrites the limits (a pre-started worker's cgroup gets its run's limits just before the run).
    func apply(_ limits: CgroupLimits) throws
    /// Sets the group's CPU weight against its siblings (v1 `cpu.shares`, v2 `cpu.weight`).
    func setCPUWeight(_ weight: CgroupCPUWeight) throws
    /// Reads CPU time, peak memory and OOM kills.
    func usage() throws -> CgroupUsage
    /// Sends SIGKILL to every process in the group (v2 `cgroup.kill`; v1 repeated rounds over
    /// `cgroup.procs`, bounded). Does not wait for them to exit; `destroy()` does.
    func killAll() throws
    /// One SIGKILL to every process in the group, without waiting or retrying (v2 `cgroup.kill`, which is atomic;
    /// v1 one round over `cgroup.procs`, which a process forking at that moment can outrun): for a run that ended
    /// while its last process is still exiting. `killAll()` or `recycle()` must still follow before the group is used
    /// again.
    func signalAll() throws
    /// Kills everything in the group and waits (bounded) until it is empty, then makes the group ready for another
    /// run: the peak-memory counter starts again. Returns false where the kernel cannot reset it (cgroup v2's
    /// memory.peak), so the caller uses a fresh group instead. CPU time and OOM kills keep counting: callers
    /// subtract a baseline taken before the run.
    func recycle() throws -> Bool
    /// Waits (bounded) until the group is empty, removes it in every hierarchy and closes the fd.
    /// Idempotent; throws `CgroupError.stillPopulated` if processes remain. Zombies do not count:
    /// the kernel drops exited tasks from the group before they are reaped.
    func destroy() throws
}

/// Errors of the cgroup layer. Each names what was being done and where.
public enum CgroupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A system call failed.
    case system(operation: String, path: String, errno: Int32)
    /// Controllers we need are not available (not mounted on v1, not delegated to us on v2).
    case controllersMissing(version: CgroupVersion, missing: [String], path: String)
    /// Neither a usable v2 nor a usable v1 setup was found; the message says what each lacked.
    case noUsableHierarchy(v2: String, v1: String)
    /// A run group name that is not a single safe path component.
    case invalidName(String)
    /// Limits out of range.
    case invalidLimits(String)
    /// An interface file whose content we could not parse.
    case malformed(path: String, content: String)
    /// The group still had processes after waiting.
    case stillPopulated(path: String, waited: Duration)

    /// A one-line, actionable description.
    public var description: String {
        switch self {
        case .system(let operation, let path, let code):
            return "cgroup: \(operation) \(path) failed: \(String(cString: strerror(code))) (errno \(code))"
        case .controllersMissing(let version, let missing, let path):
            let fix =
                version == .v2
                ? "delegate them (systemd Delegate=yes) or enable them in the parent's cgroup.subtree_control"
                : "mount the cgroup v1 controllers"
            return "cgroup \(version): controllers \(missing.joined(separator: ", ")) not available at \(path); \(fix)"
        case .noUsableHierarchy(let v2, let v1):
            return "cgroup: no usable hierarchy; v2: \(v2); v1: \(v1)"
        case .invalidName(let name):
            return "cgroup: invalid run group name \"\(name)\" (must be one non-empty path component)"
        case .invalidLimits(let message):
            return "cgroup: invalid limits: \(message)"
        case .malformed(let path, let content):
            return "cgroup: cannot parse \(path): \"\(content.prefix(200))\""
        case .stillPopulated(let path, let waited):
            return "cgroup: \(path) still has processes after waiting \(waited)"
        }
    }
}

/// Shared rules for both implementations.
enum CgroupRules {
    /// The CFS period both versions use: 100 ms, the kernel default.
    static let cpuPeriodMicroseconds = 100_000
    /// The kernel's minimum quota (1 ms).
    static let minimumQuotaMicroseconds = 1_000
    /// How long `destroy()` and stale-group cleanup wait for a group to empty.
    static let emptyTimeout: Duration = .seconds(2)
    /// Interval between polls while waiting.
    static let pollInterval: Duration = .milliseconds(2)
    /// Rounds of "read cgroup.procs, SIGKILL each" before giving up on v1 (a fork bomb races us;
    /// pids.max bounds how many it can have at once).
    static let killRounds = 100

    static func validate(name: String) throws {
        if name.isEmpty || name == "." || name == ".." || name.contains("/") || name.utf8.contains(0) {
            throw CgroupError.invalidName(name)
        }
    }

    static func validate(limits: CgroupLimits) throws {
        if limits.memoryBytes == 0 { throw CgroupError.invalidLimits("memoryBytes must be > 0") }
        if limits.maxProcesses <= 0 { throw CgroupError.invalidLimits("maxProcesses must be > 0") }
        if limits.cpuQuotaMillicores <= 0 { throw CgroupError.invalidLimits("cpuQuotaMillicores must be > 0") }
    }

    /// CFS quota in microseconds per `cpuPeriodMicroseconds` for a millicore count.
    static func quotaMicroseconds(millicores: Int) -> Int {
        let (product, overflow) = millicores.multipliedReportingOverflow(by: cpuPeriodMicroseconds / 1000)
        return overflow ? Int.max : max(product, minimumQuotaMicroseconds)
    }

    /// Runs `remove`, retrying while it fails with EBUSY (the kernel may still be tearing down an
    /// exiting task just after the group read as empty) until `emptyTimeout` passes.
    static func removeRetryingBusy(_ remove: () throws -> Void) throws {
        let clock = ContinuousClock()
        let deadline = clock.now + emptyTimeout
        while true {
            do {
                return try remove()
            } catch CgroupError.system(_, _, EBUSY) where clock.now < deadline {
                CgroupFS.nap(pollInterval)
            }
        }
    }

    /// Polls `isEmpty` until it returns true or `emptyTimeout` passes.
    static func waitUntilEmpty(_ isEmpty: () throws -> Bool) throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + emptyTimeout
        var backoff = Backoff(cap: pollInterval)
        while true {
            if try isEmpty() { return true }
            if clock.now >= deadline { return false }
            backoff.nap()
        }
    }

    /// Naps that start short and double up to `cap`: a process that is already exiting is gone within a fraction
    /// of a millisecond (a run that ended on its own word, with its last process still exiting, is the common case),
    /// and a group that takes longer is polled no more often than before.
    struct Backoff {
        let cap: Duration
        var next: Duration = .microseconds(50)

        mutating func nap() {
            CgroupFS.nap(next)
            next = min(next * 2, cap)
        }
    }
}
