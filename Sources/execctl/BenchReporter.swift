import Foundation
import Synchronization

/// The human side of `execctl bench`: headings and results on stdout, live progress on stderr when it is a
/// terminal. With `--json` it prints nothing (the command prints the JSON object itself).
struct BenchReporter: Sendable {
    /// Whether to print human output at all (false with --json).
    let human: Bool
    /// Whether to show progress once a second (a terminal on stderr, and not --json).
    let live: Bool

    init(json: Bool) {
        human = !json
        live = !json && isatty(STDERR_FILENO) != 0
    }

    func heading(_ text: String) {
        guard human else { return }
        print(text)
    }

    func result(_ summary: BenchSummary) {
        guard human else { return }
        if live { Self.writeStderr("\r\u{1B}[K") }
        for line in summary.lines { print("  " + line) }
    }

    func ratio(execd: BenchSummary, baseline: BenchSummary) {
        guard human else { return }
        print("execd/bwrap throughput: \(BenchSummary.format(BenchReport.ratio(execd, baseline), digits: 3))x")
    }

    /// The driver's once-a-second callback, or nil when progress is not shown: runs so far and the rate over
    /// the last interval.
    var progress: (@Sendable (Int, Duration) -> Void)? {
        guard live else { return nil }
        let previous = Mutex<(completed: Int, elapsed: Duration)>((0, .zero))
        return { completed, elapsed in
            let last = previous.withLock { last in
                defer { last = (completed, elapsed) }
                return last
            }
            let interval = (elapsed - last.elapsed).seconds
            let rate = interval > 0 ? Double(completed - last.completed) / interval : 0
            Self.writeStderr(
                "\r\u{1B}[K  \(BenchSummary.format(elapsed.seconds, digits: 0)) s: \(completed) runs, "
                    + "\(BenchSummary.format(rate, digits: 1)) runs/s"
            )
        }
    }

    private static func writeStderr(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
