import ExecProtocol
import Glibc
import SandboxOS

/// The verdict of one run, decided from what the kernel reported; never guessed from an exit code.
struct Verdict: Equatable, Sendable {
    var status: Execd_V1_Status
    var timeLimitKind: Execd_V1_TimeLimitKind = .none
    var exitCode: Int32 = 0
    var signal: Int32 = 0
    var internalError: String = ""

    /// Precedence: our own failures, then the limits execd enforced (output, time), then the memory cgroup's OOM
    /// event, then how the program itself ended. A run that ends within a check interval of a limit but used more
    /// than it still gets the limit's verdict, as judges do.
    static func decide(
        _ outcome: MonitorOutcome, cpuTime: Duration, cpuLimit: Duration, wallLimit: Duration, oomKills: Int
    ) -> Verdict {
        if let setup = outcome.setupError { return Verdict(status: .internalError, internalError: "\(setup)") }
        switch outcome.killedFor {
        case .outputLimit: return Verdict(status: .outputLimit)
        case .cpuTime: return Verdict(status: .timeLimit, timeLimitKind: .cpu)
        case .wallTime, .sideChannelDeadline: return Verdict(status: .timeLimit, timeLimitKind: .wall)
        case .memory: return Verdict(status: .memoryLimit)
        case .cancelled: return Verdict(status: .internalError, internalError: "run cancelled")
        case nil: break
        }
        if oomKills > 0 { return Verdict(status: .memoryLimit) }
        if cpuTime > cpuLimit { return Verdict(status: .timeLimit, timeLimitKind: .cpu) }
        if outcome.wallTime > wallLimit { return Verdict(status: .timeLimit, timeLimitKind: .wall) }
        guard let status = outcome.programStatus else {
            let how = outcome.reaperExit.map { "\($0)" } ?? "unknown"
            return Verdict(status: .internalError, internalError: "the sandbox ended without reporting a status (reaper: \(how), after \(outcome.wallTime), cpu \(cpuTime))")
        }
        let code = (status >> 8) & 0xff, signal = status & 0x7f
        if signal == 0 {
            return code == 0 ? Verdict(status: .ok) : Verdict(status: .runtimeError, exitCode: code)
        }
        // RLIMIT_CPU, the kernel's backstop behind the cgroup CPU check.
        if signal == SIGXCPU { return Verdict(status: .timeLimit, timeLimitKind: .cpu, signal: signal) }
        return Verdict(status: .signaled, signal: signal)
    }
}
