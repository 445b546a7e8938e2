import ExecProtocol
import Foundation

/// Compares an actual value with an expected one (trusted side). Numbers compare numerically (`1 == 1.0`,
/// big integers exactly), NaN equals NaN, -0 equals 0, lists equal tuples, `null` equals `undefined`,
/// booleans never equal numbers, maps equal objects when their keys print the same.
public struct ValueComparator: Sendable {
    public var absTol: Double
    public var relTol: Double
    public var unordered: Bool
    public var unorderedNested: Bool
    public var caseInsensitive: Bool

    /// Takes the value-relevant options of `comparison`.
    public init(_ comparison: Execd_V1_Comparison = .init()) {
        absTol = comparison.absTol
        relTol = comparison.relTol
        unordered = comparison.unordered || comparison.unorderedNested
        unorderedNested = comparison.unorderedNested
        caseInsensitive = comparison.caseInsensitive
    }

    private var tolerant: Bool { absTol > 0 || relTol > 0 }

    /// Nil when equal; otherwise a short description of the first difference.
    public func difference(actual: JudgeValue, expected: JudgeValue) -> String? {
        diff(actual, expected, path: "", level: 0)
    }

    private func diff(_ a: JudgeValue, _ e: JudgeValue, path: String, level: Int) -> String? {
        let at = path.isEmpty ? "" : "at \(path): "
        let mismatch = "\(at)expected \(e.brief), got \(a.brief)"
        switch (a, e) {
        case (.null, .null): return nil
        case (.bool(let x), .bool(let y)): return x == y ? nil : mismatch
        case (.integer, .integer), (.integer, .float), (.float, .integer), (.float, .float):
            return numbersEqual(a, e) ? nil : mismatch
        case (.string(let x), .string(let y)):
            return (caseInsensitive ? x.lowercased() == y.lowercased() : x == y) ? nil : mismatch
        case (.bytes(let x), .bytes(let y)): return x == y ? nil : mismatch
        case (.opaque(let x), .opaque(let y)): return x == y ? nil : mismatch
        case (.set(let xs), .set(let ys)):
            return multisetDiff(xs, ys, at: at)
        case (.sequence(let xs, _), .set(let ys)) where unordered && level == 0 || unorderedNested:
            return multisetDiff(xs, ys, at: at)
        case (.set(let xs), .sequence(let ys, _)) where unordered && level == 0 || unorderedNested:
            return multisetDiff(xs, ys, at: at)
        case (.sequence(let xs, _), .sequence(let ys, _)):
            if unorderedNested || (unordered && level == 0) { return multisetDiff(xs, ys, at: at) }
            guard xs.count == ys.count else {
                return "\(at)expected \(ys.count) elements, got \(xs.count) (expected \(e.brief), got \(a.brief))"
            }
            for k in xs.indices {
                if let d = diff(xs[k], ys[k], path: path + "[\(k)]", level: level + 1) { return d }
            }
            return nil
        case (.object, .object), (.map, .map), (.object, .map), (.map, .object):
            return mapDiff(entries(a), entries(e), path: path, level: level, mismatch: mismatch)
        default:
            return mismatch
        }
    }

    // MARK: numbers

    private func numbersEqual(_ a: JudgeValue, _ e: JudgeValue) -> Bool {
        if case .integer(let x) = a, case .integer(let y) = e {
            if x == y { return true }
            guard tolerant else { return false }
        }
        if !tolerant {
            switch (a, e) {
            case (.integer(let x), .float(let y)), (.float(let y), .integer(let x)):
                return ValueComparator.exactInteger(y) == x
            default: break
            }
        }
        let x = ValueComparator.double(a)
        let y = ValueComparator.double(e)
        if x.isNaN || y.isNaN { return x.isNaN && y.isNaN }
        if x == y { return true }
        guard tolerant, x.isFinite, y.isFinite else { return false }
        let d = abs(x - y)
        return d <= absTol || d <= relTol * max(abs(x), abs(y))
    }

    static func double(_ v: JudgeValue) -> Double {
        switch v {
        case .integer(let d): return Double(d) ?? .nan
        case .float(let x): return x
        default: return .nan
        }
    }

    /// The decimal digits of an integral finite double, or nil.
    static func exactInteger(_ d: Double) -> String? {
        guard d.isFinite, d == d.rounded() else { return nil }
        if abs(d) < 9.0e18 { return String(Int64(d)) }
        return JudgeValue.canonicalInteger(String(format: "%.0f", d))
    }

    // MARK: containers

    private func entries(_ v: JudgeValue) -> [(key: String, value: JudgeValue)] {
        switch v {
        case .object(let members): return members
        case .map(let pairs):
            return pairs.map { p in
                switch p.key {
                case .string(let s): (s, p.value)
                case .integer(let d): (d, p.value)
                default: (canonicalKey(p.key), p.value)
                }
            }
        default: return []
        }
    }

    private func mapDiff(
        _ a: [(key: String, value: JudgeValue)], _ e: [(key: String, value: JudgeValue)], path: String, level: Int,
        mismatch: String
    ) -> String? {
        let actual = Dictionary(a.map { ($0.key, $0.value) }, uniquingKeysWith: { x, _ in x })
        let expectedKeys = Set(e.map(\.key))
        if let missing = e.first(where: { actual[$0.key] == nil }) {
            return "\(path.isEmpty ? "" : "at \(path): ")missing key \(JSONValue.string(missing.key).text)"
        }
        if let extra = a.first(where: { !expectedKeys.contains($0.key) }) {
            return "\(path.isEmpty ? "" : "at \(path): ")unexpected key \(JSONValue.string(extra.key).text)"
        }
        for (key, value) in e {
            if let d = diff(actual[key]!, value, path: path + "[\(JSONValue.string(key).text)]", level: level + 1) {
                return d
            }
        }
        return nil
    }

    private func multisetDiff(_ xs: [JudgeValue], _ ys: [JudgeValue], at: String) -> String? {
        guard xs.count == ys.count else {
            return "\(at)expected \(ys.count) elements (in any order), got \(xs.count)"
        }
        if !tolerant {
            let ka = xs.map(canonicalKey).sorted()
            let ke = ys.map(canonicalKey).sorted()
            if ka == ke { return nil }
            let missing = zip(ke, ka).first { $0 != $1 }
            return "\(at)the elements differ (compared in any order)" + (missing.map { " near \($0.0)" } ?? "")
        }
        var unmatched = Array(xs.indices)
        for y in ys {
            guard let k = unmatched.firstIndex(where: { diff(xs[$0], y, path: "", level: 1) == nil }) else {
                return "\(at)expected element \(y.brief) not found (compared in any order)"
            }
            unmatched.remove(at: k)
        }
        return nil
    }

    /// A string equal for exactly the values this comparator (without tolerances) considers equal.
    func canonicalKey(_ v: JudgeValue) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .integer(let d): return d
        case .float(let x):
            if x.isNaN { return "nan" }
            return ValueComparator.exactInteger(x) ?? "\(x)"
        case .string(let s): return JSONValue.string(caseInsensitive ? s.lowercased() : s).text
        case .bytes(let b): return "b'" + b.map { String(format: "%02x", $0) }.joined() + "'"
        case .opaque(let s): return "repr(" + JSONValue.string(s).text + ")"
        case .sequence(let items, _):
            let keys = items.map(canonicalKey)
            return "[" + (unorderedNested ? keys.sorted() : keys).joined(separator: ",") + "]"
        case .set(let items): return "{" + items.map(canonicalKey).sorted().joined(separator: ",") + "}"
        case .object, .map:
            let parts = entries(v).map { JSONValue.string($0.key).text + ":" + canonicalKey($0.value) }
            return "<" + parts.sorted().joined(separator: ",") + ">"
        }
    }
}
