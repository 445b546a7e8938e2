import CExecChild
import Glibc

/// Why execd killed a run.
public enum KillReason: Sendable, Equatable {
    case cpuTime, wallTime, outputLimit, memory, sideChannelDeadline, cancelled
}

/// Everything observed about one sandbox from release to reap.
public struct MonitorOutcome: Sendable {
    public init() {}
    public var stdout: [UInt8] = []
    public var stderr: [UInt8] = []
    public var stdoutTruncated = false
    public var stderrTruncated = false
    public var killedFor: KillReason?
    /// wait(2) status of the program (pid 2), from the reaper's report.
    public var programStatus: Int32?
    public var setupError: ChildSetupError?
    public var reaperExit: ReaperExit?
    public var wallTime: Duration = .zero
}

/// Receives the program's fd 3 (side channel) live; may ask for a kill by a deadline (a per-test time limit).
public protocol SideChannelSink: AnyObject {
    func consume(_ bytes: [UInt8])
    var killDeadline: ContinuousClock.Instant? { get }
}

/// Drives one sandbox on the calling thread: feeds stdin, drains stdout/stderr/side channel with caps, reads the
/// reaper's reports, and enforces the wall-clock and CPU-time limits by killing the whole pid namespace.
public struct RunMonitor {
    public var cpuLimit: Duration
    public var wallLimit: Duration
    public var outputLimit: Int
    /// CPU bandwidth in cores (for pacing CPU checks: CPU time cannot grow faster than this).
    public var cores: Double
    /// CPU time used so far and OOM kills seen, from the run's cgroup.
    public var usage: () -> (cpu: Duration, oomKills: Int)
    public var control: RunControl
    public var side: (any SideChannelSink)?

    public init(cpuLimit: Duration, wallLimit: Duration, outputLimit: Int, cores: Double, usage: @escaping () -> (cpu: Duration, oomKills: Int),
                control: RunControl, side: (any SideChannelSink)?) {
        self.cpuLimit = cpuLimit
        self.wallLimit = wallLimit
        self.outputLimit = outputLimit
        self.cores = cores
        self.usage = usage
        self.control = control
        self.side = side
    }

    private static let chunk = 64 * 1024

    public func run(_ process: SandboxProcess, stdin: [UInt8]) -> MonitorOutcome {
        var outcome = MonitorOutcome()
        let clock = ContinuousClock()
        let start = clock.now
        let wallDeadline = start + wallLimit
        var nextCPUCheck = start
        var stdinOffset = 0
        var reportBytes: [UInt8] = []
        var exited = false
        if stdin.isEmpty { process.closeStdin() }

        // Kept apart from `outcome`, which is borrowed inout while output is drained and may trigger a kill.
        var killedFor: KillReason?
        func kill(_ reason: KillReason) {
            guard killedFor == nil else { return }
            killedFor = reason
            process.kill()
        }

        while true {
            let now = clock.now
            if !exited && killedFor == nil {
                if control.isCancelled { kill(.cancelled) }
                else if now >= wallDeadline { kill(.wallTime) }
                else if let deadline = side?.killDeadline, now >= deadline { kill(.sideChannelDeadline) }
                else if now >= nextCPUCheck {
                    let (used, oomKills) = usage()
                    if used >= cpuLimit { kill(.cpuTime) }
                    // cgroup v1 OOM-kills one process, not the group: end the run as a whole, as v2's oom.group does.
                    else if oomKills > 0 { kill(.memory) }
                    else {
                        // The run cannot burn its remaining CPU faster than its quota allows: sleep until then.
                        let pace = (cpuLimit - used) / max(cores, 0.1)
                        nextCPUCheck = now + max(.milliseconds(2), min(pace, .milliseconds(250)))
                    }
                }
            }
            var fds: [pollfd] = []
            func watch(_ fd: Int32, _ events: Int32) { if fd >= 0 { fds.append(pollfd(fd: fd, events: Int16(events), revents: 0)) } }
            watch(process.stdinFD, POLLOUT)
            watch(process.stdoutFD, POLLIN)
            watch(process.stderrFD, POLLIN)
            watch(process.sideFD, POLLIN)
            watch(process.reportFD, POLLIN)
            if !exited { watch(process.pidfd, POLLIN) }
            watch(control.eventFD, POLLIN)
            // Done once the reaper is gone and every pipe reached EOF.
            if exited && process.stdoutFD < 0 && process.stderrFD < 0 && process.sideFD < 0 && process.reportFD < 0 { break }

            var wake = exited ? Duration.seconds(5) : min(wallDeadline, nextCPUCheck) - now
            if !exited, let deadline = side?.killDeadline { wake = min(wake, deadline - now) }
            let timeoutMs = Int32(clamping: max(0, wake.milliseconds) + 1)
            let ready = poll(&fds, nfds_t(fds.count), timeoutMs)
            if ready < 0 && errno != EINTR { break }
            if exited && ready == 0 { break }  // a pipe held open past the namespace's death: give up on it

            for entry in fds where entry.revents != 0 {
                switch entry.fd {
                case process.stdinFD:
                    if (entry.revents & Int16(POLLOUT)) != 0 {
                        let n = stdin.withUnsafeBytes { write(entry.fd, $0.baseAddress! + stdinOffset, $0.count - stdinOffset) }
                        if n > 0 { stdinOffset += n }
                        if n < 0 && errno != EAGAIN && errno != EINTR || stdinOffset == stdin.count { process.closeStdin() }
                    } else {
                        process.closeStdin()  // POLLERR: the program closed its stdin
                    }
                case process.stdoutFD:
                    if !drain(entry.fd, into: &outcome.stdout, truncated: &outcome.stdoutTruncated, kill: kill) { process.closeStdout() }
                case process.stderrFD:
                    if !drain(entry.fd, into: &outcome.stderr, truncated: &outcome.stderrTruncated, kill: kill) { process.closeStderr() }
                case process.sideFD:
                    if !readChunk(entry.fd, { side?.consume($0) }) { process.closeSide() }
                case process.reportFD:
                    if !readChunk(entry.fd, { reportBytes += $0 }) { process.closeReport() }
                case process.pidfd:
                    exited = true
                    outcome.wallTime = clock.now - start
                    outcome.reaperExit = process.reap()
                case control.eventFD:
                    control.acknowledge()
                default:
                    break
                }
            }
        }
        if !exited {
            process.kill()
            outcome.wallTime = clock.now - start
            outcome.reaperExit = process.reap()
        }
        outcome.killedFor = killedFor
        parseReports(reportBytes, into: &outcome)
        process.closeAll()
        return outcome
    }

    /// Reads what is available into `buffer` up to the output limit; past it, keeps draining (so the program never
    /// blocks on a full pipe), flags truncation and kills the run. Returns false at EOF.
    private func drain(_ fd: Int32, into buffer: inout [UInt8], truncated: inout Bool, kill: (KillReason) -> Void) -> Bool {
        readChunk(fd) { bytes in
            let room = outputLimit - buffer.count
            if bytes.count <= room {
                buffer += bytes
            } else {
                if room > 0 { buffer += bytes[0..<room] }
                truncated = true
                kill(.outputLimit)
            }
        }
    }

    /// Reads until EAGAIN (bounded, so one stream cannot starve the others). Returns false at EOF or error.
    private func readChunk(_ fd: Int32, _ deliver: ([UInt8]) -> Void) -> Bool {
        var buffer = [UInt8](repeating: 0, count: Self.chunk)
        for _ in 0..<16 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { deliver(Array(buffer[0..<n])); continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return true }
            return false
        }
        return true
    }

    private func parseReports(_ bytes: [UInt8], into outcome: inout MonitorOutcome) {
        let size = MemoryLayout<execd_report>.size
        var offset = 0
        while offset + size <= bytes.count {
            let record = bytes[offset..<offset + size].withUnsafeBytes { $0.loadUnaligned(as: execd_report.self) }
            offset += size
            if record.kind == Int32(EXECD_REPORT_SETUP_FAILED.rawValue), outcome.setupError == nil {
                outcome.setupError = ChildSetupError(rawStage: record.stage, errno: record.error)
            } else if record.kind == Int32(EXECD_REPORT_EXITED.rawValue) {
                outcome.programStatus = record.wait_status
            }
        }
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    public var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
    /// Whole microseconds, rounded down.
    public var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}

extension Duration {
    static func / (lhs: Duration, rhs: Double) -> Duration { lhs * (1.0 / rhs) }
}
