import ExecProtocol
import Foundation

/// A validated judge request: parsed arguments and expected values, resolved defaults.
struct JudgePlan: Sendable {
    enum Language: Sendable { case python, javascript }

    struct Test: Sendable {
        var name: String
        var args: JSONValue?
        var design = false
        var stdin: Data = Data()
        var expected: JudgeValue?
        var expectedStdout: Data = Data()
        var code = ""
        var hidden = false
        var weight = 1.0
        var timeLimit: Duration
    }

    var language: Language
    var kind: Execd_V1_TestKind
    var entry: String
    var submission: Data
    var testCode: String
    var compare: Execd_V1_Comparison
    var tests: [Test]
    /// The script's only test is "run test_code, then check(candidate) if it defines check".
    var implicit = false
    var totalTimeLimit: Duration
    var memoryBytes: UInt64
    var outputBytes: UInt64
    var failFast: Bool

    static let defaultTimeLimit = Duration.milliseconds(3000)
    static let defaultOutputBytes: UInt64 = 8 << 20

    init(_ r: Execd_V1_JudgeRequest) throws(JudgeError) {
        switch Execd_V1_Language(rawValue: Int(r.language)) {
        case .python: language = .python
        case .javascript: language = .javascript
        default: throw .badRequest("language must be python or javascript (got \(r.language))")
        }
        kind = r.kind
        guard [.function, .stdio, .script].contains(kind) else {
            throw .badRequest("kind must be function, stdio or script")
        }
        entry = r.entry
        if kind == .function, entry.isEmpty { throw .badRequest("function tests need an entry point name") }
        if !entry.isEmpty, !entry.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "$" || $0 == "." }) {
            throw .badRequest("entry \(JSONValue.string(entry).text) is not an identifier")
        }
        submission = r.submission
        testCode = r.testCode
        compare = r.compare
        let defaultLimit = r.timeLimitMs > 0 ? Duration.milliseconds(Int64(r.timeLimitMs)) : JudgePlan.defaultTimeLimit
        tests = []
        for (k, t) in r.tests.enumerated() {
            tests.append(try JudgePlan.test(t, index: k, kind: kind, entry: entry, defaultLimit: defaultLimit))
        }
        if tests.isEmpty {
            guard kind == .script, !testCode.isEmpty else {
                throw .badRequest("there are no tests (script problems may give only test_code)")
            }
            implicit = true
            tests = [Test(name: "check", timeLimit: defaultLimit)]
        }
        let sum = tests.reduce(Duration.zero) { $0 + $1.timeLimit }
        totalTimeLimit = r.totalTimeLimitMs > 0 ? .milliseconds(Int64(r.totalTimeLimitMs)) : sum + .seconds(10)
        memoryBytes = r.memoryBytes
        outputBytes = r.outputBytes > 0 ? r.outputBytes : JudgePlan.defaultOutputBytes
        failFast = r.failFast
    }

    private static func test(
        _ t: Execd_V1_TestCase, index k: Int, kind: Execd_V1_TestKind, entry: String, defaultLimit: Duration
    ) throws(JudgeError) -> Test {
        let name = t.name.isEmpty ? "test \(k + 1)" : t.name
        var out = Test(
            name: name, hidden: t.hidden, weight: t.hasWeight ? t.weight : 1,
            timeLimit: t.timeLimitMs > 0 ? .milliseconds(Int64(t.timeLimitMs)) : defaultLimit)
        guard out.weight >= 0, out.weight.isFinite else { throw .badRequest("test \(name): weight must be >= 0") }
        switch kind {
        case .function:
            let args = try parse(t.argsJson.isEmpty ? "[]" : t.argsJson, what: "args", test: name)
            guard case .array(let items) = args else {
                throw .badRequest("test \(name): args must be a JSON array of arguments, got \(args.typeName)")
            }
            out.args = args
            out.design = isDesign(items, entry: entry)
            guard !t.expectedJson.isEmpty else { throw .badRequest("test \(name): expected value missing") }
            out.expected = JudgeValue(json: try parse(t.expectedJson, what: "expected", test: name))
        case .stdio:
            out.stdin = t.stdin
            out.expectedStdout = t.expectedStdout
        default:
            out.code = t.code
        }
        return out
    }

    /// LeetCode design format: `[["Class", "method", ...], [[ctor args], [args], ...]]`.
    static func isDesign(_ items: [JSONValue], entry: String) -> Bool {
        guard items.count == 2, case .array(let names) = items[0], case .array(let lists) = items[1],
            !names.isEmpty, names.count == lists.count,
            names.allSatisfy({ $0.stringValue != nil }), lists.allSatisfy({ $0.arrayValue != nil })
        else { return false }
        return names[0].stringValue == entry.split(separator: ".").last.map(String.init)
    }

    private static func parse(_ text: String, what: String, test: String) throws(JudgeError) -> JSONValue {
        do {
            return try JSONParser.parse(text)
        } catch {
            throw .badRequest("test \(test): \(what) is not valid JSON (\(error))")
        }
    }

    /// Stdio JavaScript tests run one process per test with real stdin (see docs/harness.md).
    var oneRunPerTest: Bool { kind == .stdio && language == .javascript }
}
