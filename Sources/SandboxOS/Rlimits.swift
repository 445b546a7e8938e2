import Glibc

/// The rlimits a sandbox uses, by name (glibc's `RLIMIT_NPROC` & co. are macros over `__RLIMIT_*` that Swift
/// does not always import).
public enum RlimitResource: Int32, Sendable {
    case cpu = 0, fileSize = 1, data = 2, stack = 3, core = 4, rss = 5, processes = 6, openFiles = 7
    case memoryLock = 8, addressSpace = 9, locks = 10, pendingSignals = 11, messageQueue = 12
}

extension ResourceLimit {
    /// This process's hard limit for `resource` (a sandbox, in its own user namespace, can never raise a limit
    /// above it).
    public static func hardLimit(_ resource: RlimitResource) -> UInt64 {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(UInt32(resource.rawValue)), &limit) == 0 else { return 0 }
        return UInt64(limit.rlim_max)
    }

    public init(_ resource: RlimitResource, soft: UInt64, hard: UInt64) {
        self.init(resource.rawValue, soft: soft, hard: hard)
    }

    public init(_ resource: RlimitResource, _ value: UInt64) {
        self.init(resource.rawValue, soft: value, hard: value)
    }
}
