import ExecProtocol
import Foundation

/// Compares program output with expected output (trusted side). By default CRLF equals LF, trailing
/// spaces/tabs on each line and trailing newlines are ignored; `tokens` (or any tolerance) compares
/// whitespace-separated tokens, numbers within the tolerances.
public struct TextComparator: Sendable {
    public var options: Execd_V1_Comparison

    public init(_ options: Execd_V1_Comparison = .init()) { self.options = options }

    /// Nil when equal; otherwise where the first difference is.
    public func difference(actual: String, expected: String) -> String? {
        if options.tokens || options.absTol > 0 || options.relTol > 0 {
            return tokenDifference(actual, expected)
        }
        let a = lines(normalize(actual))
        let e = lines(normalize(expected))
        for k in 0..<max(a.count, e.count) {
            guard k < a.count else { return "output ended early: expected line \(k + 1) \(quote(e[k]))" }
            guard k < e.count else { return "extra output at line \(k + 1): \(quote(a[k]))" }
            if !same(a[k], e[k]) { return "line \(k + 1) differs: expected \(quote(e[k])), got \(quote(a[k]))" }
        }
        return nil
    }

    private func same(_ a: String, _ e: String) -> Bool {
        options.caseInsensitive ? a.lowercased() == e.lowercased() : a == e
    }

    /// Applies the whitespace options; works on Unicode scalars so "\r\n" is never one unit.
    func normalize(_ text: String) -> String {
        var s = text
        if !options.strictLineEndings { s = s.replacingOccurrences(of: "\r\n", with: "\n") }
        var ls = scalarLines(s)
        if !options.strictTrailingSpaces {
            ls = ls.map { line in
                var l = line
                while let last = l.last, last == " " || last == "\t" { l.removeLast() }
                return l
            }
        }
        if !options.strictFinalNewline {
            while ls.count > 1, ls.last!.isEmpty { ls.removeLast() }
            if ls.count == 1, ls[0].isEmpty { ls = [] }
        }
        return ls.map { String(String.UnicodeScalarView($0)) }.joined(separator: "\n")
    }

    private func scalarLines(_ s: String) -> [[Unicode.Scalar]] {
        s.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map(Array.init)
    }

    private func lines(_ s: String) -> [String] {
        s.isEmpty ? [] : scalarLines(s).map { String(String.UnicodeScalarView($0)) }
    }

    private func tokenDifference(_ actual: String, _ expected: String) -> String? {
        let a = actual.split(whereSeparator: { $0.isWhitespace }).map(String.init)
        let e = expected.split(whereSeparator: { $0.isWhitespace }).map(String.init)
        let values = ValueComparator(options)
        for k in 0..<max(a.count, e.count) {
            guard k < a.count else { return "output ended early: expected token \(k + 1) \(quote(e[k]))" }
            guard k < e.count else { return "extra output: token \(k + 1) \(quote(a[k]))" }
            if same(a[k], e[k]) { continue }
            if let x = Double(a[k]), let y = Double(e[k]),
                values.difference(actual: .float(x), expected: .float(y)) == nil
            {
                continue
            }
            return "token \(k + 1) differs: expected \(quote(e[k])), got \(quote(a[k]))"
        }
        return nil
    }

    private func quote(_ s: String) -> String {
        let t = s.count > 80 ? String(s.prefix(77)) + "..." : s
        return JSONValue.string(t).text
    }
}
