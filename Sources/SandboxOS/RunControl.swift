import CExecChild
import Glibc
import Synchronization

/// Lets other threads stop a run: a flag plus an eventfd that wakes the run's monitor out of poll(2) at once.
public final class RunControl: Sendable {
    public let eventFD: Int32
    private let cancelled = Atomic<Bool>(false)

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

    /// Consumes the wake-up (the flag stays set).
    public func acknowledge() {
        var value: UInt64 = 0
        _ = read(eventFD, &value, 8)
    }
}
