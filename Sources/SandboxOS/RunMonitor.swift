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
    public var setupError: (any Error & Sendable)?
    public var reaperExit: ReaperExit?
    public var wallTime: Duration = .zero
}

/// A process the monitor can drive: a one-shot sandbox (`SandboxProcess`) or a zygote's run child (`ZygoteRun`).
public protocol MonitoredProcess: AnyObject {
    var stdinFD: Int32 { get }
    var stdoutFD: Int32 { get }
    var stderrFD: Int32 { get }
    var sideFD: Int32 { get }
    /// Becomes readable when the process may have ended (a pidfd, a control socket).
    var exitFD: Int32 { get }
    /// Status bytes to drain while it runs (the reaper's report pipe), or -1.
    var statusFD: Int32 { get }
    func closeStdin()
    func closeStdout()
    func closeStderr()
    func closeSide()
    /// Drains `statusFD`; false at EOF (and closes it).
    func readStatus() -> Bool
    /// Where the program's side says it is done (`DONE <wait status>`) before its process has exited, or -1.
    var doneFD: Int32 { get }
    /// Called when `doneFD` is readable: reads one message (anything but a `DONE` stops the listening).
    func readDone()
    /// The process said it is done (on `doneFD`) and everything of the run has been sent SIGKILL: the run is over
    /// without waiting for `exitFD`.
    var endedEarly: Bool { get }
    /// Called when `exitFD` is readable; true once the process has ended.
    func handleExit() -> Bool
    /// Kills the program and everything it started.
    func kill()
    /// After the end: fills in how it ended and releases the process's fds.
    func conclude(into outcome: inout MonitorOutcome)
}

/// The wait status in a `DONE <wait status>` message (an exit, 0–255 shifted as wait(2) puts it), or nil for anything
/// else. The message comes from the sandbox's side, which user code shares: it is checked, never trusted further.
func doneWaitStatus(_ message: some Collection<UInt8>) -> Int32? {
    let text = String(decoding: message, as: UTF8.self)
    guard text.hasPrefix("DONE "), let status = Int32(text.dropFirst(5)), status >= 0, status <= 0xFF00, status & 0xFF == 0
    else { return nil }
    return status
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
    /// From the start and after output was read, stdout and stderr are not watched for this long: a run's output then
    /// costs no wake-up of its own (a trivial program's `1` and its pipes' hang-up come just before its end, and were
    /// two of three wake-ups of a run), while a program that fills its 1 MiB pipe (`Pipe.output`) waits at most this
    /// long for it to be drained. The run's end and everything else are watched all along.
    static let outputQuiet: Duration = .milliseconds(10)
    /// When the monitor first looks whether the run is waiting rather than computing (`RunControl.whenWaiting`), and
    /// how often after that while it computes: a trivial run is over before the first look.
    static let waitingCheck: Duration = .milliseconds(5)
    static let waitingRecheck: Duration = .milliseconds(20)

    public func run(_ process: any MonitoredProcess, stdin: [UInt8]) -> MonitorOutcome {
        var outcome = MonitorOutcome()
        let clock = ContinuousClock()
        let start = clock.now
        let wallDeadline = start + wallLimit
        // CPU time cannot outgrow the quota: the first check can wait (never longer than the usual pacing cap).
        var nextCPUCheck = start + max(.milliseconds(2), min(cpuLimit / max(cores, 0.1), .milliseconds(250)))
        var stdinOffset = 0
        var exited = false
        var outputQuietUntil = start + Self.outputQuiet
        var scratch: [UInt8] = []  // every read's buffer (see readChunk)
        var waitingCheck = control.watchesWaiting ? start + Self.waitingCheck : nil
        var computedSince = (time: start, cpu: Duration.zero)
        var fds: [pollfd] = []  // each turn's poll set (one array for the run)
        fds.reserveCapacity(8)
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
            // The cgroup's counters, read at most once per turn (both checks may fall due together).
            var sampled: (cpu: Duration, oomKills: Int)?
            func sample() -> (cpu: Duration, oomKills: Int) {
                if let sampled { return sampled }
                let fresh = usage()
                sampled = fresh
                return fresh
            }
            if !exited && killedFor == nil {
                if control.isCancelled { kill(.cancelled) }
                else if now >= wallDeadline { kill(.wallTime) }
                else if let deadline = side?.killDeadline, now >= deadline { kill(.sideChannelDeadline) }
                else if now >= nextCPUCheck {
                    let (used, oomKills) = sample()
                    if used >= cpuLimit { kill(.cpuTime) }
                    // cgroup v1 OOM-kills one process, not the group: end the run as a whole, as v2's oom.group does.
                    else if oomKills > 0 { kill(.memory) }
                    else {
                        // The run cannot burn its remaining CPU faster than its quota allows: sleep until then.
                        let pace = (cpuLimit - used) / max(cores, 0.1)
                        nextCPUCheck = now + max(.milliseconds(2), min(pace, .milliseconds(250)))
                    }
                }
                if killedFor == nil, let at = waitingCheck, now >= at {
                    let used = sample().cpu
                    if (used - computedSince.cpu) * 2 < now - computedSince.time {
                        control.reportWaiting()
                        waitingCheck = nil
                    } else {
                        computedSince = (now, used)
                        waitingCheck = now + Self.waitingRecheck
                    }
                }
            }
            fds.removeAll(keepingCapacity: true)
            func watch(_ fd: Int32, _ events: Int32) { if fd >= 0 { fds.append(pollfd(fd: fd, events: Int16(events), revents: 0)) } }
            watch(process.stdinFD, POLLOUT)
            let outputWatched = exited || now >= outputQuietUntil
            if outputWatched {
                watch(process.stdoutFD, POLLIN)
                watch(process.stderrFD, POLLIN)
            }
            watch(process.sideFD, POLLIN)
            watch(process.statusFD, POLLIN)
            if !exited { watch(process.exitFD, POLLIN); watch(process.doneFD, POLLIN) }
            watch(control.eventFD, POLLIN)
            // Done once the process has ended and every pipe reached EOF.
            if exited && process.stdoutFD < 0 && process.stderrFD < 0 && process.sideFD < 0 && process.statusFD < 0 { break }

            var wake = exited ? Duration.seconds(5) : min(wallDeadline, nextCPUCheck) - now
            if !exited, let deadline = side?.killDeadline { wake = min(wake, deadline - now) }
            if !exited, let at = waitingCheck { wake = min(wake, at - now) }
            if !outputWatched { wake = min(wake, outputQuietUntil - now) }
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
                    if !drain(entry.fd, into: &outcome.stdout, scratch: &scratch, truncated: &outcome.stdoutTruncated, kill: kill) {
                        process.closeStdout()
                    }
                    outputQuietUntil = clock.now + Self.outputQuiet
                case process.stderrFD:
                    if !drain(entry.fd, into: &outcome.stderr, scratch: &scratch, truncated: &outcome.stderrTruncated, kill: kill) {
                        process.closeStderr()
                    }
                    outputQuietUntil = clock.now + Self.outputQuiet
                case process.sideFD:
                    if !readChunk(entry.fd, scratch: &scratch, { side?.consume(Array($0)) }) { process.closeSide() }
                case process.statusFD:
                    _ = process.readStatus()
                case process.doneFD where !exited:
                    process.readDone()
                    if process.endedEarly {
                        exited = true
                        outcome.wallTime = clock.now - start
                    }
                case process.exitFD where !exited:
                    if process.handleExit() {
                        exited = true
                        outcome.wallTime = clock.now - start
                    }
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
        }
        outcome.killedFor = killedFor
        process.conclude(into: &outcome)
        return outcome
    }

    /// Reads what is available into `buffer` up to the output limit; past it, keeps draining (so the program never
    /// blocks on a full pipe), flags truncation and kills the run. Returns false at EOF.
    private func drain(_ fd: Int32, into buffer: inout [UInt8], scratch: inout [UInt8], truncated: inout Bool,
                       kill: (KillReason) -> Void) -> Bool {
        readChunk(fd, scratch: &scratch) { bytes in
            let room = outputLimit - buffer.count
            if bytes.count <= room {
                buffer += bytes
            } else {
                if room > 0 { buffer += bytes.prefix(room) }
                truncated = true
                kill(.outputLimit)
            }
        }
    }

    /// Reads until EAGAIN (bounded, so one stream cannot starve the others) through `scratch`, one buffer per run
    /// (made on first use, small: most runs print a few bytes; it grows to `chunk` once a read fills it). Returns
    /// false at EOF or error.
    func readChunk(_ fd: Int32, scratch: inout [UInt8], _ deliver: (ArraySlice<UInt8>) -> Void) -> Bool {
        if scratch.isEmpty { scratch = [UInt8](repeating: 0, count: 4096) }
        for _ in 0..<16 {
            let n = scratch.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                deliver(scratch[0..<n])
                if n == scratch.count, n < Self.chunk { scratch = [UInt8](repeating: 0, count: Self.chunk) }
                continue
            }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return true }
            return false
        }
        return true
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

extension SandboxProcess: MonitoredProcess {
    public var exitFD: Int32 { pidfd }
    /// The reaper's reports, until the worker said it is done: they end when the reaper does, which the run then no
    /// longer waits for.
    public var statusFD: Int32 { doneStatus == nil ? reportFD : -1 }

    public func readStatus() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(reportFD, $0.baseAddress, $0.count) }
        if n > 0 { reports += buffer[0..<n]; return true }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return true }
        closeReport()
        return false
    }

    public func handleExit() -> Bool {
        reaperExit = reap()
        return true
    }

    public func conclude(into outcome: inout MonitorOutcome) {
        if let doneStatus {
            // Ended on the worker's DONE: its sandbox was sent SIGKILL then and is reaped by whoever retires it.
            outcome.programStatus = doneStatus
            closeAllButPidfd()
            return
        }
        if reaperExit == nil { reaperExit = reap() }
        // The reaper is gone, so the report pipe's writer is too: read to EOF. (A concurrent spawn may hold a copy
        // of the write end for the microseconds before its child closes inherited fds: wait that out, bounded.)
        var waits = 0
        while reportFD >= 0 {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { read(reportFD, $0.baseAddress, $0.count) }
            if n > 0 {
                reports += buffer[0..<n]
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && errno == EAGAIN && waits < 100 {
                waits += 1
                var p = pollfd(fd: reportFD, events: Int16(POLLIN), revents: 0)
                _ = poll(&p, 1, 20)
            } else {
                closeReport()
            }
        }
        outcome.reaperExit = reaperExit
        let size = MemoryLayout<execd_report>.size
        var offset = 0
        while offset + size <= reports.count {
            let record = reports[offset..<offset + size].withUnsafeBytes { $0.loadUnaligned(as: execd_report.self) }
            offset += size
            if record.kind == Int32(EXECD_REPORT_SETUP_FAILED.rawValue), outcome.setupError == nil {
                outcome.setupError = ChildSetupError(rawStage: record.stage, errno: record.error)
            } else if record.kind == Int32(EXECD_REPORT_EXITED.rawValue) {
                outcome.programStatus = record.wait_status
            }
        }
        closeAll()
    }
}
