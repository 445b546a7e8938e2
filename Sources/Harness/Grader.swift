import ExecProtocol
import Foundation

/// Turns what a run reported into per-test verdicts (trusted side: expected values live only here).
struct Grader: Sendable {
    let plan: JudgePlan

    private func base(_ index: Int) -> Execd_V1_TestResult {
        let t = plan.tests[index]
        var r = Execd_V1_TestResult()
        r.name = t.name
        r.hidden = t.hidden
        r.weight = t.weight
        return r
    }

    /// Grades a test the runner finished. `stdout` overrides the record's (JavaScript stdio tests).
    func grade(_ index: Int, _ o: TestOutcome, stdout: [UInt8]? = nil) -> Execd_V1_TestResult {
        let t = plan.tests[index]
        var r = base(index)
        r.timeUs = UInt64(max(0, o.elapsed.microseconds))
        let out = stdout ?? o.stdout
        r.stdout = Data(out)
        r.stderr = Data(o.stderr)
        switch o.status {
        case .outputLimit:
            r.status = .outputLimit
            r.message = "output limit exceeded (\(plan.outputBytes) bytes of stdout per test)"
        case .memoryLimit:
            r.status = .memoryLimit
            r.message = "memory limit exceeded (MemoryError)"
        case .error:
            let assertion = plan.kind == .script && o.errorType.hasPrefix("AssertionError")
            r.status = assertion ? .wrongAnswer : .runtimeError
            r.message = o.traceback.isEmpty ? "\(o.errorType): \(o.errorMessage)" : o.traceback
        case .ok:
            switch plan.kind {
            case .function:
                let actual = o.value.map(JudgeValue.init(json:)) ?? .null
                r.actualJson = actual.json.text
                r.expectedJson = t.expected?.json.text ?? "null"
                if let d = ValueComparator(plan.compare).difference(actual: actual, expected: t.expected ?? .null) {
                    r.status = .wrongAnswer
                    r.message = d
                } else {
                    r.status = .accepted
                }
            case .stdio:
                r.expectedStdout = t.expectedStdout
                let d = TextComparator(plan.compare).difference(
                    actual: String(decoding: out, as: UTF8.self),
                    expected: String(decoding: t.expectedStdout, as: UTF8.self))
                r.status = d == nil ? .accepted : .wrongAnswer
                r.message = d ?? ""
            default:
                r.status = .accepted
            }
        }
        if r.timeUs > UInt64(t.timeLimit.microseconds) {
            r.status = .timeLimit
            r.message = "time limit exceeded (\(t.timeLimit.milliseconds) ms)"
        }
        return redacted(r)
    }

    /// A test the run died in: the run's fate is the test's verdict.
    func interrupted(
        _ index: Int, run: Execd_V1_RunResult, killedByDeadline: Bool, elapsed: Duration, corrupted: Bool
    ) -> Execd_V1_TestResult {
        var r = base(index)
        let t = plan.tests[index]
        r.timeUs = UInt64(max(0, elapsed.microseconds))
        r.stderr = run.stderr
        if corrupted {
            r.status = .runtimeError
            r.message = "the program wrote to the judge's result channel"
        } else if run.status == .memoryLimit {
            r.status = .memoryLimit
            r.message = "memory limit exceeded"
        } else if killedByDeadline || run.status == .timeLimit {
            r.status = .timeLimit
            r.message = "time limit exceeded (\(t.timeLimit.milliseconds) ms)"
        } else if run.status == .outputLimit {
            r.status = .outputLimit
            r.message = "output limit exceeded"
        } else if run.status == .signaled {
            r.status = .runtimeError
            r.message = "the program was killed by signal \(run.signal) during this test"
        } else {
            r.status = .runtimeError
            r.message = "the program exited (exit code \(run.exitCode)) during this test"
        }
        if plan.oneRunPerTest { r.stdout = run.stdout }
        return redacted(r)
    }

    /// A test that did not get to run.
    func notRun(_ index: Int, _ why: String) -> Execd_V1_TestResult {
        var r = base(index)
        r.status = .notRun
        r.message = why
        return redacted(r)
    }

    /// A test that failed with a whole-run verdict (e.g. the module raised while loading).
    func failed(_ index: Int, _ status: Execd_V1_Verdict, _ why: String, stdout: Data = Data(), stderr: Data = Data())
        -> Execd_V1_TestResult
    {
        var r = base(index)
        r.status = status
        r.message = why
        r.stdout = stdout
        r.stderr = stderr
        return redacted(r)
    }

    /// Hidden tests keep pass/fail and timing only.
    private func redacted(_ r: Execd_V1_TestResult) -> Execd_V1_TestResult {
        guard r.hidden else { return r }
        var h = Execd_V1_TestResult()
        h.name = r.name
        h.hidden = true
        h.weight = r.weight
        h.status = r.status
        h.timeUs = r.timeUs
        return h
    }
}

extension Duration {
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
    var milliseconds: Int64 { microseconds / 1000 }
}
