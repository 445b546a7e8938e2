import CExecChild
import Glibc

/// Sets O_NONBLOCK on `fd`; false if fcntl failed.
@discardableResult
func setNonblocking(_ fd: Int32) -> Bool {
    let flags = fcntl(fd, F_GETFL)
    return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0
}

/// A pipe's two ends (-1 once closed).
struct Pipe {
    var read: Int32
    var write: Int32

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard execd_pipe2_cloexec(&fds) == 0 else { throw SystemError("pipe2") }
        read = fds[0]
        write = fds[1]
    }

    /// A pipe for a program's stdout or stderr: 1 MiB (the default output limit) instead of 64 KiB, best effort. The
    /// run monitor reads output in batches (`RunMonitor.outputQuiet`), and a program that prints up to the limit
    /// then never waits for it. The kernel allocates the pages only as they are written, charged to the writer.
    static func output() throws -> Pipe {
        let pipe = try Pipe()
        _ = fcntl(pipe.write, F_SETPIPE_SZ, Int32(outputCapacity))
        return pipe
    }

    static let outputCapacity = 1 << 20
    /// fcntl's F_SETPIPE_SZ, which Swift's Glibc does not export (<fcntl.h> defines it under _GNU_SOURCE only).
    private static let F_SETPIPE_SZ: Int32 = 1031

    /// A connected pair of stream sockets instead (`read` for the sandbox, `write` for the daemon): both ways.
    static func socketPair() throws -> Pipe {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SystemError("socketpair")
        }
        return Pipe(read: fds[0], write: fds[1])
    }

    private init(read: Int32, write: Int32) {
        self.read = read
        self.write = write
    }

    mutating func closeRead() { if read >= 0 { close(read); read = -1 } }
    mutating func closeWrite() { if write >= 0 { close(write); write = -1 } }
}

/// The pipes between the daemon and one sandbox, all close-on-exec from birth.
struct PipeSet {
    var stdin: Pipe, stdout: Pipe, stderr: Pipe, side: Pipe?, input: Pipe?, sync: Pipe, report: Pipe

    init(sideChannel: Bool, input: Bool = false) throws {
        stdin = try Pipe()
        stdout = try Pipe.output()
        stderr = try Pipe.output()
        side = sideChannel ? try Pipe() : nil
        self.input = input ? try Pipe.socketPair() : nil
        sync = try Pipe()
        report = try Pipe()
    }

    mutating func closeChildEnds() {
        stdin.closeRead()
        stdout.closeWrite()
        stderr.closeWrite()
        side?.closeWrite()
        input?.closeRead()
        sync.closeRead()
        report.closeWrite()
    }

    /// Closes whatever is still open (after a failure, or the ends already handed to a `SandboxProcess`).
    mutating func closeAll() {
        for keyPath in [\PipeSet.stdin, \.stdout, \.stderr, \.sync, \.report] as [WritableKeyPath<PipeSet, Pipe>] {
            self[keyPath: keyPath].closeRead()
            self[keyPath: keyPath].closeWrite()
        }
        side?.closeRead()
        side?.closeWrite()
        input?.closeRead()
        input?.closeWrite()
    }
}

/// How the sandbox's reaper (pid 1) ended, as seen by the daemon.
public enum ReaperExit: Sendable, Equatable {
    case exited(Int32)
    case signaled(Int32)
}

/// A running sandbox: its reaper's pid and pidfd and the daemon's ends of its pipes (non-blocking). Owned by one
/// thread (the run's monitor); not safe to share.
public final class SandboxProcess: @unchecked Sendable {
    public let pid: pid_t
    public private(set) var pidfd: Int32
    public private(set) var stdinFD: Int32
    public private(set) var stdoutFD: Int32
    public private(set) var stderrFD: Int32
    public private(set) var sideFD: Int32
    public private(set) var reportFD: Int32
    /// The daemon's end of the program's fd 4, a stream socket: a pre-started worker reads its program there, then
    /// says there when the program is done (see `finishInput`), or -1.
    public private(set) var inputFD: Int32
    /// The program is in (`finishInput`) and fd 4 is read for the worker's DONE.
    private var listeningForDone = false
    /// The wait status the worker said its program ended with, if it said so.
    var doneStatus: Int32?
    private(set) var syncFD: Int32
    /// An fd of the sandbox's mount namespace while held (see `holdMountNamespace`), or -1.
    private var mountNamespaceFD: Int32 = -1
    private var reaped = false
    /// Report records read so far (the monitor drains them while the sandbox runs).
    var reports: [UInt8] = []
    var reaperExit: ReaperExit?

    init(pid: pid_t, pidfd: Int32, pipes: inout PipeSet) {
        self.pid = pid
        self.pidfd = pidfd
        stdinFD = pipes.stdin.write
        stdoutFD = pipes.stdout.read
        stderrFD = pipes.stderr.read
        sideFD = pipes.side?.read ?? -1
        reportFD = pipes.report.read
        inputFD = pipes.input?.write ?? -1
        syncFD = pipes.sync.write
        // Ownership moves here; the PipeSet must not close these.
        pipes.stdin.write = -1
        pipes.stdout.read = -1
        pipes.stderr.read = -1
        pipes.side?.read = -1
        pipes.report.read = -1
        pipes.input?.write = -1
        pipes.sync.write = -1
        for fd in [stdinFD, stdoutFD, stderrFD, sideFD, reportFD] where fd >= 0 { setNonblocking(fd) }
    }

    deinit {
        closeAll()
        releaseMountNamespace()
    }

    /// True once the reaper has been reaped: the sandbox's pid namespace, and with it every process of the sandbox,
    /// is gone.
    public var hasEnded: Bool { reaped }

    /// Keeps the sandbox's mount namespace alive past the sandbox's end, until `releaseMountNamespace()`. The last
    /// process to leave a mount namespace tears it down in its exit, and that waits for an RCU grace period
    /// (≈ 1–2 ms here): holding it moves that wait from the reaper's exit, which ends the run, to the release.
    public func holdMountNamespace() throws {
        guard mountNamespaceFD < 0, !reaped else { return }
        let path = "/proc/\(pid)/ns/mnt"
        let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemError("open", path: path) }
        mountNamespaceFD = fd
    }

    /// Lets the mount namespace go (its mounts, the run's /tmp among them, are freed now if nothing else holds it).
    public func releaseMountNamespace() {
        if mountNamespaceFD >= 0 { close(mountNamespaceFD); mountNamespaceFD = -1 }
    }

    /// SIGKILL to the reaper: the kernel then kills every process of the sandbox's pid namespace.
    public func kill() {
        guard !reaped, pidfd >= 0 else { return }
        _ = execd_pidfd_send_signal(pidfd, SIGKILL)
    }

    /// Waits for the reaper to end and reaps it. When it returns, the whole pid namespace is gone.
    public func reap() -> ReaperExit? {
        guard !reaped, pidfd >= 0 else { return nil }
        var code: Int32 = 0
        var status: Int32 = 0
        guard execd_pidfd_wait(pidfd, 0, &code, &status) == 0 else { return nil }
        reaped = true
        return code == CLD_EXITED ? .exited(status) : .signaled(status)
    }

    public func closeStdin() { closeFD(&stdinFD) }
    public func closeStdout() { closeFD(&stdoutFD) }
    public func closeStderr() { closeFD(&stderrFD) }
    public func closeSide() { closeFD(&sideFD) }
    public func closeReport() { closeFD(&reportFD) }
    public func closeInput() { closeFD(&inputFD) }

    /// The program has been written to fd 4: the worker reads to the end of it, and fd 4 then carries the worker's
    /// `DONE <wait status>` the other way (worker.js: once the program is done, before node's own exit).
    public func finishInput() throws {
        guard shutdown(inputFD, Int32(SHUT_WR)) == 0 else { throw SystemError("shutdown(fd 4)") }
        setNonblocking(inputFD)
        listeningForDone = true
    }

    public var doneFD: Int32 { listeningForDone ? inputFD : -1 }
    public var endedEarly: Bool { doneStatus != nil }

    /// One read on fd 4. A `DONE` (the worker's, or the program's own: it ends that run only) kills the sandbox (SIGKILL
    /// to its reaper ends its pid namespace) and ends the run; anything else stops the listening, and the run ends
    /// when the reaper does.
    public func readDone() {
        listeningForDone = false
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { read(inputFD, $0.baseAddress, $0.count) }
        guard n > 0, let status = doneWaitStatus(buffer[0..<n]) else { return }
        doneStatus = status
        kill()
    }
    func closeSync() { closeFD(&syncFD) }

    /// Closes every fd; kills and reaps the sandbox first if that has not happened (no zombie is ever left). A held
    /// mount namespace stays held.
    public func closeAll() {
        if !reaped && pidfd >= 0 {
            kill()
            _ = reap()
        }
        closeAllButPidfd()
        closeFD(&pidfd)
    }

    /// Closes the pipes and sockets but keeps the pidfd, so that whoever retires the sandbox reaps it.
    func closeAllButPidfd() {
        for keyPath in [\SandboxProcess.stdinFD, \.stdoutFD, \.stderrFD, \.sideFD, \.reportFD, \.inputFD, \.syncFD]
            as [ReferenceWritableKeyPath<SandboxProcess, Int32>]
        {
            closeFD(&self[keyPath: keyPath])
        }
    }

    private func closeFD(_ fd: inout Int32) {
        if fd >= 0 { close(fd); fd = -1 }
    }
}
