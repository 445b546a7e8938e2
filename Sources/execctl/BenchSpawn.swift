import Foundation
import Glibc

/// Spawns one command with `posix_spawn` and reaps it with `waitpid`, blocking the calling thread; for the bwrap
/// baseline. (Not Foundation.Process: it is slow and has threading problems on Linux.)
///
/// argv and envp are built once and shared read-only by every spawn.
final class BenchSpawn: @unchecked Sendable {
    /// How a child ended.
    struct Exit: Sendable {
        var exitCode: Int32?
        var signal: Int32?
    }

    /// Why a child could not be spawned or reaped.
    struct Failure: Error, CustomStringConvertible {
        var call: String
        var errno: Int32
        var description: String { "\(call): \(String(cString: strerror(errno)))" }
    }

    private let path: String
    private let argv: [UnsafeMutablePointer<CChar>?]
    private let envp: [UnsafeMutablePointer<CChar>?]

    init(arguments: [String], environment: [String]) {
        precondition(!arguments.isEmpty, "BenchSpawn needs at least argv[0]")
        path = arguments[0]
        argv = arguments.map { strdup($0) } + [nil]
        envp = environment.map { strdup($0) } + [nil]
    }

    deinit {
        for pointer in argv + envp { free(pointer) }
    }

    /// Spawns and waits. stdin and stdout are /dev/null; stderr too unless `inheritStderr`.
    func run(inheritStderr: Bool = false) throws(Failure) -> Exit {
        let pid = try spawn(inheritStderr: inheritStderr)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw Failure(call: "waitpid", errno: errno) }
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift cannot import.
        let termSignal = status & 0x7f
        if termSignal == 0 { return Exit(exitCode: (status >> 8) & 0xff, signal: nil) }
        return Exit(exitCode: nil, signal: termSignal)
    }

    private func spawn(inheritStderr: Bool) throws(Failure) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        if !inheritStderr { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }

        // A clean signal state whatever thread spawns: nothing blocked, SIGPIPE back to its default.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var signals = sigset_t()
        sigemptyset(&signals)
        posix_spawnattr_setsigmask(&attributes, &signals)
        sigaddset(&signals, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &signals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var pid: pid_t = 0
        let result = argv.withUnsafeBufferPointer { argv in
            envp.withUnsafeBufferPointer { envp in
                posix_spawn(&pid, path, &actions, &attributes, argv.baseAddress!, envp.baseAddress!)
            }
        }
        guard result == 0 else { throw Failure(call: "posix_spawn \(path)", errno: result) }
        return pid
    }
}
