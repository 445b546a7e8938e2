import ExecProtocol
import Foundation

/// Renders a `JudgeResult` for `execctl judge`: JSON (`--json`) or readable text.
public enum JudgeReport {
    /// The snake_case verdict name used in JSON and text (`accepted`, `wrong_answer`, ...).
    public static func name(_ v: Execd_V1_Verdict) -> String {
        switch v {
        case .accepted: "accepted"
        case .wrongAnswer: "wrong_answer"
        case .timeLimit: "time_limit"
        case .memoryLimit: "memory_limit"
        case .runtimeError: "runtime_error"
        case .outputLimit: "output_limit"
        case .compileError: "compile_error"
        case .notRun: "not_run"
        default: "unspecified"
        }
    }

    /// The JSON document of docs/harness.md ("verdict", "passed", "total", "score", "max_score", "tests", ...).
    public static func json(_ r: Execd_V1_JudgeResult) -> String {
        var m: [JSONValue.Member] = [
            .init("verdict", .string(name(r.verdict))),
            .init("passed", .number(String(r.passed))),
            .init("total", .number(String(r.total))),
            .init("score", .double(r.score)),
            .init("max_score", .double(r.maxScore)),
            .init("time_ms", .double(Double(r.wallTimeUs / 100) / 10)),
            .init("runs", .number(String(r.runs))),
        ]
        if r.hasCompileError {
            let c = r.compileError
            m.append(
                .init(
                    "compile_error",
                    .object([
                        .init("line", .number(String(c.line))), .init("column", .number(String(c.column))),
                        .init("message", .string(c.message)), .init("details", .string(c.details)),
                    ])))
        }
        if !r.message.isEmpty { m.append(.init("message", .string(r.message))) }
        m.append(.init("tests", .array(r.tests.map(test))))
        return JSONValue.object(m).pretty()
    }

    private static func test(_ t: Execd_V1_TestResult) -> JSONValue {
        var m: [JSONValue.Member] = [
            .init("name", .string(t.name)),
            .init("status", .string(name(t.status))),
            .init("time_ms", .double(Double(t.timeUs / 100) / 10)),
            .init("hidden", .bool(t.hidden)),
            .init("weight", .double(t.weight)),
        ]
        if !t.hidden {
            if let a = try? JSONParser.parse(t.actualJson) { m.append(.init("actual", a)) }
            if let e = try? JSONParser.parse(t.expectedJson) { m.append(.init("expected", e)) }
            if !t.expectedStdout.isEmpty {
                m.append(.init("expected_stdout", .string(String(decoding: t.expectedStdout, as: UTF8.self))))
            }
            m.append(.init("stdout", .string(String(decoding: t.stdout, as: UTF8.self))))
            if !t.stderr.isEmpty { m.append(.init("stderr", .string(String(decoding: t.stderr, as: UTF8.self)))) }
            if !t.message.isEmpty { m.append(.init("message", .string(t.message))) }
        }
        return .object(m)
    }

    /// A readable summary: one line per test, details for failing visible tests.
    public static func text(_ r: Execd_V1_JudgeResult) -> String {
        var out = "\(name(r.verdict).uppercased())  \(r.passed)/\(r.total) passed, score \(fmt(r.score))/\(fmt(r.maxScore))"
        out += "  (\(r.wallTimeUs / 1000) ms, \(r.runs) run\(r.runs == 1 ? "" : "s"))\n"
        if r.hasCompileError {
            let c = r.compileError
            out += "compile error" + (c.line > 0 ? " at line \(c.line)" : "") + ": \(c.message)\n"
            if !c.details.isEmpty, c.details != c.message { out += indent(c.details) }
        }
        if !r.message.isEmpty { out += indent(r.message) }
        for t in r.tests {
            let mark = t.status == .accepted ? "ok  " : "FAIL"
            out += "\(mark) \(t.name)\(t.hidden ? " (hidden)" : ""): \(name(t.status)) [\(t.timeUs / 1000) ms]\n"
            guard !t.hidden, t.status != .accepted, t.status != .notRun else { continue }
            if !t.message.isEmpty { out += indent(t.message) }
            if !t.expectedJson.isEmpty { out += "     expected: \(t.expectedJson)\n     actual:   \(t.actualJson)\n" }
            if !t.stdout.isEmpty { out += "     stdout:\n" + indent(String(decoding: t.stdout.prefix(2000), as: UTF8.self), by: 7) }
        }
        return out
    }

    private static func fmt(_ d: Double) -> String {
        d == d.rounded() ? String(Int64(d)) : String(format: "%.2f", d)
    }

    private static func indent(_ s: String, by n: Int = 5) -> String {
        let pad = String(repeating: " ", count: n)
        let lines = s.split(separator: "\n")
        return lines.isEmpty ? "" : lines.map { pad + $0 }.joined(separator: "\n") + "\n"
    }
}
