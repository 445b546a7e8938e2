import CExecChild
import Glibc

/// A zygote's setup of a run child failed before any user code ran.
public struct ZygoteSetupError: Error, CustomStringConvertible, Sendable {
    public let detail: String
    public var description: String { "the zygote's run child failed to set up: \(detail)" }
}

/// One run child forked by a warm zygote (see zygote.py for its side of the protocol), driven by `RunMonitor`.
///
/// Life: `start` sends the zygote the run's payload and pipes and gets back the child's pidfd; the caller puts the
/// child in the run's cgroup, then `release` lets it proceed to drop its privileges and run the user code. The
/// zygote reports the child's wait status on the control socket; `killGroup` (the run cgroup's kill) takes down
/// anything the child left behind.
public final class ZygoteRun: MonitoredProcess, @unchecked Sendable {
    public let hostPID: pid_t
    public private(set) var stdinFD: Int32
    public private(set) var stdoutFD: Int32
    public private(set) var stderrFD: Int32
    public private(set) var sideFD: Int32
    private var pidfd: Int32
    private var goFD: Int32
    private let control: ControlSocket
    private let killGroup: () -> Void
    private var programStatus: Int32?
    private var setupError: ZygoteSetupError?
    /// The control socket closed or spoke out of turn: the zygote must not be used again.
    public private(set) var zygoteBroken = false

    /// Hands a run to the zygote behind `control` and waits (bounded) for the child's pidfd.
    public static func start(
        control: ControlSocket, payload: [UInt8], sideChannel: Bool, killGroup: @escaping () -> Void
    ) throws -> ZygoteRun {
        let memfd = execd_memfd("execd-run")
        guard memfd >= 0 else { throw SystemError("memfd_create") }
        defer { close(memfd) }
        guard writeAll(memfd, payload) else { throw SystemError("write(payload)") }
        var stdin = try Pipe(), stdout = try Pipe(), stderr = try Pipe(), go = try Pipe()
        var side = sideChannel ? try Pipe() : nil
        var childEnds = [memfd, stdin.read, stdout.write, stderr.write, go.read]
        if let side { childEnds.append(side.write) }
        defer {
            stdin.closeRead(); stdout.closeWrite(); stderr.closeWrite(); go.closeRead(); side?.closeWrite()
        }
        let daemonEnds = [stdin.write, stdout.read, stderr.read, go.write, side?.read ?? -1]
        func closeDaemonEnds() { for fd in daemonEnds where fd >= 0 { close(fd) } }
        do {
            try control.send(Array("RUN".utf8), fds: childEnds)
            guard let reply = try control.receive(timeout: .seconds(5)) else { throw ZygoteSetupError(detail: "zygote closed its control socket") }
            guard reply.message == Array("PID".utf8), reply.fds.count == 1 else {
                for fd in reply.fds { close(fd) }
                throw ZygoteSetupError(detail: "unexpected zygote message \(String(decoding: reply.message, as: UTF8.self))")
            }
            let pidfd = reply.fds[0]
            let pid: pid_t
            do { pid = try SandboxOS.hostPID(ofPidfd: pidfd) } catch { _ = execd_pidfd_send_signal(pidfd, SIGKILL); close(pidfd); throw error }
            for fd in daemonEnds where fd >= 0 && fd != go.write { _ = execd_set_nonblocking(fd) }
            return ZygoteRun(hostPID: pid, pidfd: pidfd, stdin: stdin.write, stdout: stdout.read, stderr: stderr.read,
                             side: side?.read ?? -1, go: go.write, control: control, killGroup: killGroup)
        } catch {
            closeDaemonEnds()
            throw error
        }
    }

    private init(hostPID: pid_t, pidfd: Int32, stdin: Int32, stdout: Int32, stderr: Int32, side: Int32, go: Int32,
                 control: ControlSocket, killGroup: @escaping () -> Void) {
        self.hostPID = hostPID
        self.pidfd = pidfd
        stdinFD = stdin
        stdoutFD = stdout
        stderrFD = stderr
        sideFD = side
        goFD = go
        self.control = control
        self.killGroup = killGroup
    }

    deinit { closeFDs() }

    /// Lets the child go on (after it was placed in its cgroup).
    public func release() throws {
        defer { closeFD(&goFD) }
        guard writeAll(goFD, Array("g".utf8)) else { throw SystemError("write(go)") }
    }

    public var exitFD: Int32 { control.fd }
    public var statusFD: Int32 { -1 }
    public func closeStdin() { closeFD(&stdinFD) }
    public func closeStdout() { closeFD(&stdoutFD) }
    public func closeStderr() { closeFD(&stderrFD) }
    public func closeSide() { closeFD(&sideFD) }
    public func readStatus() -> Bool { false }

    public func handleExit() -> Bool {
        let message: (message: [UInt8], fds: [Int32])?
        do { message = try control.receive() } catch {
            zygoteBroken = true
            killChild()
            return true
        }
        guard let message else {
            zygoteBroken = true  // the zygote died; its child got SIGKILL from its death signal
            killChild()
            return true
        }
        for fd in message.fds { close(fd) }
        let text = String(decoding: message.message, as: UTF8.self)
        if text.hasPrefix("EXIT "), let status = Int32(text.dropFirst(5)) {
            programStatus = status
            killGroup()  // whatever the program left running dies with it
            return true
        }
        if text.hasPrefix("ERR ") {
            setupError = ZygoteSetupError(detail: String(text.dropFirst(4)))
            return false
        }
        zygoteBroken = true
        killChild()
        return true
    }

    public func kill() { killChild() }

    private func killChild() {
        if pidfd >= 0 { _ = execd_pidfd_send_signal(pidfd, SIGKILL) }
        killGroup()
    }

    public func conclude(into outcome: inout MonitorOutcome) {
        outcome.programStatus = programStatus
        if let setupError {
            outcome.setupError = setupError
        } else if programStatus == nil && zygoteBroken {
            outcome.setupError = ZygoteSetupError(detail: "the zygote went away during the run")
        }
        closeFDs()
    }

    private func closeFDs() {
        closeFD(&stdinFD); closeFD(&stdoutFD); closeFD(&stderrFD); closeFD(&sideFD); closeFD(&goFD); closeFD(&pidfd)
    }

    private func closeFD(_ fd: inout Int32) {
        if fd >= 0 { close(fd); fd = -1 }
    }
}
