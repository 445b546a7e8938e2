import ExecProtocol
import Foundation

/// The `execctl judge --tests FILE` format (docs/harness.md), parsed into a `JudgeRequest`:
/// `{"kind": "function"|"stdio"|"script", "entry": "name", "compare": {...}, "test_code": "...",
///   "tests": [{"name", "args"|"calls"|"stdin"|"code", "expected"|"expected_stdout", "hidden", "weight",
///   "time_limit_ms"}], "time_limit_ms", "total_time_limit_ms", "memory_limit_mb", "output_limit_bytes",
///   "fail_fast"}`. Unknown keys are ignored; wrong types are errors naming the key.
public enum TestSpecFile {
    /// A spec file that cannot be used; the message names the key and what was expected.
    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public var message: String
        public var description: String { message }
    }

    /// Parses a language name: python/py/python3, javascript/js/node.
    public static func language(_ name: String) -> Execd_V1_Language? {
        switch name.lowercased() {
        case "python", "py", "python3": .python
        case "javascript", "js", "node", "nodejs": .javascript
        default: nil
        }
    }

    /// Builds a judge request from a spec file's bytes, the submission and its language.
    public static func request(spec: Data, submission: Data, language: Execd_V1_Language) throws(Invalid)
        -> Execd_V1_JudgeRequest
    {
        let root: JSONValue
        do {
            root = try JSONParser.parse(spec)
        } catch {
            throw Invalid(message: "the test file is not valid JSON: \(error)")
        }
        guard case .object = root else { throw Invalid(message: "the test file must be a JSON object") }
        var r = Execd_V1_JudgeRequest()
        r.language = UInt32(language.rawValue)
        r.submission = submission
        let kind = try string(root, "kind") ?? "function"
        switch kind {
        case "function": r.kind = .function
        case "stdio": r.kind = .stdio
        case "script": r.kind = .script
        default: throw Invalid(message: "kind must be \"function\", \"stdio\" or \"script\", not \"\(kind)\"")
        }
        r.entry = try string(root, "entry") ?? ""
        r.testCode = try string(root, "test_code") ?? ""
        if let c = root["compare"] { r.compare = try comparison(c) }
        r.timeLimitMs = try milliseconds(root, "time_limit_ms")
        r.totalTimeLimitMs = try milliseconds(root, "total_time_limit_ms")
        if let mb = try number(root, "memory_limit_mb") { r.memoryBytes = UInt64(max(0, mb) * 1_048_576) }
        if let b = try number(root, "memory_bytes") { r.memoryBytes = UInt64(max(0, b)) }
        if let b = try number(root, "output_limit_bytes") { r.outputBytes = UInt64(max(0, b)) }
        r.failFast = try bool(root, "fail_fast") ?? false
        if let tests = root["tests"] {
            guard case .array(let items) = tests else { throw Invalid(message: "tests must be an array") }
            for (k, item) in items.enumerated() {
                r.tests.append(try test(item, index: k, kind: r.kind, entry: r.entry))
            }
        }
        if r.kind == .function, r.entry.isEmpty { throw Invalid(message: "function tests need \"entry\"") }
        if r.tests.isEmpty, !(r.kind == .script && !r.testCode.isEmpty) {
            throw Invalid(message: "the test file has no tests")
        }
        return r
    }

    private static func test(_ v: JSONValue, index k: Int, kind: Execd_V1_TestKind, entry: String) throws(Invalid)
        -> Execd_V1_TestCase
    {
        let at = "tests[\(k)]"
        var t = Execd_V1_TestCase()
        if kind == .script, case .string(let code) = v {
            t.code = code
            return t
        }
        guard case .object = v else { throw Invalid(message: "\(at) must be an object") }
        t.name = try string(v, "name", at) ?? ""
        t.hidden = try bool(v, "hidden", at) ?? false
        if let w = try number(v, "weight", at) {
            guard w >= 0 else { throw Invalid(message: "\(at).weight must be >= 0") }
            t.weight = w
        }
        t.timeLimitMs = try milliseconds(v, "time_limit_ms", at)
        switch kind {
        case .function:
            if let calls = v["calls"] {
                t.argsJson = try designArgs(calls, at: at).text
            } else if let args = v["args"] {
                guard case .array = args else {
                    throw Invalid(message: "\(at).args must be an array of arguments, got \(args.typeName)")
                }
                t.argsJson = args.text
            } else {
                t.argsJson = "[]"
            }
            guard let e = v["expected"] else { throw Invalid(message: "\(at) has no \"expected\" value") }
            t.expectedJson = e.text
        case .stdio:
            t.stdin = Data((try string(v, any: ["stdin", "input"], at) ?? "").utf8)
            guard let out = try string(v, any: ["expected_stdout", "expected_output", "expected"], at) else { throw Invalid(message: "\(at) has no \"expected_stdout\"") }
            t.expectedStdout = Data(out.utf8)
        default:
            t.code = try string(v, "code", at) ?? ""
        }
        return t
    }

    /// `[["LRUCache", 2], ["put", 1, 1], ["get", 1]]` → `[["LRUCache","put","get"], [[2],[1,1],[1]]]`.
    private static func designArgs(_ calls: JSONValue, at: String) throws(Invalid) -> JSONValue {
        guard case .array(let items) = calls, !items.isEmpty else {
            throw Invalid(message: "\(at).calls must be a non-empty array of [name, args...]")
        }
        var names: [JSONValue] = []
        var lists: [JSONValue] = []
        for call in items {
            guard case .array(let parts) = call, let name = parts.first, case .string = name else {
                throw Invalid(message: "\(at).calls: each call must be [\"name\", args...]")
            }
            names.append(name)
            lists.append(.array(Array(parts.dropFirst())))
        }
        return .array([.array(names), .array(lists)])
    }

    private static func comparison(_ v: JSONValue) throws(Invalid) -> Execd_V1_Comparison {
        var c = Execd_V1_Comparison()
        if case .string(let mode) = v { return try apply(mode: mode, to: c) }
        guard case .object = v else { throw Invalid(message: "compare must be an object or a mode name") }
        if let mode = try string(v, any: ["mode", "type"], "compare") { c = try apply(mode: mode, to: c) }
        if let t = try number(v, "tolerance", "compare") { (c.absTol, c.relTol) = (t, t) }
        if let t = try number(v, "abs_tol", "compare") { c.absTol = t }
        if let t = try number(v, "atol", "compare") { c.absTol = t }
        if let t = try number(v, "rel_tol", "compare") { c.relTol = t }
        if let t = try number(v, "rtol", "compare") { c.relTol = t }
        if let b = try bool(v, "unordered", "compare") { c.unordered = b }
        if let b = try bool(v, "unordered_nested", "compare") { c.unorderedNested = b }
        if let b = try bool(v, "case_insensitive", "compare") { c.caseInsensitive = b }
        if let b = try bool(v, "tokens", "compare") { c.tokens = b }
        if let b = try bool(v, "strict_trailing_spaces", "compare") { c.strictTrailingSpaces = b }
        if let b = try bool(v, "strict_final_newline", "compare") { c.strictFinalNewline = b }
        if let b = try bool(v, "strict_line_endings", "compare") { c.strictLineEndings = b }
        if let b = try bool(v, "ignore_trailing_spaces", "compare") { c.strictTrailingSpaces = !b }
        if let b = try bool(v, "ignore_final_newline", "compare") { c.strictFinalNewline = !b }
        if let b = try bool(v, "normalize_crlf", "compare") { c.strictLineEndings = !b }
        return c
    }

    private static func apply(mode: String, to c: Execd_V1_Comparison) throws(Invalid) -> Execd_V1_Comparison {
        var c = c
        switch mode {
        case "exact", "text", "value": break
        case "float", "approx": (c.absTol, c.relTol) = (1e-6, 1e-6)
        case "unordered": c.unordered = true
        case "unordered_nested": c.unorderedNested = true
        case "case_insensitive": c.caseInsensitive = true
        case "tokens": c.tokens = true
        case "strict": (c.strictTrailingSpaces, c.strictFinalNewline, c.strictLineEndings) = (true, true, true)
        default:
            throw Invalid(
                message: "compare mode \"\(mode)\" is unknown (exact, float, unordered, unordered_nested, "
                    + "text, tokens, case_insensitive, strict)")
        }
        return c
    }

    // MARK: typed member access with errors naming the key

    private static func string(_ o: JSONValue, _ key: String, _ at: String = "") throws(Invalid) -> String? {
        guard let v = o[key], v != .null else { return nil }
        guard case .string(let s) = v else { throw wrongType(at, key, "a string", v) }
        return s
    }

    private static func string(_ o: JSONValue, any keys: [String], _ at: String = "") throws(Invalid) -> String? {
        for k in keys {
            if let s = try string(o, k, at) { return s }
        }
        return nil
    }

    private static func bool(_ o: JSONValue, _ key: String, _ at: String = "") throws(Invalid) -> Bool? {
        guard let v = o[key], v != .null else { return nil }
        guard case .bool(let b) = v else { throw wrongType(at, key, "true or false", v) }
        return b
    }

    private static func number(_ o: JSONValue, _ key: String, _ at: String = "") throws(Invalid) -> Double? {
        guard let v = o[key], v != .null else { return nil }
        guard let d = v.doubleValue else { throw wrongType(at, key, "a number", v) }
        return d
    }

    private static func milliseconds(_ o: JSONValue, _ key: String, _ at: String = "") throws(Invalid) -> UInt64 {
        guard let d = try number(o, key, at) else { return 0 }
        guard d > 0, d < 1e9 else { throw Invalid(message: "\(at.isEmpty ? "" : at + ".")\(key) must be > 0") }
        return UInt64(d)
    }

    private static func wrongType(_ at: String, _ key: String, _ want: String, _ got: JSONValue) -> Invalid {
        Invalid(message: "\(at.isEmpty ? "" : at + ".")\(key) must be \(want), got \(got.typeName)")
    }
}
