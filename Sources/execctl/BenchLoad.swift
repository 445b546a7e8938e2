import Synchronization

/// Something the load driver runs over and over: a program through execd, or through a fresh bwrap sandbox.
protocol BenchTarget: Sendable {
    /// Runs the program once. Never throws: a failure is a sample with an error kind.
    ///
    /// - Parameter worker: which of the driver's workers is asking, `0..<concurrency` (a target may keep one
    ///   connection per worker).
    func runOnce(worker: Int) async -> BenchSample

    /// Where `worker`'s loop should run (nil: the global pool). The execd target runs each worker on its
    /// connection's event loop, so a response resumes the worker there instead of on another thread: the load
    /// generator shares the machine with what it measures, and each thread hop is CPU taken from execd.
    func executor(worker: Int) -> (any TaskExecutor)?
}

extension BenchTarget {
    func executor(worker: Int) -> (any TaskExecutor)? { nil }
}

/// When a benchmark ends.
enum BenchStop: Sendable {
    /// Start no run after this much time; runs in flight finish and count.
    case duration(Duration)
    /// Start exactly this many runs in total.
    case runs(Int)
}

/// A closed-loop load: `concurrency` workers, each starting its next run as soon as its last one returned.
struct BenchLoad: Sendable {
    var concurrency: Int
    var stop: BenchStop

    /// Runs `runs` runs with the same concurrency and discards their figures: first connections, page cache and
    /// the daemon's first-run work stay out of the measurement.
    func warmUp(_ target: some BenchTarget, runs: Int) async {
        guard runs > 0 else { return }
        _ = await BenchLoad(concurrency: concurrency, stop: .runs(runs)).run(target)
    }

    /// Runs the load and returns the merged figures and the time from the first start to the last finish.
    ///
    /// - Parameter progress: called about once a second with the runs completed so far and the time since start.
    func run(
        _ target: some BenchTarget,
        progress: (@Sendable (_ completed: Int, _ elapsed: Duration) -> Void)? = nil
    ) async -> (stats: BenchStats, elapsed: Duration) {
        let clock = ContinuousClock()
        let start = clock.now
        let tickets = Tickets(stop: stop, start: start)
        let completed = Counter()
        let stats = await withTaskGroup(of: BenchStats.self) { group in
            for worker in 0..<concurrency {
                group.addTask(executorPreference: target.executor(worker: worker)) {
                    var stats = BenchStats()
                    while tickets.take(now: clock.now) {
                        let begin = clock.now
                        let sample = await target.runOnce(worker: worker)
                        stats.record(sample, latency: clock.now - begin)
                        completed.increment()
                        if sample.endsWorker { break }
                    }
                    return stats
                }
            }
            let reporter: Task<Void, Never>? = progress.map { report in
                Task {
                    while (try? await Task.sleep(for: .seconds(1))) != nil {
                        report(completed.value, clock.now - start)
                    }
                }
            }
            var total = BenchStats()
            for await part in group { total.merge(part) }
            reporter?.cancel()
            return total
        }
        return (stats, clock.now - start)
    }
}

/// Hands out permission to start a run until the stop condition says no; shared by all workers.
private final class Tickets: Sendable {
    private let deadline: ContinuousClock.Instant?
    private let remaining: Atomic<Int>

    init(stop: BenchStop, start: ContinuousClock.Instant) {
        switch stop {
        case .duration(let duration):
            deadline = start + duration
            remaining = Atomic(Int.max)
        case .runs(let runs):
            deadline = nil
            remaining = Atomic(runs)
        }
    }

    func take(now: ContinuousClock.Instant) -> Bool {
        if let deadline, now >= deadline { return false }
        if deadline != nil { return true }
        return remaining.subtract(1, ordering: .relaxed).newValue >= 0
    }
}

/// Runs completed so far, for the progress line.
private final class Counter: Sendable {
    private let count = Atomic<Int>(0)

    var value: Int { count.load(ordering: .relaxed) }

    func increment() {
        count.add(1, ordering: .relaxed)
    }
}
