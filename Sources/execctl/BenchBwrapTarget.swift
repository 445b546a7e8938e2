import ExecProtocol
import Foundation

/// The cold-start baseline: the same program in a fresh bubblewrap sandbox per run, set up like execd's (every
/// namespace unshared, read-only /usr and /etc, the /bin, /lib* and /sbin symlinks, fresh /proc, minimal /dev,
/// tmpfs /tmp, execd's environment and interpreter flags). It has no cgroup, seccomp filter or limits, so it does
/// a little less work per run than execd.
struct BenchBwrapTarget: BenchTarget {
    static let bwrapPath = "/usr/bin/bwrap"

    private let spawner: BenchSpawn

    init(language: Execd_V1_Language, code: String) {
        spawner = BenchSpawn(
            arguments: Self.arguments(language: language, code: code),
            environment: ["PATH=/usr/bin:/bin"]
        )
    }

    /// bwrap's whole argv. The environment inside is execd's (`LanguageProfile.baseEnvironment`); nothing is
    /// inherited, in particular not NODE_EXTRA_CA_CERTS (it costs node about 40 ms).
    static func arguments(language: Execd_V1_Language, code: String) -> [String] {
        let sandbox = [
            bwrapPath, "--unshare-all", "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--chdir", "/tmp", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp",
            "--setenv", "LANG", "C.UTF-8", "--setenv", "LC_ALL", "C.UTF-8",
        ]
        let program =
            language == .javascript
            ? ["/usr/bin/node", "-e", code]
            : ["/usr/bin/python3", "-I", "-B", "-c", code]
        return sandbox + program
    }

    /// Runs once with bwrap's stderr shown, so that a baseline that cannot work here says why before it is timed.
    func check() -> String? {
        do {
            let exit = try spawner.run(inheritStderr: true)
            if let signal = exit.signal { return "\(Self.bwrapPath) was killed by signal \(signal)" }
            if exit.exitCode != 0 { return "\(Self.bwrapPath) exited with \(exit.exitCode ?? -1) (see above)" }
            return nil
        } catch {
            return error.description
        }
    }

    func runOnce(worker: Int) async -> BenchSample {
        // waitpid blocks its thread, so each run gets a thread of its own, off Swift's small cooperative pool.
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { [spawner] in
                continuation.resume(returning: Self.sample(spawner))
            }
        }
    }

    private static func sample(_ spawner: BenchSpawn) -> BenchSample {
        do {
            let exit = try spawner.run()
            if let signal = exit.signal { return .error("signaled_\(signal)") }
            if exit.exitCode != 0 { return .error("exit_\(exit.exitCode ?? -1)") }
            // No CPU time: bwrap's pid-namespace init reaps the program, not bwrap, so the rusage of bwrap's
            // children misses nearly all of it (`time bwrap ... python3 -c ...` shows ~2 ms user).
            return .ok()
        } catch {
            return .error("spawn_failed")
        }
    }
}
