import ExecProtocol
import Foundation
import Glibc
import Synchronization
import Testing

@testable import ExecdCore

/// SlotPool with fake slots that warm up after `start` returns (as JavaScript workers do): several warm at once,
/// a slot is handed out only once ready, and one that fails or hangs while warming is retired, never handed out.
@Suite(.serialized)
struct SlotPoolWarmingTests {
    /// A slot whose warm-up ends when the test writes "R" into its pipe (or fails when the pipe closes).
    final class FakeSlot: PoolSlot, @unchecked Sendable {
        let id: String
        let started = ContinuousClock.now
        var sandboxPID: pid_t { 0 }
        var zygoteHostID: UInt32 { 0 }
        var runHostID: UInt32 { 0 }
        var runsServed = 0
        var lastStatus: Execd_V1_Status = .unspecified
        var lastPeakMemory: UInt64 = 0
        var isAlive: Bool { true }
        let pipe: (read: Int32, write: Int32)
        let cpu: Int32?
        private let state = Mutex((warmed: false, retired: false, writeClosed: false))

        init(id: String, cpu: Int32? = nil, ready: Bool = false) {
            self.id = id
            self.cpu = cpu
            state.withLock { $0.warmed = ready }
            var fds: [Int32] = [-1, -1]
            _ = Glibc.pipe(&fds)
            pipe = (fds[0], fds[1])
        }

        deinit {
            close(pipe.read)
            if !state.withLock({ $0.writeClosed }) { close(pipe.write) }
        }

        var warmingFD: Int32 { state.withLock { $0.warmed || $0.retired } ? -1 : pipe.read }
        var retired: Bool { state.withLock { $0.retired } }

        func finishWarming() -> Bool {
            var byte: UInt8 = 0
            guard read(pipe.read, &byte, 1) == 1, byte == UInt8(ascii: "R") else { return false }
            state.withLock { $0.warmed = true }
            return true
        }

        func becomeReady() { _ = write(pipe.write, "R", 1) }
        func failWarming() {
            state.withLock { $0.writeClosed = true }
            close(pipe.write)
        }

        func retire() {
            state.withLock { $0.retired = true }
        }
    }

    final class Started: @unchecked Sendable {
        let slots = Mutex<[FakeSlot]>([])

        /// A pool of fake slots, each recorded here when started.
        func pool(_ settings: SlotPool<FakeSlot>.Settings) -> SlotPool<FakeSlot> {
            SlotPool<FakeSlot>(
                name: "fake", settings: settings,
                start: { id in
                    let slot = FakeSlot(id: id)
                    self.slots.withLock { $0.append(slot) }
                    return slot
                }, onEvent: { _ in })
        }
    }

    func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<400 where !condition() { try await Task.sleep(for: .milliseconds(5)) }
    }

    @Test func slotsWarmInParallelAndOnlyReadyOnesAreHandedOut() async throws {
        let started = Started()
        let pool = started.pool(.init(target: 3, maxRunsPerSlot: 1, maxWarming: 2))
        defer { pool.shutdown() }
        try await waitUntil { started.slots.withLock { $0.count } == 2 }
        try await Task.sleep(for: .milliseconds(30))
        #expect(started.slots.withLock { $0.count } == 2, "at most maxWarming slots warm at once")
        #expect(pool.take() == nil, "a warming slot is not handed out")
        #expect(pool.snapshot.starting == 2)

        let (first, second) = started.slots.withLock { ($0[0], $0[1]) }
        first.becomeReady()
        try await waitUntil { pool.snapshot.idle == 1 }
        #expect(pool.snapshot.idle == 1)
        second.failWarming()
        try await waitUntil { second.retired }
        #expect(second.retired && pool.snapshot.failedStarts == 1, "a failed warm-up is retired and counted")

        let taken = pool.take()
        #expect(taken === first)
        // The pool keeps starting until three are ready or busy.
        try await waitUntil { started.slots.withLock { $0.count } >= 4 }
        for slot in started.slots.withLock({ $0.dropFirst(2) }) { slot.becomeReady() }
        try await waitUntil { pool.snapshot.idle + pool.snapshot.busy == 3 }
        #expect(pool.snapshot.idle == 2 && pool.snapshot.busy == 1)
        if let taken { pool.giveBack(taken, healthy: false) }
    }

    @Test func aSlotThatNeverWarmsUpIsRetired() async throws {
        let started = Started()
        var settings = SlotPool<FakeSlot>.Settings(target: 1, maxRunsPerSlot: 1, maxWarming: 1)
        settings.warmingTimeout = .milliseconds(100)
        let pool = started.pool(settings)
        defer { pool.shutdown() }
        try await waitUntil { started.slots.withLock { $0.first?.retired ?? false } }
        #expect(started.slots.withLock { $0.first?.retired ?? false }, "a hung warm-up is retired after the timeout")
        #expect(pool.snapshot.failedStarts >= 1 && pool.take() == nil)
    }

    /// A resize down while slots are still starting: once they are ready, the surplus goes at once (not at the
    /// pool's next idle tick), so the pool is at its target as soon as it says so.
    @Test func slotsThatFinishStartingAboveTargetAreRetired() async throws {
        let started = Started()
        let pool = started.pool(.init(target: 2, maxWarming: 2))
        defer { pool.shutdown() }
        try await waitUntil { started.slots.withLock { $0.count } == 2 }
        pool.resize(1)
        for slot in started.slots.withLock({ $0 }) { slot.becomeReady() }
        let clock = ContinuousClock(), since = clock.now
        try await waitUntil { pool.snapshot.idle == 1 && started.slots.withLock { $0.filter(\.retired).count } == 1 }
        #expect(pool.snapshot.idle == 1 && pool.snapshot.target == 1)
        #expect(started.slots.withLock { $0.filter(\.retired).count } == 1)
        #expect(clock.now - since < .milliseconds(500), "retired within the pool's loop, not its idle tick")
    }

    /// A slot whose cleanup is still running when the pool shuts down is retired when the cleanup ends, not left
    /// idle (its sandbox would outlive the pool, its cgroup the daemon).
    @Test func aSlotCleanedUpDuringShutdownIsRetired() async throws {
        let started = Started()
        let pool = started.pool(.init(target: 1, maxWarming: 1))
        try await waitUntil { started.slots.withLock { $0.count } == 1 }
        started.slots.withLock { $0[0].becomeReady() }
        try await waitUntil { pool.snapshot.idle == 1 }
        let slot = try #require(pool.take())
        pool.giveBack(slot, healthy: true) {
            Thread.sleep(forTimeInterval: 0.1)  // still cleaning when shutdown begins
            return true
        }
        pool.shutdown()
        #expect(slot.retired, "retired once its cleanup ended during shutdown")
        #expect(pool.snapshot.idle == 0)
    }

    /// A slot whose start was under way when the pool was drained or stopped is retired once it has started, not
    /// left idle (while draining it would be shown idle and kept; after a stop its sandbox would end with the pool's
    /// thread and its cgroup outlive the daemon: CI caught that, execd's cgroup subtree left behind after SIGTERM).
    @Test(arguments: [false, true]) func aSlotThatFinishesStartingDuringADrainOrAStopIsRetired(stop: Bool) async throws {
        let release = DispatchSemaphore(value: 0)
        let started = Mutex<FakeSlot?>(nil)
        let pool = SlotPool<FakeSlot>(name: "fake", settings: .init(target: 1), start: { id in
            let slot = FakeSlot(id: id, ready: true)
            started.withLock { $0 = slot }
            release.wait()
            return slot
        }, onEvent: { _ in })
        try await waitUntil { started.withLock { $0 != nil } }
        let slot = try #require(started.withLock { $0 })
        let stopped = Atomic<Bool>(false)
        if stop {
            Thread.detachNewThread {
                pool.shutdown()  // returns once the pool's thread has ended, which is still in start
                stopped.store(true, ordering: .releasing)
            }
            try await Task.sleep(for: .milliseconds(50))
        } else {
            pool.setDraining(true)
        }
        release.signal()
        try await waitUntil { slot.retired && (!stop || stopped.load(ordering: .acquiring)) }
        #expect(slot.retired, "retired once started")
        #expect(pool.snapshot.idle == 0)
        if !stop { pool.shutdown() }
    }

    /// A run gets the most recently idle slot on the CPU with the fewest busy slots.
    @Test func aRunGetsAnIdleSlotOnTheLeastLoadedCPU() {
        func slot(_ id: String, _ cpu: Int32?) -> FakeSlot { FakeSlot(id: id, cpu: cpu) }
        let a0 = slot("a0", 0), b0 = slot("b0", 0), a1 = slot("a1", 1), b1 = slot("b1", 1)
        let pick = { (idle: [FakeSlot], busy: [FakeSlot]) in idle[SlotPool<FakeSlot>.leastLoaded(idle: idle, busy: busy)].id }
        #expect(pick([a0, a1, b0], []) == "b0", "nothing busy: the most recently idle")
        #expect(pick([a0, a1, b0], [b1]) == "b0", "CPU 1 is busier")
        #expect(pick([a0, a1, b0], [slot("c0", 0)]) == "a1", "CPU 0 is busier")
        #expect(pick([a0, b0, a1, b1], [slot("c0", 0), slot("d0", 0), slot("c1", 1)]) == "b1")
        #expect(pick([slot("x", nil), slot("y", nil)], [a0]) == "y", "unpinned slots: the most recently idle")
    }
}
