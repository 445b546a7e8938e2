import Foundation

/// The `--json` object: execd's figures at the top level and, with a baseline, the baseline's under `baseline`
/// (same fields, plus `throughput_ratio` = execd runs/s ÷ baseline runs/s).
struct BenchReport: Encodable {
    var execd: BenchSummary
    var baseline: BenchSummary?

    init(execd: BenchSummary, mode: BenchExecdTarget.Connections, baseline: BenchSummary?) {
        self.execd = execd
        self.execd.connections = mode.rawValue
        self.baseline = baseline.map { baseline in
            var baseline = baseline
            baseline.throughput_ratio = Self.ratio(execd, baseline)
            return baseline
        }
    }

    /// execd's throughput over the baseline's, to 3 decimals; 0 when the baseline completed nothing.
    static func ratio(_ execd: BenchSummary, _ baseline: BenchSummary) -> Double {
        guard baseline.runs_per_sec > 0 else { return 0 }
        return (execd.runs_per_sec / baseline.runs_per_sec * 1000).rounded() / 1000
    }

    private enum Keys: String, CodingKey { case baseline }

    func encode(to encoder: any Encoder) throws {
        try execd.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encodeIfPresent(baseline, forKey: .baseline)
    }

    func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }
}
