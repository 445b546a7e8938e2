import ExecProtocol
import Foundation

/// Builds the sandboxed run for a range of tests: the runner as the program, the submission and the test
/// inputs (never expected values) as files under /tmp/judge.
enum RunnerFiles {
    /// The runner's source for a language, from the bundle's `Runners` resources.
    static func runner(_ language: JudgePlan.Language) throws(JudgeError) -> Data {
        let name = language == .python ? "harness.py" : "harness.js"
        guard let url = Bundle.module.url(forResource: "Runners/\(name)", withExtension: nil)
            ?? Bundle.module.url(forResource: name, withExtension: nil),
            let data = try? Data(contentsOf: url)
        else { throw .internalError("runner resource \(name) is missing from the Harness bundle") }
        return data
    }

    /// 128 random bits as hex: records without it are ignored.
    static func nonce() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(format: "%08x", UInt32.random(in: .min ... .max, using: &g)) }.joined()
    }

    static func request(plan: JudgePlan, range: Range<Int>, nonce: String, budget: Duration) throws(JudgeError)
        -> Execd_V1_RunRequest
    {
        var r = Execd_V1_RunRequest()
        r.language = plan.language == .python ? .python : .javascript
        r.code = try runner(plan.language)
        let ext = plan.language == .python ? "py" : "js"
        r.files.append(file("judge/solution.\(ext)", plan.submission))
        r.files.append(file("judge/config.json", Data(config(plan: plan, range: range, nonce: nonce).text.utf8)))
        if plan.kind == .stdio {
            if plan.oneRunPerTest {
                r.stdin = plan.tests[range.lowerBound].stdin
            } else {
                for k in range { r.files.append(file("judge/stdin/\(k)", plan.tests[k].stdin)) }
            }
        }
        let ms = UInt64(max(1, budget.milliseconds))
        r.limits.wallTimeMs = ms
        r.limits.cpuTimeMs = ms
        r.limits.memoryBytes = plan.memoryBytes
        r.limits.outputBytes = plan.outputBytes + (64 << 10)
        return r
    }

    private static func file(_ path: String, _ content: Data) -> Execd_V1_File {
        var f = Execd_V1_File()
        f.path = path
        f.content = content
        return f
    }

    static func config(plan: JudgePlan, range: Range<Int>, nonce: String) -> JSONValue {
        let kind =
            switch plan.kind {
            case .function: "function"
            case .stdio: "stdio"
            default: "script"
            }
        let tests: [JSONValue] = range.map { k in
            let t = plan.tests[k]
            var m: [JSONValue.Member] = []
            if let args = t.args { m.append(.init("args", args)) }
            if t.design { m.append(.init("design", .bool(true))) }
            if !t.code.isEmpty { m.append(.init("code", .string(t.code))) }
            return .object(m)
        }
        return .object([
            .init("nonce", .string(nonce)), .init("kind", .string(kind)), .init("entry", .string(plan.entry)),
            .init("start", .number(String(range.lowerBound))), .init("end", .number(String(range.upperBound))),
            .init("output_bytes", .number(String(plan.outputBytes))), .init("implicit", .bool(plan.implicit)),
            .init("test_code", .string(plan.testCode)), .init("tests", .array(tests)),
        ])
    }

    /// A one-line account of how a run ended.
    static func describe(_ run: Execd_V1_RunResult) -> String {
        switch run.status {
        case .timeLimit: "time limit exceeded"
        case .memoryLimit: "memory limit exceeded"
        case .outputLimit: "output limit exceeded"
        case .signaled: "killed by signal \(run.signal)"
        case .runtimeError: "exit code \(run.exitCode)"
        default: "exited with code \(run.exitCode)"
        }
    }
}
