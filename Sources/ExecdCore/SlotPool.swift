import ExecProtocol
import Foundation
import NIOPosix
import SandboxOS
import Synchronization

/// A warm sandbox a pool hands out: a Python zygote (many runs) or a pre-started worker (one run).
protocol PoolSlot: AnyObject, Sendable {
    var id: String { get }
    var started: ContinuousClock.Instant { get }
    var sandboxPID: pid_t { get }
    var zygoteHostID: UInt32 { get }
    var runHostID: UInt32 { get }
    var runsServed: Int { get set }
    var lastStatus: Execd_V1_Status { get set }
    var lastPeakMemory: UInt64 { get set }
    /// Bytes of the slot's memory each run gets copied at fork (zygote slots; see zygote.py's copy at fork).
    var copiedAtForkBytes: UInt64 { get }
    var isAlive: Bool { get }
    func retire()
    /// For a slot `start` returns still warming up (a worker whose node is starting): readable once it is ready or
    /// has failed. -1 when `start` returns ready slots.
    var warmingFD: Int32 { get }
    /// Called on the pool's thread once `warmingFD` is readable: true if the slot is ready to serve.
    func finishWarming() -> Bool
    /// The CPU the slot's processes stay on, nil when the scheduler places them.
    var cpu: Int32? { get }
}

extension PoolSlot {
    var warmingFD: Int32 { -1 }
    func finishWarming() -> Bool { true }
    var cpu: Int32? { nil }
    var copiedAtForkBytes: UInt64 { 0 }
}

struct PoolSnapshot: Sendable {
    var target: Int
    var idle: Int
    var busy: Int
    var starting: Int
    var failedStarts: Int
    var retired: Int
    var draining: Bool
    var slots: [SlotInfo]
}

struct SlotInfo: Sendable {
    var id: String
    var state: String
    var pid: pid_t
    /// The uid the zygote runs as, and the one its run children become.
    var zygoteUID: UInt32
    var hostUID: UInt32
    var runsServed: Int
    var age: Duration
    var lastStatus: Execd_V1_Status
    var lastPeakMemory: UInt64
    var copiedAtForkBytes: UInt64
}


/// Lets admin requests act on pools of any slot type.
protocol AdministeredPool: AnyObject {
    func setDraining(_ draining: Bool)
    func resize(_ target: Int)
    func recycle()
}

/// Warm slots of one language: taken by a run, given back healthy or retired, refilled in the background.
///
/// Slots are started and retired on one long-lived thread of the pool's own: a sandbox's parent-death signal is
/// tied to the thread that spawned it, so that thread must live as long as the slots.
final class SlotPool<Slot: PoolSlot>: @unchecked Sendable {
    struct Settings: Sendable {
        var target: Int
        var maxRunsPerSlot = 1000
        var maxSlotAge: Duration = .seconds(600)
        /// Slots warming up at once. Above 1 only for slots that warm up after `start` returns (see `warmingFD`):
        /// their start-up then runs in parallel, on as many cores.
        var maxWarming = 1
        /// A slot still warming up after this is retired as a failed start.
        var warmingTimeout: Duration = .seconds(10)
        /// Slots cleaned up at once after their runs. A cleanup mostly waits (for the run's last process to exit,
        /// for the next warm child): one at a time, slots queued for it under load and runs waited for slots.
        var cleaners = 4
    }

    private struct State {
        var settings: Settings
        var idle: [Slot] = []
        var busy: [String: Slot] = [:]
        var starting = 0
        /// Slots given back with a cleanup that has not finished yet.
        var cleaning = 0
        var toRetire: [Slot] = []
        var warming: [(slot: Slot, since: ContinuousClock.Instant)] = []
        var failedStarts = 0
        var consecutiveFailures = 0
        var retired = 0
        var draining = false
        var stopped = false
        var counter = 0
        var threadRunning = false
    }

    private let state: Mutex<State>
    private let cleaners: NIOThreadPool
    private let wake = NSCondition()
    /// Signalled when a slot becomes idle (for `take`'s waiters).
    private let available = NSCondition()
    private var thread: Thread?
    private let start: @Sendable (String) throws -> Slot
    private let name: String
    let onEvent: @Sendable (String) -> Void

    /// `start` makes a warm slot with the given id (blocking; called on the pool's thread).
    init(name: String, settings: Settings, start: @escaping @Sendable (String) throws -> Slot,
         onEvent: @escaping @Sendable (String) -> Void) {
        self.name = name
        state = Mutex(State(settings: settings))
        cleaners = NIOThreadPool(numberOfThreads: max(1, settings.cleaners))
        cleaners.start()
        self.start = start
        self.onEvent = onEvent
        let thread = Thread { [unowned self] in self.maintain() }
        self.thread = thread
        thread.start()
    }

    /// An idle, live slot for a run, or nil when none is ready (the caller then runs one-shot). When none is idle but
    /// one is being cleaned up after its run (about a millisecond) or started, waits for it up to `patience`: a
    /// one-shot sandbox costs ten times that.
    func take(patience: Duration = .milliseconds(20)) -> Slot? {
        let deadline = ContinuousClock.now + patience
        while true {
            let (slot, comingSoon): (Slot?, Bool) = state.withLock { s in
                guard !s.draining else { return (nil, false) }
                guard !s.idle.isEmpty else { return (nil, s.cleaning > 0 || s.starting > 0) }
                let slot = s.idle.remove(at: Self.leastLoaded(idle: s.idle, busy: s.busy.values))
                s.busy[slot.id] = slot
                return (slot, false)
            }
            guard let slot else {
                guard comingSoon, ContinuousClock.now < deadline else { return nil }
                available.lock()
                if state.withLock({ $0.idle.isEmpty }) {
                    _ = available.wait(until: Date().addingTimeInterval(0.002))
                }
                available.unlock()
                continue
            }
            if slot.isAlive { return slot }
            giveBack(slot, healthy: false)  // died while idle: replace it and try the next one
        }
    }

    /// Which idle slot a run gets: the most recently idle one (its pages are the likeliest to be in a cache) on the CPU
    /// with the fewest busy slots (a busy slot is running a program, or being cleaned up after one, on its CPU).
    static func leastLoaded(idle: [Slot], busy: some Collection<Slot>) -> Int {
        var load: [Int32: Int] = [:]
        for slot in busy { if let cpu = slot.cpu { load[cpu, default: 0] += 1 } }
        var best = idle.count - 1
        for index in idle.indices.reversed() where load[idle[index].cpu ?? -1, default: 0] < load[idle[best].cpu ?? -1, default: 0] {
            best = index
        }
        return best
    }

    /// Returns a slot after a run. An unhealthy, worn-out or old slot is retired and replaced, never reused.
    /// `cleanup`, if given, runs on one of the pool's cleaner threads before the slot is idle again (emptying the
    /// run's cgroup, placing the next warm child), so the run's result need not wait for it. The slot counts as busy
    /// until then.
    /// `cleanup` returns false when it could not finish (e.g. the run's processes would not die): the slot is retired.
    func giveBack(_ slot: Slot, healthy: Bool, cleanup: (@Sendable () -> Bool)? = nil) {
        if let cleanup {
            state.withLock { $0.cleaning += 1 }
            // Straight to a cleaner thread (not through the pool's thread: one wake-up less per run). The slot stays
            // busy until the cleanup has given it back.
            cleaners.submit { [unowned self] _ in
                let clean = cleanup()
                self.giveBack(slot, healthy: healthy && clean)
                self.state.withLock { $0.cleaning -= 1 }
            }
            return
        }
        let idle = state.withLock { s in
            s.busy[slot.id] = nil
            let worn = slot.runsServed >= s.settings.maxRunsPerSlot || ContinuousClock.now - slot.started > s.settings.maxSlotAge
            if healthy && !worn && !s.draining && !s.stopped && s.idle.count + s.busy.count < s.settings.target {
                s.idle.append(slot)
                return true
            }
            s.toRetire.append(slot)  // (once stopped, too: a cleanup that ends during shutdown must not leave it idle)
            return false
        }
        // A slot going idle gives the pool's thread nothing to do: it is woken only for one to retire.
        if idle { announceAvailable() } else { signal() }
    }

    func resize(_ target: Int) {
        state.withLock { s in
            s.settings.target = target
            while s.idle.count + s.busy.count > target, let slot = s.idle.popLast() { s.toRetire.append(slot) }
        }
        signal()
    }

    /// Replaces every slot (busy ones when their run ends).
    func recycle() {
        state.withLock { s in
            s.toRetire += s.idle
            s.idle.removeAll()
            for slot in s.busy.values { slot.runsServed = Int.max }  // retired on give-back
        }
        signal()
    }

    func setDraining(_ draining: Bool) {
        state.withLock { s in
            s.draining = draining
            if draining { s.toRetire += s.idle; s.idle.removeAll() }
        }
        signal()
    }

    /// Retires every slot and stops the pool's thread; returns once no zygote is left.
    func shutdown() {
        state.withLock { s in
            s.stopped = true
            s.toRetire += s.idle
            s.idle.removeAll()
        }
        signal()
        while state.withLock({ $0.threadRunning }) { Thread.sleep(forTimeInterval: 0.005) }
        try? cleaners.syncShutdownGracefully()  // idle by now: the pool's thread ends only once no slot is busy
    }

    var snapshot: PoolSnapshot {
        state.withLock { s in
            let now = ContinuousClock.now
            func info(_ slot: Slot, _ state: String) -> SlotInfo {
                SlotInfo(id: slot.id, state: state, pid: slot.sandboxPID, zygoteUID: slot.zygoteHostID, hostUID: slot.runHostID, runsServed: slot.runsServed,
                         age: now - slot.started, lastStatus: slot.lastStatus, lastPeakMemory: slot.lastPeakMemory,
                         copiedAtForkBytes: slot.copiedAtForkBytes)
            }
            return PoolSnapshot(
                target: s.settings.target, idle: s.idle.count, busy: s.busy.count, starting: s.starting,
                failedStarts: s.failedStarts, retired: s.retired, draining: s.draining,
                slots: s.idle.map { info($0, "idle") } + s.busy.values.map { info($0, "leased") })
        }
    }

    private func announceAvailable() {
        available.lock()
        available.broadcast()
        available.unlock()
    }

    private func signal() {
        wake.lock()
        wake.signal()
        wake.unlock()
    }

    /// The pool's thread: retire what must go, start what is missing, sleep until there is work.
    private func maintain() {
        Thread.current.name = "execd-\(name)"
        state.withLock { $0.threadRunning = true }
        while true {
            // A slot that died while idle (a crashed zygote, a killed worker) is noticed here, not by a run.
            let idle = state.withLock { $0.idle }
            let dead = Set(idle.filter { !$0.isAlive }.map(\.id))
            let (retire, needed, stopped, backoff) = state.withLock { s -> ([Slot], Int, Bool, Bool) in
                s.toRetire += s.idle.filter { dead.contains($0.id) }
                s.idle.removeAll { dead.contains($0.id) }
                // Above target (a slot that finished starting after a resize down): the surplus idle slots go.
                while s.idle.count + s.busy.count + s.warming.count > s.settings.target, let slot = s.idle.popLast() {
                    s.toRetire.append(slot)
                }
                if s.stopped || s.draining {
                    // Idle too: a slot whose start was under way when the stop or the drain began lands here after.
                    s.toRetire += s.idle + s.warming.map(\.slot)
                    s.idle.removeAll()
                    s.warming.removeAll()
                }
                let retire = s.toRetire
                s.toRetire.removeAll()
                s.retired += retire.count
                let have = s.idle.count + s.busy.count + s.warming.count
                let room = max(0, s.settings.maxWarming - s.warming.count)
                let needed = s.stopped || s.draining ? 0 : min(room, max(0, s.settings.target - have))
                s.starting = s.warming.count + (needed > 0 ? 1 : 0)
                return (retire, needed, s.stopped, s.consecutiveFailures > 0)
            }
            for slot in retire { slot.retire() }
            if stopped && state.withLock({ $0.busy.isEmpty && $0.toRetire.isEmpty && $0.warming.isEmpty }) {
                break
            }
            if needed > 0 {
                if backoff { Thread.sleep(forTimeInterval: 0.2) }  // a broken setup must not spin the CPU
                let id = state.withLock { s -> String in
                    s.counter += 1
                    return "slot-\(name)-\(s.counter)"
                }
                do {
                    let slot = try start(id)
                    state.withLock { s in
                        s.starting = s.warming.count
                        if slot.warmingFD >= 0 {
                            s.warming.append((slot, ContinuousClock.now))
                        } else {
                            s.consecutiveFailures = 0
                            s.idle.append(slot)
                        }
                    }
                    announceAvailable()
                } catch {
                    state.withLock { s in
                        s.starting = s.warming.count
                        s.failedStarts += 1
                        s.consecutiveFailures += 1
                    }
                    onEvent("zygote start failed: \(error)")
                }
                continue
            }
            if state.withLock({ !$0.warming.isEmpty }) {
                awaitWarming()  // waits on the warming slots instead of the condition (≤ 5 ms, so nothing else waits long)
                continue
            }
            wake.lock()
            if state.withLock({ $0.toRetire.isEmpty && ($0.stopped || $0.draining || $0.idle.count + $0.busy.count >= $0.settings.target) }) {
                _ = wake.wait(until: Date().addingTimeInterval(stopped ? 0.01 : 1))
            }
            wake.unlock()
        }
        state.withLock { $0.threadRunning = false }
    }

    /// Waits up to 5 ms for warming slots; those that became ready go idle, those that failed or took too long retire.
    private func awaitWarming() {
        let (warming, timeout) = state.withLock { ($0.warming, $0.settings.warmingTimeout) }
        var fds = warming.map { pollfd(fd: $0.slot.warmingFD, events: Int16(POLLIN), revents: 0) }
        _ = poll(&fds, nfds_t(fds.count), 5)
        let now = ContinuousClock.now
        for (entry, fd) in zip(warming, fds) where fd.revents != 0 || now - entry.since > timeout {
            let ready = fd.revents != 0 && entry.slot.finishWarming()
            state.withLock { s in
                s.warming.removeAll { $0.slot.id == entry.slot.id }
                s.starting = s.warming.count
                if ready {
                    s.consecutiveFailures = 0
                    s.idle.append(entry.slot)
                } else {
                    s.failedStarts += 1
                    s.consecutiveFailures += 1
                    s.toRetire.append(entry.slot)
                }
            }
            if !ready { onEvent("slot \(entry.slot.id) did not become ready") }
        }
    }
}

extension SlotPool: AdministeredPool {}
