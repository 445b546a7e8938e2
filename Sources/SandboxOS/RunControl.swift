import CExecChild
import Glibc
import Synchronization

/// Lets other threads stop a run: a flag plus an eventfd that wakes the run's monitor out of poll(2) at once.
public final class RunControl: Sendable {
    public let eventFD: Int32
    private let cancelled = Atomic<Bool>(false)
    private let onWaiting = Mutex<(@Sendable () -> Void)?>(nil)
    private let waited = Atomic<Bool>(false)

    public init() {
        eventFD = execd_eventfd()
        precondition(eventFD >= 0, "eventfd failed: errno \(errno)")
    }

    deinit { close(eventFD) }

    public var isCancelled: Bool { cancelled.load(ordering: .acquiring) }

    /// Asks the monitor to kill the run. Safe from any thread, any number of times.
    public func cancel() {
        guard !cancelled.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var one: UInt64 = 1
        _ = write(eventFD, &one, 8)
    }

    /// `body` runs (once, on the monitor's thread) when the run's monitor finds it waiting rather than computing:
    /// it used less than half a core since it started, or since the last look (see `RunMonitor.waitingCheck`).
    public func whenWaiting(_ body: @escaping @Sendable () -> Void) { onWaiting.withLock { $0 = body } }

    /// Whether the monitor should look for waiting at all.
    var watchesWaiting: Bool { onWaiting.withLock { $0 != nil } && !waited.load(ordering: .relaxed) }

    /// True once the run was found waiting (and `whenWaiting`'s body ran).
    public var wasFoundWaiting: Bool { waited.load(ordering: .acquiring) }

    func reportWaiting() {
        guard !waited.exchange(true, ordering: .acquiringAndReleasing) else { return }
        onWaiting.withLock { $0 }?()
    }

    /// Consumes the wake-up (the flag stays set).
    public func acknowledge() {
        var value: UInt64 = 0
        _ = read(eventFD, &value, 8)
    }
}
