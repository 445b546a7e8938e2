import Synchronization

/// Hands out the unprivileged host uids that sandbox root maps to, one per live sandbox, so RLIMIT_NPROC and file
/// ownership never mix two runs. A uid returns to the pool only after its sandbox's pid namespace is gone.
final class HostIDPool: Sendable {
    private let free: Mutex<[UInt32]>

    init(base: UInt32, count: Int) {
        precondition(base >= 10_000 && count > 0, "host ids must be unprivileged and non-empty")
        free = Mutex((0..<UInt32(count)).reversed().map { base + $0 })
    }

    func acquire() -> UInt32? { free.withLock { $0.popLast() } }

    func release(_ id: UInt32) { free.withLock { $0.append(id) } }
}
