import ArgumentParser
import ExecProtocol
import Foundation

/// `execctl bench`: a closed-loop load on execd, optionally followed by the same load on fresh bwrap sandboxes.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure execd's throughput and latency (and, with --baseline bwrap, a cold-start baseline).",
        discussion: """
            N workers each send a run as soon as their last one returned. A run whose status is not ok, or whose \
            request failed, is an error; runs/s and the latency percentiles count successful runs only. \
            --baseline bwrap then runs the same program with the same concurrency and duration through \
            /usr/bin/bwrap, a fresh sandbox per run, and prints the throughput ratio execd/bwrap.
            """
    )

    enum Baseline: String, ExpressibleByArgument, CaseIterable { case bwrap }

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "python or javascript.")
    var lang: String

    @Option(help: "Runs in flight at once (workers).")
    var concurrency = 1

    @Option(help: "How long to measure, e.g. 10s or 500ms (default 10s; not with --runs).")
    var duration: String?

    @Option(help: "Measure this many runs in total instead of a duration.")
    var runs: Int?

    @Option(help: "Runs before measuring, not counted (default: one per worker).")
    var warmup: Int?

    @Option(help: "File holding the program (default: print(1) or console.log(1)).")
    var code: String?

    @Option(help: "per-worker (one connection each) or shared (one connection for all workers).")
    var connections = BenchExecdTarget.Connections.perWorker.rawValue

    @Option(help: "Also run the same load through a cold-start baseline: bwrap.")
    var baseline: Baseline?

    @Flag(help: "Print one JSON object (and no live progress).")
    var json = false

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard duration == nil || runs == nil else { throw ValidationError("give --duration or --runs, not both") }
        if let runs, runs < 1 { throw ValidationError("--runs must be at least 1") }
        if let warmup, warmup < 0 { throw ValidationError("--warmup cannot be negative") }
        guard language != nil else { throw ValidationError("--lang must be python or javascript, not \(lang)") }
        guard connectionMode != nil else {
            throw ValidationError("--connections must be per-worker or shared, not \(connections)")
        }
        _ = try stop()
    }

    private var language: Execd_V1_Language? { Execd_V1_Language(name: lang) }
    private var connectionMode: BenchExecdTarget.Connections? { BenchExecdTarget.Connections(rawValue: connections) }

    func run() async throws {
        guard let language, let mode = connectionMode else { preconditionFailure("validate() checked these") }
        let program =
            try code.map { String(decoding: try readInput($0), as: UTF8.self) }
            ?? (language == .python ? "print(1)" : "console.log(1)")
        let load = BenchLoad(concurrency: concurrency, stop: try stop())
        let reporter = BenchReporter(json: json)
        let plan = "\(language.name), concurrency \(concurrency), \(describe(load.stop))"

        var request = Execd_V1_RunRequest()
        request.language = language
        request.code = Data(program.utf8)
        let execd: BenchExecdTarget
        do {
            execd = try await BenchExecdTarget.connect(
                socketPath: connection.socketPath,
                connections: mode,
                workers: concurrency,
                request: request
            )
        } catch {
            fail("\(error)")
        }
        reporter.heading("execd: \(plan), \(mode.rawValue) connections")
        let execdSummary = await measure(execd, named: "execd", language: language, load: load, reporter: reporter)
        await execd.close()

        var baselineSummary: BenchSummary?
        if baseline == .bwrap {
            let bwrap = BenchBwrapTarget(language: language, code: program)
            if let problem = bwrap.check() { fail("the bwrap baseline does not work here: \(problem)") }
            reporter.heading("bwrap baseline: \(plan), a fresh sandbox per run")
            let result = await measure(bwrap, named: "bwrap", language: language, load: load, reporter: reporter)
            reporter.ratio(execd: execdSummary, baseline: result)
            baselineSummary = result
        }
        if json {
            print(BenchReport(execd: execdSummary, mode: mode, baseline: baselineSummary).encoded())
        }
    }

    /// Warms up, measures and prints one target.
    private func measure(
        _ target: some BenchTarget,
        named name: String,
        language: Execd_V1_Language,
        load: BenchLoad,
        reporter: BenchReporter
    ) async -> BenchSummary {
        await load.warmUp(target, runs: warmup ?? concurrency)
        let (stats, elapsed) = await load.run(target, progress: reporter.progress)
        let summary = BenchSummary(
            target: name,
            lang: language.name,
            concurrency: concurrency,
            elapsed: elapsed,
            stats: stats
        )
        reporter.result(summary)
        return summary
    }

    private func stop() throws -> BenchStop {
        if let runs { return .runs(runs) }
        guard let text = duration else { return .duration(.seconds(10)) }
        guard let value = Units.duration(text), value > .zero else {
            throw ValidationError("--duration: cannot read \(text) (try 10s or 500ms)")
        }
        return .duration(value)
    }

    private func describe(_ stop: BenchStop) -> String {
        switch stop {
        case .duration(let duration): "\(BenchSummary.format(duration.seconds, digits: 1)) s"
        case .runs(let runs): "\(runs) runs"
        }
    }
}

