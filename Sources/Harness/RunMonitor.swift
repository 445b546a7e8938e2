import ExecProtocol
import Foundation

/// The side-channel observer of one run: decodes records, moves the kill deadline as tests start and
/// end, and keeps what the run reported. Records without the run's nonce are ignored; records out of
/// order (a start that is not the next test, an end that is not the current test) are ignored too; a
/// malformed frame marks the channel corrupted and kills the run.
final class RunMonitor: SideChannelObserver, @unchecked Sendable {
    /// What the run reported, read after the run.
    struct Snapshot: Sendable {
        var outcomes: [(index: Int, outcome: TestOutcome)] = []
        var current: (index: Int, started: ContinuousClock.Instant)?
        var nextIndex: Int
        var compileError: Execd_V1_CompileError?
        var missingEntry: String?
        var loadError: (traceback: String, stdout: [UInt8], stderr: [UInt8])?
        var specError: String?
        var done = false
        var corrupted = false
        var stopRequested = false
        var forgedRecords = 0
        var deadline: ContinuousClock.Instant?
        var deadlineIsTestLimit = false
    }

    /// Time allowed for loading the submission and between tests.
    static let idleLimit = Duration.seconds(10)

    private let lock = NSLock()
    private var state: Snapshot
    private var frames = FrameReader()
    private let nonce: String
    private let limits: [Duration]
    private let end: Int
    private let failsFast: (@Sendable (Int, TestOutcome) -> Bool)?

    /// Observes a run of tests `range`; `failsFast` decides (when set) whether a finished test stops the run.
    init(nonce: String, range: Range<Int>, limits: [Duration], failsFast: (@Sendable (Int, TestOutcome) -> Bool)?) {
        self.nonce = nonce
        self.limits = limits
        self.end = range.upperBound
        self.failsFast = failsFast
        state = Snapshot(nextIndex: range.lowerBound)
        state.deadline = .now + RunMonitor.idleLimit
    }

    var snapshot: Snapshot { lock.withLock { state } }

    var killDeadline: ContinuousClock.Instant? { lock.withLock { state.deadline } }

    func consume(_ bytes: [UInt8]) {
        let now = ContinuousClock.now
        lock.withLock {
            guard !state.corrupted else { return }
            let bodies: [[UInt8]]
            do {
                bodies = try frames.feed(bytes)
            } catch {
                return corrupt(now)
            }
            for body in bodies {
                guard let json = try? JSONParser.parse(body), case .object = json else { return corrupt(now) }
                guard let record = RunnerRecord.decode(json, nonce: nonce) else {
                    state.forgedRecords += 1
                    continue
                }
                apply(record, now)
            }
        }
    }

    private func corrupt(_ now: ContinuousClock.Instant) {
        state.corrupted = true
        state.deadline = now
        state.deadlineIsTestLimit = false
    }

    private func apply(_ record: RunnerRecord, _ now: ContinuousClock.Instant) {
        switch record {
        case .start(let i):
            guard state.current == nil, i == state.nextIndex, i < end, !state.stopRequested else {
                state.forgedRecords += 1
                return
            }
            state.current = (i, now)
            state.deadline = now + limits[i]
            state.deadlineIsTestLimit = true
        case .end(let i, var outcome):
            guard let cur = state.current, cur.index == i else {
                state.forgedRecords += 1
                return
            }
            outcome.elapsed = now - cur.started
            state.outcomes.append((i, outcome))
            state.current = nil
            state.nextIndex = i + 1
            state.deadline = now + RunMonitor.idleLimit
            state.deadlineIsTestLimit = false
            if let failsFast, failsFast(i, outcome) {
                state.stopRequested = true
                state.deadline = now
            }
        case .compileError(let c): state.compileError = c
        case .missingEntry(let m): state.missingEntry = m
        case .loadError(let tb, let out, let err): state.loadError = (tb, out, err)
        case .specError(let m): state.specError = m
        case .done:
            state.done = true
            state.deadline = now + .seconds(2)
            state.deadlineIsTestLimit = false
        }
    }
}
