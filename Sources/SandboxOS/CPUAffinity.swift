import CExecChild
import Glibc

/// Which CPUs a thread or process may run on (sched_setaffinity(2)). A performance hint for the warm pools, never a
/// limit: a run's CPU is limited by its cgroup, and a program may widen its own set again.
public enum CPUAffinity {
    /// The CPUs the calling thread may run on, in increasing order.
    public static func allowed() -> [Int32] {
        var cpus = [Int32](repeating: -1, count: 4096)
        let count = execd_thread_cpus(&cpus, Int32(cpus.count))
        return count > 0 ? Array(cpus[0..<Int(count)]) : []
    }

    /// Restricts process `pid` (0: the calling thread) to `cpus`.
    public static func set(pid: pid_t, cpus: [Int32]) throws {
        guard execd_set_cpus(pid, cpus, Int32(cpus.count)) == 0 else { throw SystemError("sched_setaffinity(\(pid))") }
    }

    /// Runs `body` with the calling thread on `cpu` only (what it spawns meanwhile inherits that), then gives the
    /// thread `restore` again. With no `cpu`, just runs `body`.
    public static func pinned<T>(to cpu: Int32?, restoring restore: [Int32], _ body: () throws -> T) rethrows -> T {
        guard let cpu, (try? set(pid: 0, cpus: [cpu])) != nil else { return try body() }
        defer { try? set(pid: 0, cpus: restore) }
        return try body()
    }
}
