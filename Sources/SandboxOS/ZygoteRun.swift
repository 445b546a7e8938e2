import CExecChild
import Glibc

/// A zygote's setup of a run child failed before any user code ran.
public struct ZygoteSetupError: Error, CustomStringConvertible, Sendable {
    public let detail: String
    public var description: String { "the zygote's run child failed to set up: \(detail)" }
}

/// A zygote's next run child, forked and set up ahead of any request (see zygote.py): its pidfd, and the link its
/// request goes down.
public final class WarmChild: @unchecked Sendable {
    public private(set) var pidfd: Int32
    public let link: ControlSocket

    public init(pidfd: Int32, link: ControlSocket) {
        self.pidfd = pidfd
        self.link = link
    }

    deinit { release() }

    /// SIGKILLs it (a child never used) and closes its fds.
    public func kill() {
        if pidfd >= 0 { _ = execd_pidfd_send_signal(pidfd, SIGKILL) }
        release()
    }

    func release() {
        if pidfd >= 0 { close(pidfd); pidfd = -1 }
        link.close()
    }

    /// Hands over the pidfd (the caller closes it).
    func takePidfd() -> Int32 {
        defer { pidfd = -1 }
        return pidfd
    }
}

/// One run on a zygote's warm child (see zygote.py for its side of the protocol), driven by `RunMonitor`.
///
/// The child is already in the run's cgroup when `start` sends it the request: the run's payload and pipes. The
/// zygote reports the child's wait status on its control socket: `EXIT <status>` at once while other processes of
/// the run are alive, otherwise with its next warm child, `WARM <status>` (which `nextWarm` takes); a child that
/// failed to set up says why there first (`ERR`). Once the program is done, the child closes everything but its link and says `DONE <wait status>` on the
/// link before it exits: the run ends there, without waiting the ≈ 0.4 ms the kernel takes to tear the child down.
/// User code holds the link too, so `DONE` is taken as what it is, the run's own word about itself: it can only end
/// that run (whatever is left of it is killed at once) and anything else on the link stops execd listening there.
/// `killGroup` (the run cgroup's kill) takes down anything the child left behind; `signalGroup` (one round of it,
/// without waiting) does so on `DONE`, while the child itself is still exiting.
public final class ZygoteRun: MonitoredProcess, @unchecked Sendable {
    /// Requests up to this size travel in the link message itself; larger ones in a memfd (zygote.py's INLINE_MAX).
    public static let inlinePayloadLimit = 64 * 1024

    public private(set) var stdinFD: Int32
    public private(set) var stdoutFD: Int32
    public private(set) var stderrFD: Int32
    public private(set) var sideFD: Int32
    private var pidfd: Int32
    private let link: ControlSocket
    private let control: ControlSocket
    private let killGroup: () -> Void
    private let signalGroup: () -> Void
    private let nextWarm: (WarmChild) -> Void
    private var programStatus: Int32?
    private var setupError: ZygoteSetupError?
    /// Still reading the link for the child's `DONE`.
    private var listening = true
    public private(set) var endedEarly = false
    /// The control socket closed or spoke out of turn: the zygote must not be used again.
    public private(set) var zygoteBroken = false

    /// Sends the run to `child` (which the caller placed in the run's cgroup); from here on the child runs.
    public static func start(
        control: ControlSocket, child: WarmChild, payload: [UInt8], sideChannel: Bool, killGroup: @escaping () -> Void,
        signalGroup: @escaping () -> Void, nextWarm: @escaping (WarmChild) -> Void
    ) throws -> ZygoteRun {
        let pidfd = child.takePidfd()
        var childEnds: [Int32] = [], daemonEnds: [Int32] = []
        defer { for fd in childEnds { close(fd) } }
        do {
            // stdin, stdout, stderr and the side channel: the child reads stdin, writes the rest.
            for index in 0..<(sideChannel ? 4 : 3) {
                let pipe = index == 1 || index == 2 ? try Pipe.output() : try Pipe()
                childEnds.append(index == 0 ? pipe.read : pipe.write)
                daemonEnds.append(index == 0 ? pipe.write : pipe.read)
            }
            var message: [UInt8]
            if payload.count <= inlinePayloadLimit {
                message = [UInt8(ascii: "I")]
                message.reserveCapacity(payload.count + 1)
                message += payload
            } else {
                message = [UInt8(ascii: "M")]
                let memfd = execd_memfd("execd-run")
                guard memfd >= 0 else { throw SystemError("memfd_create") }
                childEnds.append(memfd)
                guard writeAll(memfd, payload) else { throw SystemError("write(payload)") }
            }
            try child.link.send(message, fds: childEnds)
        } catch {
            for fd in daemonEnds { close(fd) }
            _ = execd_pidfd_send_signal(pidfd, SIGKILL)
            close(pidfd)
            throw error
        }
        for fd in daemonEnds { setNonblocking(fd) }
        return ZygoteRun(pidfd: pidfd, link: child.link, stdin: daemonEnds[0], stdout: daemonEnds[1], stderr: daemonEnds[2],
                         side: sideChannel ? daemonEnds[3] : -1, control: control, killGroup: killGroup,
                         signalGroup: signalGroup, nextWarm: nextWarm)
    }

    private init(pidfd: Int32, link: ControlSocket, stdin: Int32, stdout: Int32, stderr: Int32, side: Int32,
                 control: ControlSocket, killGroup: @escaping () -> Void, signalGroup: @escaping () -> Void,
                 nextWarm: @escaping (WarmChild) -> Void) {
        self.pidfd = pidfd
        self.link = link
        stdinFD = stdin
        stdoutFD = stdout
        stderrFD = stderr
        sideFD = side
        self.control = control
        self.killGroup = killGroup
        self.signalGroup = signalGroup
        self.nextWarm = nextWarm
    }

    deinit { closeFDs() }

    public var exitFD: Int32 { control.fd }
    public var statusFD: Int32 { -1 }
    public var doneFD: Int32 { listening ? link.fd : -1 }
    public func closeStdin() { closeFD(&stdinFD) }
    public func closeStdout() { closeFD(&stdoutFD) }
    public func closeStderr() { closeFD(&stderrFD) }
    public func closeSide() { closeFD(&sideFD) }
    public func readStatus() -> Bool { false }

    public func readDone() {
        listening = false  // one message at most: a `DONE`, or whatever user code sent, which ends the listening
        guard let report = try? link.receive(timeout: .zero) else { return }
        for fd in report.fds { close(fd) }
        guard let status = doneWaitStatus(report.message), programStatus == nil else { return }
        programStatus = status
        endedEarly = true
        signalGroup()  // whatever the program left running dies with it (and the slot's cleanup makes sure of it)
    }

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
        let report = Self.report(message.message)
        // The run ended with nothing of it left: its status comes with the zygote's next warm child (`WARM <status>`),
        // which goes to the slot's cleanup.
        if case .warm(let status?) = report, message.fds.count == 2 {
            nextWarm(WarmChild(pidfd: message.fds[0], link: ControlSocket(fd: message.fds[1])))
            programStatus = status
            killGroup()
            return true
        }
        for fd in message.fds { close(fd) }
        switch report {
        case .error(let detail) where setupError == nil:  // the child's own report, before its EXIT
            setupError = ZygoteSetupError(detail: detail)
            return false
        case .exit(let status):
            programStatus = status
            killGroup()  // whatever the program left running dies with it
            return true
        default:
            zygoteBroken = true
            killChild()
            return true
        }
    }

    public func kill() { killChild() }

    /// A message on the zygote's control socket (zygote.py lists them).
    public enum Report: Equatable {
        /// `COPY <pages>`: once, before the first warm child: the zygote's pages each child gets copied at fork.
        case copied(pages: Int)
        /// `WARM` or `WARM <status>` (with a pidfd and a link): a warm child, with the previous child's wait status
        /// when it came along.
        case warm(previousStatus: Int32?)
        /// `EXIT <status>`: the run's child ended while other processes of its run live.
        case exit(status: Int32)
        /// `ERR <stage> <errno>`: a child's setup failed before any user code ran.
        case error(detail: String)
    }

    /// The report `message` is, or nil for anything else.
    public static func report(_ message: [UInt8]) -> Report? {
        let text = String(decoding: message, as: UTF8.self)
        let word = text.prefix { $0 != " " }
        let argument: Substring? = word.count < text.count ? text.dropFirst(word.count + 1) : nil
        switch (word, argument) {
        case ("WARM", nil): return .warm(previousStatus: nil)
        case ("WARM", let status?): return Int32(status).map { .warm(previousStatus: $0) }
        case ("EXIT", let status?): return Int32(status).map { .exit(status: $0) }
        case ("ERR", let detail?): return .error(detail: String(detail))
        case ("COPY", let pages?): return Int(pages).map { .copied(pages: $0) }
        default: return nil
        }
    }

    private func killChild() {
        if pidfd >= 0 { _ = execd_pidfd_send_signal(pidfd, SIGKILL) }
        killGroup()
    }

    public func conclude(into outcome: inout MonitorOutcome) {
        if let setupError {
            outcome.setupError = setupError
        } else {
            outcome.programStatus = programStatus
            if programStatus == nil && zygoteBroken {
                outcome.setupError = ZygoteSetupError(detail: "the zygote went away during the run")
            }
        }
        closeFDs()
    }

    private func closeFDs() {
        closeFD(&stdinFD); closeFD(&stdoutFD); closeFD(&stderrFD); closeFD(&sideFD); closeFD(&pidfd)
        link.close()
    }

    private func closeFD(_ fd: inout Int32) {
        if fd >= 0 { close(fd); fd = -1 }
    }
}
