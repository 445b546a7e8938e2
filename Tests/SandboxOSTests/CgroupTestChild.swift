import Glibc

@testable import SandboxOS

/// A child process started with posix_spawn that blocks reading stdin until `release()`, so the
/// test can put it into a cgroup before it does anything (as the run engine does).
final class CgroupTestChild {
    let pid: pid_t
    private var gate: Int32
    private var reaped = false

    init(_ argv: [String]) throws {
        var fds: [Int32] = [0, 0]
        // Glibc hides pipe2 behind _GNU_SOURCE; the tiny window before FD_CLOEXEC is harmless here.
        if pipe(&fds) != 0 { throw CgroupError.system(operation: "pipe", path: "", errno: errno) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        var env: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/bin:/bin"), nil]
        defer { for entry in env { free(entry) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, argv[0], &actions, nil, &cArgs, &env)
        close(fds[0])
        if rc != 0 {
            close(fds[1])
            throw CgroupError.system(operation: "posix_spawn", path: argv[0], errno: rc)
        }
        pid = child
        gate = fds[1]
    }

    /// Lets the child past its `read`.
    func release() {
        _ = write(gate, "\n", 1)
        close(gate)
        gate = -1
    }

    /// Waits for the child; returns the signal that killed it, or nil if it exited.
    func wait() -> Int32? {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        reaped = true
        let termsig = status & 0x7f
        return termsig != 0 && termsig != 0x7f ? termsig : nil
    }

    /// Kills and reaps the child if the test did not (cleanup on failure paths).
    func cleanUp() {
        if gate >= 0 {
            close(gate)
            gate = -1
        }
        if !reaped {
            kill(pid, SIGKILL)
            _ = wait()
        }
    }

    deinit { cleanUp() }
}
