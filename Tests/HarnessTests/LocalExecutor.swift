import ExecProtocol
import Foundation
import Glibc
import Harness

/// Test-only `RunExecutor`: runs the daemon's command line unsandboxed in a temporary directory standing
/// in for /tmp, with fd 3 wired to a pipe read into the observer, killing the process group when the
/// observer's `killDeadline` or the run's wall limit passes. No memory limit (that needs the sandbox).
struct LocalExecutor: RunExecutor {
    func execute(_ request: Execd_V1_RunRequest, sideChannel: (any SideChannelObserver)?) async throws
        -> Execd_V1_RunResult
    {
        try await withCheckedThrowingContinuation { cont in
            Thread.detachNewThread {
                cont.resume(with: Result { try LocalExecutor.run(request, sideChannel) })
            }
        }
    }

    private static func run(_ request: Execd_V1_RunRequest, _ observer: (any SideChannelObserver)?) throws
        -> Execd_V1_RunResult
    {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("harness-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for f in request.files {
            let url = dir.appendingPathComponent(f.path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try f.content.write(to: url)
        }
        let python = request.language == .python
        let main = dir.appendingPathComponent(python ? "main.py" : "main.js").path
        try request.code.write(to: URL(fileURLWithPath: main))
        let argv = (python ? ["/usr/bin/python3", "-I", "-B", main] : ["/usr/bin/node", main]) + request.args
        let env = ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=\(dir.path)"]

        let pin = try pipe(), pout = try pipe(), perr = try pipe(), pside = try pipe()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pin.0, 0)
        posix_spawn_file_actions_adddup2(&actions, pout.1, 1)
        posix_spawn_file_actions_adddup2(&actions, perr.1, 2)
        posix_spawn_file_actions_adddup2(&actions, pside.1, 3)
        // Nothing else of the test process: other suites' sockets (SwiftNIO's are not close-on-exec) would be
        // inherited, and forging submissions write to every fd they hold (py_two_sum/forge_fd.py).
        precondition(addCloseFrom(&actions, 4) == 0, "posix_spawn_file_actions_addclosefrom_np failed")
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attr, 0)
        var pid: pid_t = 0
        let cargv = argv.map { strdup($0) } + [nil]
        let cenv = env.map { strdup($0) } + [nil]
        defer { (cargv + cenv).forEach { free($0) } }
        let started = ContinuousClock.now
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, cargv, cenv)
        for fd in [pin.0, pout.1, perr.1, pside.1] { close(fd) }
        guard rc == 0 else { throw JudgeError.internalError("posix_spawn failed: \(rc)") }
        let child = pid

        let outputCap = request.limits.outputBytes > 0 ? Int(request.limits.outputBytes) : 64 << 20
        let state = RunState()
        let group = DispatchGroup()
        let stdinData = request.stdin
        let inFD = pin.1
        DispatchQueue.global().async(group: group) {
            signal(SIGPIPE, SIG_IGN)
            stdinData.withUnsafeBytes { buf in
                var off = 0
                while off < buf.count {
                    let n = write(inFD, buf.baseAddress! + off, buf.count - off)
                    if n <= 0 { break }
                    off += n
                }
            }
            close(inFD)
        }
        for (fd, isOut) in [(pout.0, true), (perr.0, false)] {
            DispatchQueue.global().async(group: group) {
                drain(fd) { chunk in
                    if state.append(chunk, toStdout: isOut, cap: outputCap) { kill(-child, SIGKILL) }
                }
            }
        }
        let sideFD = pside.0
        DispatchQueue.global().async(group: group) { drain(sideFD) { observer?.consume($0) } }

        let wall = request.limits.wallTimeMs > 0 ? Duration.milliseconds(Int64(request.limits.wallTimeMs)) : .seconds(60)
        var status: Int32 = 0
        var killedForTime = false
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            let now = ContinuousClock.now
            if !killedForTime, now - started > wall || (observer?.killDeadline.map { now >= $0 } ?? false) {
                killedForTime = true
                kill(-pid, SIGKILL)
            }
            usleep(2000)
        }
        kill(-pid, SIGKILL)  // stray children holding the pipes
        group.wait()
        var result = Execd_V1_RunResult()
        result.wallTimeUs = UInt64((ContinuousClock.now - started).components.seconds * 1_000_000)
        result.stdout = Data(state.stdout)
        result.stderr = Data(state.stderr)
        let signaled = status & 0x7f != 0
        if killedForTime {
            result.status = .timeLimit
            result.timeLimitKind = .wall
        } else if state.overflowed {
            result.status = .outputLimit
        } else if signaled {
            result.status = .signaled
            result.signal = status & 0x7f
        } else {
            result.exitCode = (status >> 8) & 0xff
            result.status = result.exitCode == 0 ? .ok : .runtimeError
        }
        return result
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module does not export
    /// (it is declared for `_GNU_SOURCE` only).
    private static let addCloseFrom: AddCloseFrom = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") else {
            fatalError("posix_spawn_file_actions_addclosefrom_np is missing: LocalExecutor needs glibc 2.34 or later")
        }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    private static func pipe() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else { throw JudgeError.internalError("pipe failed") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    private static func drain(_ fd: Int32, _ sink: ([UInt8]) -> Void) {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            sink(Array(buf[0..<n]))
        }
        close(fd)
    }
}

private final class RunState: @unchecked Sendable {
    private let lock = NSLock()
    var stdout: [UInt8] = []
    var stderr: [UInt8] = []
    var overflowed = false

    /// Appends output; returns true when the cap was just exceeded.
    func append(_ chunk: [UInt8], toStdout: Bool, cap: Int) -> Bool {
        lock.withLock {
            if toStdout { stdout += chunk } else { stderr += chunk }
            if !overflowed, stdout.count > cap || stderr.count > cap {
                overflowed = true
                return true
            }
            return false
        }
    }
}
