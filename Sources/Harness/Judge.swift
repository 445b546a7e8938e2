import ExecProtocol
import Foundation

/// Judges a submission against a test specification: runs every test in as few sandboxed runs as
/// possible (one, unless a test kills the run), compares on the trusted side and scores.
public struct Judge: Sendable {
    /// Tunables; the defaults suit the daemon.
    public struct Configuration: Sendable {
        /// Unplanned restarts (after a test crashed or timed out) before the remaining tests are not run.
        public var maxRestarts = 32
        /// Upper bound for one run's wall/CPU limit (the daemon's maximum), nil for none.
        public var maxRunTime: Duration?
        public init() {}
    }

    private let executor: any RunExecutor
    private let configuration: Configuration

    /// The Python runner's source, byte for byte the program of every judged Python run (a zygote compiles it
    /// ahead of its runs).
    public static func pythonRunner() throws -> Data { try RunnerFiles.runner(.python) }

    public init(executor: any RunExecutor, configuration: Configuration = .init()) {
        self.executor = executor
        self.configuration = configuration
    }

    /// Judges one request. Throws `JudgeError.badRequest` for invalid requests and
    /// `JudgeError.internalError` when a run fails for reasons not the submission's.
    public func judge(_ request: Execd_V1_JudgeRequest) async throws -> Execd_V1_JudgeResult {
        let plan = try JudgePlan(request)
        let started = ContinuousClock.now
        var session = Session(plan: plan, grader: Grader(plan: plan))
        try await session.run(executor: executor, configuration: configuration, until: started + plan.totalTimeLimit)
        var result = session.finish()
        result.wallTimeUs = UInt64(max(0, (ContinuousClock.now - started).microseconds))
        return result
    }
}

/// The state of one judging: per-test results filled in run by run.
private struct Session {
    let plan: JudgePlan
    let grader: Grader
    var results: [Execd_V1_TestResult?]
    var runs = 0
    var restarts = 0
    var compileError: Execd_V1_CompileError?
    var message = ""

    init(plan: JudgePlan, grader: Grader) {
        self.plan = plan
        self.grader = grader
        results = Array(repeating: nil, count: plan.tests.count)
    }

    mutating func run(executor: any RunExecutor, configuration: Judge.Configuration, until end: ContinuousClock.Instant)
        async throws
    {
        var next = 0
        while next < plan.tests.count {
            let remaining = end - .now
            guard remaining > .milliseconds(50) else {
                return fillRest(from: next, .notRun, "not run: the overall time limit was reached")
            }
            let range = next..<(plan.oneRunPerTest ? next + 1 : plan.tests.count)
            let nonce = RunnerFiles.nonce()
            let grader = self.grader
            let failFast = plan.failFast && !plan.oneRunPerTest
            var stop: (@Sendable (Int, TestOutcome) -> Bool)? = nil
            if failFast {
                stop = { @Sendable i, o in grader.grade(i, o).status != .accepted }
            }
            let monitor = RunMonitor(nonce: nonce, range: range, limits: plan.tests.map(\.timeLimit), failsFast: stop)
            var budget = remaining
            if let cap = configuration.maxRunTime { budget = min(budget, cap) }
            let request = try RunnerFiles.request(plan: plan, range: range, nonce: nonce, budget: budget)
            let run: Execd_V1_RunResult = try await executor.execute(request, sideChannel: monitor)
            runs += 1
            if run.status == .internalError { throw JudgeError.internalError(run.internalError) }
            let snap = monitor.snapshot
            guard let resume = try absorb(snap, run: run, range: range) else { return }
            if resume < range.upperBound || !snap.done {
                // The run died in (or between) tests: an unplanned restart.
                restarts += 1
                if restarts > configuration.maxRestarts {
                    return fillRest(from: resume, .notRun, "not run: too many crashes")
                }
            }
            next = resume
        }
    }

    static func runLimitVerdict(_ run: Execd_V1_RunResult) -> Execd_V1_Verdict? {
        switch run.status {
        case .outputLimit: .outputLimit
        case .memoryLimit: .memoryLimit
        default: nil
        }
    }

    /// Records what one run produced; returns where to continue, or nil when judging is over.
    private mutating func absorb(_ snap: RunMonitor.Snapshot, run: Execd_V1_RunResult, range: Range<Int>) throws
        -> Int?
    {
        if let c = snap.compileError {
            compileError = c
            fillRest(from: 0, .notRun, "not run: compile error")
            return nil
        }
        if let m = snap.missingEntry {
            var c = Execd_V1_CompileError()
            c.message = m
            c.details = m
            compileError = c
            fillRest(from: 0, .notRun, "not run: \(m)")
            return nil
        }
        if let s = snap.specError { throw JudgeError.badRequest(s) }
        if let load = snap.loadError {
            message = "your code raised an exception while loading:\n" + load.traceback
            for k in range {
                results[k] = grader.failed(
                    k, .runtimeError, message, stdout: Data(load.stdout), stderr: Data(load.stderr))
            }
            fillRest(from: range.upperBound, .notRun, "not run")
            return nil
        }
        for (i, o) in snap.outcomes {
            // A test with a run of its own that hit a run-wide limit gets that verdict, even if the runner managed
            // to report the test before execd killed the run (its stdout is truncated then, so comparing it says
            // nothing).
            if plan.oneRunPerTest, let limit = Self.runLimitVerdict(run) {
                results[i] = grader.failed(i, limit, limit == .outputLimit ? "output limit exceeded" : "memory limit exceeded",
                                           stdout: run.stdout, stderr: run.stderr)
                continue
            }
            results[i] = grader.grade(i, o, stdout: plan.oneRunPerTest ? Array(run.stdout) : nil)
        }
        let failed = snap.outcomes.contains { results[$0.index]?.status != .accepted }
        if snap.stopRequested || (plan.failFast && failed) {
            fillRest(from: snap.nextIndex, .notRun, "not run: fail-fast")
            return nil
        }
        if let cur = snap.current {
            let killed = snap.deadlineIsTestLimit && snap.deadline.map { $0 <= .now } == true
            results[cur.index] = grader.interrupted(
                cur.index, run: run, killedByDeadline: killed, elapsed: .now - cur.started, corrupted: snap.corrupted)
            if plan.failFast {
                fillRest(from: cur.index + 1, .notRun, "not run: fail-fast")
                return nil
            }
            return cur.index + 1
        }
        if snap.done || snap.nextIndex >= range.upperBound { return range.upperBound }
        if snap.outcomes.isEmpty {
            // Died before its first test (while loading): every restart would do the same.
            let verdict: Execd_V1_Verdict =
                switch run.status {
                case .memoryLimit: .memoryLimit
                case .timeLimit: .timeLimit
                case .outputLimit: .outputLimit
                default: .runtimeError
                }
            message = "your program failed while loading (\(RunnerFiles.describe(run)))"
            fillRest(from: snap.nextIndex, verdict, message)
            return nil
        }
        return snap.nextIndex
    }

    private mutating func fillRest(from start: Int, _ status: Execd_V1_Verdict, _ why: String) {
        for k in start..<plan.tests.count where results[k] == nil {
            results[k] = status == .notRun ? grader.notRun(k, why) : grader.failed(k, status, why)
        }
    }

    func finish() -> Execd_V1_JudgeResult {
        var r = Execd_V1_JudgeResult()
        r.tests = results.enumerated().map { $1 ?? grader.notRun($0, "not run") }
        r.total = UInt32(r.tests.count)
        r.passed = UInt32(r.tests.filter { $0.status == .accepted }.count)
        r.maxScore = plan.tests.reduce(0) { $0 + $1.weight }
        r.score = zip(plan.tests, r.tests).reduce(0) { $0 + ($1.1.status == .accepted ? $1.0.weight : 0) }
        r.runs = UInt32(runs)
        r.message = message
        if let compileError {
            r.verdict = .compileError
            r.compileError = compileError
        } else {
            r.verdict = r.tests.first { $0.status != .accepted && $0.status != .notRun }?.status ?? .accepted
            if r.verdict == .accepted, r.passed < r.total { r.verdict = .timeLimit }  // overall limit reached
        }
        return r
    }
}
