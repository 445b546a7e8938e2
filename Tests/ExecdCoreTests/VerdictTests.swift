import Foundation
import ExecProtocol
import SandboxOS
import Synchronization
import Testing

@testable import ExecdCore

/// The verdict rules, on made-up outcomes (logic only; the end-to-end tests produce real ones).
struct VerdictTests {
    func outcome(status: Int32? = nil, killed: KillReason? = nil, wall: Duration = .milliseconds(10)) -> MonitorOutcome {
        var o = MonitorOutcome()
        o.programStatus = status
        o.killedFor = killed
        o.wallTime = wall
        o.reaperExit = .exited(0)
        return o
    }

    func decide(_ o: MonitorOutcome, cpu: Duration = .milliseconds(5), oom: Int = 0) -> Verdict {
        Verdict.decide(o, cpuTime: cpu, cpuLimit: .seconds(1), wallLimit: .seconds(3), oomKills: oom)
    }

    @Test func exitCodes() {
        #expect(decide(outcome(status: 0)).status == .ok)
        let failed = decide(outcome(status: 3 << 8))
        #expect(failed.status == .runtimeError && failed.exitCode == 3)
    }

    @Test func signalsAreSignaledExceptTheCPURlimit() {
        let segv = decide(outcome(status: 11))
        #expect(segv.status == .signaled && segv.signal == 11)
        let xcpu = decide(outcome(status: 24))
        #expect(xcpu.status == .timeLimit && xcpu.timeLimitKind == .cpu)
    }

    @Test func limitsEnforcedByExecdWinOverHowTheProgramEnded() {
        #expect(decide(outcome(status: 9, killed: .outputLimit)).status == .outputLimit)
        #expect(decide(outcome(status: 9, killed: .cpuTime)).timeLimitKind == .cpu)
        #expect(decide(outcome(status: 9, killed: .wallTime)).timeLimitKind == .wall)
        #expect(decide(outcome(killed: .memory)).status == .memoryLimit)
    }

    @Test func memoryLimitComesOnlyFromTheOOMEvent() {
        #expect(decide(outcome(status: 9)).status == .signaled)  // a SIGKILL alone is not an OOM
        #expect(decide(outcome(status: 9), oom: 1).status == .memoryLimit)
    }

    @Test func overrunsFoundAfterTheFactStillCount() {
        #expect(decide(outcome(status: 0), cpu: .milliseconds(1001)).status == .timeLimit)
        #expect(decide(outcome(status: 0, wall: .seconds(4))).timeLimitKind == .wall)
    }

    @Test func ourFailuresAreInternalErrors() {
        var o = outcome(status: 127 << 8)
        o.setupError = ChildSetupError(rawStage: ChildStage.exec.rawValue, errno: 2)
        let v = decide(o)
        #expect(v.status == .internalError && v.internalError.contains("executing the interpreter"))
        #expect(decide(outcome()).status == .internalError)  // no status reported at all
    }
}

struct RunLimitsTests {
    @Test func zeroMeansDefault() throws {
        #expect(try RunLimits.resolve(Execd_V1_Limits(), defaults: .defaults, maxima: .maxima) == .defaults)
    }

    @Test func cpuLimitSetsTheWallLimit() throws {
        var w = Execd_V1_Limits()
        w.cpuTimeMs = 500
        let r = try RunLimits.resolve(w, defaults: .defaults, maxima: .maxima)
        #expect(r.cpuTime == .milliseconds(500) && r.wallTime == .seconds(2))
        w.wallTimeMs = 700
        #expect(try RunLimits.resolve(w, defaults: .defaults, maxima: .maxima).wallTime == .milliseconds(700))
    }

    @Test func aboveTheMaximumIsRefusedByName() {
        var w = Execd_V1_Limits()
        w.memoryBytes = 1 << 40
        #expect { try RunLimits.resolve(w, defaults: .defaults, maxima: .maxima) } throws: {
            "\($0)".contains("limits.memory_bytes") && "\($0)".contains("maximum")
        }
        var few = Execd_V1_Limits()
        few.maxProcesses = 2
        #expect { try RunLimits.resolve(few, defaults: .defaults, maxima: .maxima) } throws: { "\($0)".contains("max_processes") }
    }
}

extension AdmissionGate {
    /// Waits for a slot: `enter` as the tests drive it, from tasks. Throws `Refusal`; `.cancelled` if the task is
    /// cancelled while waiting. (The daemon goes through `RunEngine.submit` and `RunHandle` instead.)
    func acquire(client: UInt64 = 0, deadline: ContinuousClock.Instant? = nil) async throws(Refusal) {
        let waiter = Mutex<(id: UInt64?, cancelled: Bool)>((nil, false))
        let result: Result<Void, Refusal> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let id = enter(client: client, deadline: deadline) { continuation.resume(returning: $0) }
                let cancelled = waiter.withLock { w in
                    w.id = id
                    return w.cancelled
                }
                if cancelled, let id { cancel(id, client: client, with: .cancelled) }
            }
        } onCancel: {
            let id = waiter.withLock { w in
                w.cancelled = true
                return w.id
            }
            if let id { cancel(id, client: client, with: .cancelled) }
        }
        try result.get()
    }
}

struct AdmissionGateTests {
    @Test func refusesWhenTheQueueIsFullAndHandsSlotsOn() async throws {
        let gate = AdmissionGate(capacity: 1, queueLimit: 1)
        try await gate.acquire()
        let waiter = Task { try await gate.acquire() }
        while gate.queued == 0 { await Task.yield() }
        await #expect(throws: AdmissionGate.Refusal.self) { try await gate.acquire() }
        gate.release()
        try await waiter.value  // got the slot
        #expect(gate.running == 1)
        gate.release()
        #expect(gate.running == 0)
    }

    @Test func waitersAreServedRoundRobinAcrossClients() async throws {
        let gate = AdmissionGate(capacity: 1, queueLimit: 16)
        try await gate.acquire(client: 1)
        let order = OrderLog()
        var tasks: [Task<Void, any Error>] = []
        for (client, label) in [(1, "a1"), (1, "a2"), (1, "a3"), (2, "b1")] as [(UInt64, String)] {
            let expected = gate.queued + 1
            tasks.append(Task { try await gate.acquire(client: client); await order.append(label) })
            while gate.queued < expected { await Task.yield() }
        }
        for _ in 0..<4 {
            gate.release()
            let served = await order.count
            while await order.count == served { await Task.yield() }
        }
        for task in tasks { try await task.value }
        #expect(await order.entries == ["a1", "b1", "a2", "a3"])  // b1 does not wait behind all of client 1
    }

    @Test func cancellingAWaitingTaskTakesItOutOfTheQueue() async throws {
        let gate = AdmissionGate(capacity: 1, queueLimit: 4)
        try await gate.acquire()
        let waiter = Task { try await gate.acquire() }
        while gate.queued == 0 { await Task.yield() }
        waiter.cancel()
        await #expect(throws: AdmissionGate.Refusal.cancelled) { try await waiter.value }
        #expect(gate.queued == 0)
        gate.release()
        #expect(gate.running == 0, "the cancelled waiter must not have been handed the slot")
    }

    /// At most `activeLimit` runs are active; a parked run makes room for the next, and still counts against
    /// `capacity` until it ends.
    @Test func parkedRunsMakeRoomForActiveOnesWithinCapacity() async throws {
        let gate = AdmissionGate(capacity: 2, activeLimit: 1, queueLimit: 8)
        try await gate.acquire()  // A
        let b = Task { try await gate.acquire() }
        while gate.queued == 0 { await Task.yield() }
        #expect(gate.running == 1, "B waits while A is active")
        gate.park()  // A waits for something: B may compute
        try await b.value
        #expect(gate.running == 2 && gate.active == 1 && gate.queued == 0)
        let c = Task { try await gate.acquire() }
        while gate.queued == 0 { await Task.yield() }
        gate.park()  // B parks too, but capacity (2) is reached: C still waits
        #expect(gate.queued == 1 && gate.active == 0)
        gate.release(parked: true)  // A ends
        try await c.value
        #expect(gate.running == 2 && gate.active == 1)
        gate.release(parked: true)  // B
        gate.release()  // C
        #expect(gate.running == 0 && gate.active == 0)
    }

    @Test func deadlineExpiresAWaiter() async throws {
        let gate = AdmissionGate(capacity: 1, queueLimit: 4)
        try await gate.acquire()
        await #expect(throws: AdmissionGate.Refusal.self) {
            try await gate.acquire(deadline: .now + .milliseconds(50))
        }
    }
}

actor OrderLog {
    private(set) var entries: [String] = []
    var count: Int { entries.count }
    func append(_ entry: String) { entries.append(entry) }
}

struct ZygotePayloadTests {
    @Test func headerIsValidJSONWhateverThePathsAndArguments() throws {
        let files = [SandboxFile(path: "/tmp/main.py", contents: Array("print(1)".utf8)),
                     SandboxFile(path: "/tmp/dir/\"quoted\\ and\ncontrol\u{01}", contents: [0, 1, 2], mode: 0o755)]
        let bytes = ZygoteSlot.payload(files: files, args: ["a b", "é\t\"x\""], rlimits: [ResourceLimit(.core, 0)], side: true)
        let newline = try #require(bytes.firstIndex(of: UInt8(ascii: "\n")))
        let header = try #require(try JSONSerialization.jsonObject(with: Data(bytes[..<newline])) as? [String: Any])
        #expect(header["side"] as? Bool == true)
        #expect(header["args"] as? [String] == ["a b", "é\t\"x\""])
        let paths = (header["files"] as? [[String: Any]])?.compactMap { $0["path"] as? String }
        #expect(paths == files.map(\.path))
        #expect(Array(bytes[(newline + 1)...]) == Array("print(1)".utf8) + [0, 1, 2])
    }
}
