import Histogram

/// The figures of one benchmark, as printed and as `--json` (snake_case keys; times in milliseconds, to 1 µs).
struct BenchSummary: Encodable, Sendable {
    /// Percentiles of one distribution, in milliseconds.
    struct Percentiles: Encodable, Sendable {
        var p50: Double
        var p90: Double
        var p99: Double
        var max: Double

        init?(_ histogram: Histogram<UInt64>) {
            guard histogram.totalCount > 0 else { return nil }
            func ms(_ micros: UInt64) -> Double { Double(micros) / 1000 }
            p50 = ms(histogram.valueAtPercentile(50))
            p90 = ms(histogram.valueAtPercentile(90))
            p99 = ms(histogram.valueAtPercentile(99))
            max = ms(histogram.max)
        }
    }

    /// `execd` or `bwrap`.
    var target: String
    var lang: String
    var concurrency: Int
    /// From the start of the first measured run to the end of the last one.
    var duration_s: Double
    /// Completed runs, successful or not.
    var runs: Int
    var errors: Int
    var errors_by_kind: [String: Int]
    /// Successful runs per second.
    var runs_per_sec: Double
    /// Client-side latency of successful runs: request sent (or spawn) to result received (or reaped).
    var latency_ms: Percentiles?
    /// The program's wall time as execd measured it next to the sandbox (execd only).
    var server_wall_ms: Percentiles?
    /// The program's CPU time as execd measured it (execd only).
    var cpu_ms: Percentiles?
    /// execd only: `per-worker` or `shared`.
    var connections: String?
    /// Baseline only: execd's runs/s divided by this baseline's.
    var throughput_ratio: Double?

    init(target: String, lang: String, concurrency: Int, elapsed: Duration, stats: BenchStats) {
        self.target = target
        self.lang = lang
        self.concurrency = concurrency
        self.duration_s = (elapsed.seconds * 1000).rounded() / 1000
        self.runs = stats.runs
        self.errors = stats.errorCount
        self.errors_by_kind = stats.errors
        self.runs_per_sec = elapsed > .zero ? (Double(stats.ok) / elapsed.seconds * 100).rounded() / 100 : 0
        self.latency_ms = Percentiles(stats.latency)
        self.server_wall_ms = Percentiles(stats.wall)
        self.cpu_ms = Percentiles(stats.cpu)
    }

    /// Human-readable lines, indented under a heading the caller prints.
    var lines: [String] {
        var lines = ["runs        \(runs), errors \(errors)\(errorBreakdown)"]
        lines.append("throughput  \(Self.format(runs_per_sec, digits: 2)) runs/s")
        if let latency_ms {
            lines.append("latency     " + Self.describe(latency_ms))
        }
        if let server_wall_ms {
            var line = "server wall p50 \(Self.ms(server_wall_ms.p50)), p90 \(Self.ms(server_wall_ms.p90))"
            if let latency_ms {
                line += "  (latency - server wall, p50: \(Self.ms(latency_ms.p50 - server_wall_ms.p50)))"
            }
            lines.append(line)
        }
        if let cpu_ms {
            lines.append("cpu         p50 \(Self.ms(cpu_ms.p50)), p90 \(Self.ms(cpu_ms.p90))")
        }
        return lines
    }

    private var errorBreakdown: String {
        guard !errors_by_kind.isEmpty else { return "" }
        let kinds = errors_by_kind.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        return " (" + kinds.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"
    }

    static func describe(_ p: Percentiles) -> String {
        "p50 \(ms(p.p50)), p90 \(ms(p.p90)), p99 \(ms(p.p99)), max \(ms(p.max))"
    }

    static func ms(_ value: Double) -> String { format(value, digits: 3) + " ms" }

    /// Fixed-point formatting without Foundation's locale-dependent `String(format:)`.
    static func format(_ value: Double, digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = Int(scaled / scale)
        let fraction = Int(scaled - Double(whole) * scale)
        let sign = value < 0 && scaled > 0 ? "-" : ""
        guard digits > 0 else { return sign + "\(whole)" }
        let fractionText = String(fraction)
        return sign + "\(whole)." + String(repeating: "0", count: digits - fractionText.count) + fractionText
    }
}
