import Glibc
import Testing

@testable import SandboxOS

/// Real-kernel tests of the spawn path: needs root, user namespaces, python3 and node (CI has all of them).
@Suite(.serialized)
struct SpawnTests {
    static let seccomp = try! SeccompPolicy.standard.compile()

    static func spec(_ argv: [String], files: [SandboxFile] = [], side: Bool = false) -> SandboxSpec {
        let root = "/tmp/execd-test-root"
        mkdir(root, 0o755)
        return SandboxSpec(
            rootDirectory: root, mounts: MountPlan.host(), files: files, tmpfsBytes: 8 << 20, tmpfsInodes: 512,
            executable: argv[0], arguments: argv, environment: ["PATH=/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8"],
            rlimits: [ResourceLimit(RLIMIT_CORE, 0), ResourceLimit(RLIMIT_NOFILE, 256)],
            seccomp: seccomp, hostID: 65_000 + 7, sideChannel: side)
    }

    struct Outcome {
        var stdout = [UInt8](), stderr = [UInt8](), reports = [[Int32]]()
        var exit: ReaperExit?
        var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// Drains the sandbox's pipes until EOF and reaps it (blocking; test-only).
    static func collect(_ p: SandboxProcess, stdin: [UInt8] = []) -> Outcome {
        var out = Outcome()
        if !stdin.isEmpty { _ = stdin.withUnsafeBytes { write(p.stdinFD, $0.baseAddress, $0.count) } }
        p.closeStdin()
        var open: [Int32] = [p.stdoutFD, p.stderrFD, p.reportFD]
        var reportBytes = [UInt8]()
        while !open.isEmpty {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), 10_000)
            for f in fds where f.revents != 0 {
                var buf = [UInt8](repeating: 0, count: 65536)
                let n = read(f.fd, &buf, buf.count)
                if n > 0 {
                    let chunk = buf[0..<n]
                    if f.fd == p.stdoutFD { out.stdout += chunk } else if f.fd == p.stderrFD { out.stderr += chunk } else { reportBytes += chunk }
                } else if n == 0 || (n < 0 && errno != EAGAIN) {
                    open.removeAll { $0 == f.fd }
                }
            }
        }
        out.exit = p.reap()
        reportBytes.withUnsafeBytes { raw in
            let ints = raw.bindMemory(to: Int32.self)
            for i in stride(from: 0, to: ints.count - 3, by: 4) { out.reports.append(Array(ints[i..<i + 4])) }
        }
        p.closeAll()
        return out
    }

    @Test func pythonHelloWorld() throws {
        let p = try SandboxSpawner.spawn(Self.spec(["/usr/bin/python3", "-I", "-c", "print('hello')"]))
        let out = Self.collect(p)
        #expect(out.text == "hello\n", "stderr: \(String(decoding: out.stderr, as: UTF8.self)) reports: \(out.reports)")
        #expect(out.reports.first == [2, 0, 0, 0])
        #expect(out.exit == .exited(0))
    }
}
