import ExecProtocol

/// Receives the result channel of one run: everything the program writes on fd 3.
///
/// The daemon calls `consume` with each chunk as it arrives and checks `killDeadline` at least every
/// few milliseconds, killing the whole run (reported as `STATUS_TIME_LIMIT`, `TIME_LIMIT_KIND_WALL`) once
/// it has passed. Implementations are thread-safe; the daemon may call from its monitor thread(s).
public protocol SideChannelObserver: AnyObject, Sendable {
    /// Bytes the program wrote on fd 3, in order, in chunks of any size.
    func consume(_ bytes: [UInt8])
    /// When to kill the run (the current test's time limit, or "now" to stop early); nil = no deadline.
    var killDeadline: ContinuousClock.Instant? { get }
}

/// Runs one sandboxed program. The daemon implements this over its sandbox pool; tests use a local,
/// unsandboxed implementation.
///
/// Contract: write `request.files` under the run's private `/tmp`, write `request.code` to `/tmp/main.py`
/// (Python) or `/tmp/main.js` (JavaScript), run `/usr/bin/python3 -I -B /tmp/main.py` or
/// `/usr/bin/node /tmp/main.js` with cwd `/tmp`, `request.stdin` on fd 0, stdout/stderr captured, and —
/// when `sideChannel` is non-nil — the write end of a pipe as fd 3 whose read end feeds `consume`.
/// Enforce `request.limits` as for any run, plus `killDeadline`. Throw only for infrastructure failures.
public protocol RunExecutor: Sendable {
    func execute(_ request: Execd_V1_RunRequest, sideChannel: (any SideChannelObserver)?) async throws
        -> Execd_V1_RunResult
}

/// A judge request that cannot be judged, or a run that failed for reasons not the submission's.
public enum JudgeError: Error, CustomStringConvertible, Equatable {
    /// The request (or spec file) is invalid; the message says what to fix.
    case badRequest(String)
    /// The executor or the runner failed (not the submission's fault).
    case internalError(String)

    public var description: String {
        switch self {
        case .badRequest(let m): "bad judge request: \(m)"
        case .internalError(let m): "judge internal error: \(m)"
        }
    }
}
