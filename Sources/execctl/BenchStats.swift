import Histogram

/// What one run reported: its outcome and, when known, the wall and CPU time of the sandboxed program itself.
struct BenchSample: Sendable {
    /// nil for a successful run; otherwise a short snake_case kind such as `runtime_error` or `server_busy`.
    var errorKind: String?
    /// The program's wall time as measured next to the sandbox (execd's `wall_time_us`); nil when unknown.
    var wallMicros: UInt64?
    /// The program's CPU time (execd's `cpu_time_us`); nil when unknown.
    var cpuMicros: UInt64?
    /// The worker should start no more runs (its connection is gone; retrying would only spin).
    var endsWorker = false

    static func ok(wallMicros: UInt64? = nil, cpuMicros: UInt64? = nil) -> BenchSample {
        BenchSample(errorKind: nil, wallMicros: wallMicros, cpuMicros: cpuMicros)
    }

    static func error(_ kind: String, endsWorker: Bool = false) -> BenchSample {
        BenchSample(errorKind: kind, endsWorker: endsWorker)
    }
}

/// Counts and latency distributions of one worker (or, merged, of a whole benchmark). Times are in microseconds.
///
/// Only successful runs go into the histograms: a failure that returns at once would otherwise flatter the figures.
struct BenchStats: Sendable {
    private(set) var ok: Int = 0
    private(set) var errors: [String: Int] = [:]
    private(set) var latency = BenchStats.makeHistogram()
    private(set) var wall = BenchStats.makeHistogram()
    private(set) var cpu = BenchStats.makeHistogram()

    /// All completed runs, successful or not.
    var runs: Int { ok + errorCount }
    var errorCount: Int { errors.values.reduce(0, +) }

    mutating func record(_ sample: BenchSample, latency: Duration) {
        if let kind = sample.errorKind {
            errors[kind, default: 0] += 1
            return
        }
        ok += 1
        Self.record(latency.microseconds, in: &self.latency)
        if let wallMicros = sample.wallMicros { Self.record(wallMicros, in: &wall) }
        if let cpuMicros = sample.cpuMicros { Self.record(cpuMicros, in: &cpu) }
    }

    mutating func merge(_ other: BenchStats) {
        ok += other.ok
        errors.merge(other.errors, uniquingKeysWith: +)
        latency.add(other.latency)
        wall.add(other.wall)
        cpu.add(other.cpu)
    }

    /// One microsecond to one hour, three significant digits: exact to 1 µs below 2 ms, to 0.1% above.
    private static func makeHistogram() -> Histogram<UInt64> {
        Histogram(
            lowestDiscernibleValue: 1,
            highestTrackableValue: 3_600_000_000,
            numberOfSignificantValueDigits: .three
        )
    }

    private static func record(_ micros: UInt64, in histogram: inout Histogram<UInt64>) {
        histogram.record(min(micros, histogram.highestTrackableValue))
    }
}

extension Duration {
    /// Whole microseconds, rounded down; negative durations count as zero.
    var microseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000 + UInt64(attoseconds / 1_000_000_000_000)
    }

    /// Seconds as a Double.
    var seconds: Double { self / .seconds(1) }
}
