import Foundation

/// A value produced by a submission (or written as an expected value), decoded from the tagged JSON
/// encoding of docs/harness.md. Python and JavaScript values JSON cannot hold travel as one-key objects:
/// `{"$tuple": [...]}`, `{"$set": [...]}`, `{"$frozenset": [...]}`, `{"$int": "digits"}`,
/// `{"$float": "nan"|"inf"|"-inf"|"-0"}`, `{"$bytes": "base64"}`, `{"$map": [[k, v], ...]}`,
/// `{"$undefined": true}`, `{"$dict": {...}}` (an object whose only key starts with `$`), `{"$repr": "text"}`.
public indirect enum JudgeValue: Sendable {
    /// Python `None`, JavaScript `null` and `undefined`.
    case null
    case bool(Bool)
    /// An integer of any size, as canonical decimal digits (`"-12"`, `"0"`).
    case integer(String)
    /// A floating-point number, including NaN, ±Infinity and -0.
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// A list/array (`tuple` false) or a Python tuple (`tuple` true); the two compare equal.
    case sequence([JudgeValue], tuple: Bool)
    /// A Python set/frozenset or JavaScript Set.
    case set([JudgeValue])
    /// A Python dict with non-string keys or a JavaScript Map.
    case map([Pair])
    /// A JSON object (Python dict with string keys, plain JavaScript object).
    case object([(key: String, value: JudgeValue)])
    /// Anything else, by its printed form (`repr`); equal only to the same text.
    case opaque(String)

    /// One key/value entry of a map.
    public struct Pair: Sendable {
        public var key: JudgeValue
        public var value: JudgeValue
    }

    /// Decodes the tagged JSON encoding.
    public init(json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let text): self = JudgeValue.number(text)
        case .string(let s): self = .string(s)
        case .array(let items): self = .sequence(items.map(JudgeValue.init(json:)), tuple: false)
        case .object(let members):
            if members.count == 1, let tagged = JudgeValue.tagged(members[0].key, members[0].value) {
                self = tagged
            } else {
                self = .object(members.map { ($0.key, JudgeValue(json: $0.value)) })
            }
        }
    }

    static func number(_ text: String) -> JudgeValue {
        if text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) {
            return .float(Double(text) ?? .nan)
        }
        return .integer(canonicalInteger(text))
    }

    static func canonicalInteger(_ text: String) -> String {
        var digits = Substring(text)
        var negative = false
        if digits.first == "-" {
            negative = true
            digits = digits.dropFirst()
        } else if digits.first == "+" {
            digits = digits.dropFirst()
        }
        let trimmed = digits.drop { $0 == "0" }
        if trimmed.isEmpty { return "0" }
        return (negative ? "-" : "") + trimmed
    }

    private static func tagged(_ tag: String, _ v: JSONValue) -> JudgeValue? {
        switch (tag, v) {
        case ("$tuple", .array(let items)): return .sequence(items.map(JudgeValue.init(json:)), tuple: true)
        case ("$set", .array(let items)), ("$frozenset", .array(let items)):
            return .set(items.map(JudgeValue.init(json:)))
        case ("$int", .string(let digits)) where digits.allSatisfy({ $0.isNumber || $0 == "-" || $0 == "+" }):
            return .integer(canonicalInteger(digits))
        case ("$float", .string(let s)):
            switch s {
            case "nan": return .float(.nan)
            case "inf", "infinity": return .float(.infinity)
            case "-inf", "-infinity": return .float(-.infinity)
            case "-0": return .float(-0.0)
            default: return Double(s).map { .float($0) }
            }
        case ("$bytes", .string(let b64)):
            return Data(base64Encoded: b64).map { .bytes(Array($0)) }
        case ("$map", .array(let pairs)):
            var out: [Pair] = []
            for p in pairs {
                guard case .array(let kv) = p, kv.count == 2 else { return nil }
                out.append(Pair(key: JudgeValue(json: kv[0]), value: JudgeValue(json: kv[1])))
            }
            return .map(out)
        case ("$undefined", _): return .null
        case ("$dict", .object(let members)): return .object(members.map { ($0.key, JudgeValue(json: $0.value)) })
        case ("$repr", .string(let s)): return .opaque(s)
        default: return nil
        }
    }

    /// Encodes back to the tagged JSON form (for display).
    public var json: JSONValue {
        switch self {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .integer(let d):
            return d.count <= 15 ? .number(d) : .object([.init("$int", .string(d))])
        case .float(let x):
            if x.isNaN { return .object([.init("$float", .string("nan"))]) }
            if x.isInfinite { return .object([.init("$float", .string(x > 0 ? "inf" : "-inf"))]) }
            return .number("\(x)")
        case .string(let s): return .string(s)
        case .bytes(let b): return .object([.init("$bytes", .string(Data(b).base64EncodedString()))])
        case .sequence(let items, let tuple):
            let arr = JSONValue.array(items.map(\.json))
            return tuple ? .object([.init("$tuple", arr)]) : arr
        case .set(let items): return .object([.init("$set", .array(items.map(\.json)))])
        case .map(let pairs): return .object([.init("$map", .array(pairs.map { .array([$0.key.json, $0.value.json]) }))])
        case .object(let members):
            let obj = JSONValue.object(members.map { .init($0.key, $0.value.json) })
            return members.count == 1 && members[0].key.hasPrefix("$") ? .object([.init("$dict", obj)]) : obj
        case .opaque(let s): return .object([.init("$repr", .string(s))])
        }
    }

    /// A short display form for messages.
    var brief: String {
        let t = json.text
        return t.count > 120 ? String(t.prefix(117)) + "..." : t
    }
}
