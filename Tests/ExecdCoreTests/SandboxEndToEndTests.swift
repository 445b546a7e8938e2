import ExecProtocol
import Foundation
import Testing

/// End to end through the socket: a real daemon, real sandboxes, real python3 and node. Every limit here is the
/// kernel's; no assertion depends on timing tighter than the limits themselves.
/// Every test that uses a real daemon, serialized as a whole: leftover checks look at all sandboxes of the daemon.
@Suite(.serialized)
enum EndToEnd {}

extension EndToEnd {
@Suite(.serialized)
struct SandboxEndToEndTests {
    func daemon() async throws -> TestDaemon { try await TestDaemon.shared.value }

    @Test func pythonHelloWorld() async throws {
        let r = try await daemon().run(.python, "print('hello, world')")
        #expect(r.status == .ok, "\(r.err) \(r.internalError)")
        #expect(r.out == "hello, world\n")
        #expect(r.exitCode == 0)
        #expect(r.wallTimeUs > 0 && r.cpuTimeUs > 0 && r.memoryPeakBytes > 0)
    }

    @Test func javascriptHelloWorld() async throws {
        let r = try await daemon().run(.javascript, "console.log('hello, world')")
        #expect(r.status == .ok, "\(r.err) \(r.internalError)")
        #expect(r.out == "hello, world\n")
    }

    @Test func stdinPassthrough() async throws {
        let input = (1...2000).map(String.init).joined(separator: "\n") + "\n"  // larger than nothing, smaller than a pipe
        let py = try await daemon().run(.python, "import sys\nprint(sum(int(x) for x in sys.stdin))", stdin: input)
        #expect(py.out == "2001000\n", "\(py.err)")
        let js = try await daemon().run(.javascript, "const s=require('fs').readFileSync(0,'utf8');console.log(s.trim().split('\\n').map(Number).reduce((a,b)=>a+b))", stdin: input)
        #expect(js.out == "2001000\n", "\(js.err)")
    }

    @Test func largeStdinDoesNotDeadlock() async throws {
        let input = String(repeating: "x", count: 3 << 20)  // far more than a pipe buffer
        let r = try await daemon().run(.python, "import sys\nprint(len(sys.stdin.read()))", stdin: input)
        #expect(r.out == "\(3 << 20)\n", "\(r.err)")
    }

    @Test func nonZeroExit() async throws {
        let py = try await daemon().run(.python, "import sys\nprint('partial')\nsys.exit(3)")
        #expect(py.status == .runtimeError && py.exitCode == 3 && py.out == "partial\n")
        let exc = try await daemon().run(.python, "raise ValueError('boom')")
        #expect(exc.status == .runtimeError && exc.exitCode == 1 && exc.err.contains("ValueError: boom"))
        let js = try await daemon().run(.javascript, "process.exit(7)")
        #expect(js.status == .runtimeError && js.exitCode == 7)
    }

    @Test func signal() async throws {
        let py = try await daemon().run(.python, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
        #expect(py.status == .signaled && py.signal == 11)
        let js = try await daemon().run(.javascript, "process.kill(process.pid, 'SIGTERM')")
        #expect(js.status == .signaled && js.signal == 15)
    }

    @Test func cpuLoopHitsTheCPULimit() async throws {
        for (language, code) in [(Execd_V1_Language.python, "while True: pass"), (.javascript, "for(;;){}")] {
            let r = try await daemon().run(language, code) { $0.cpuTimeMs = 500 }
            #expect(r.status == .timeLimit && r.timeLimitKind == .cpu, "\(language): \(r.status) \(r.err)")
            #expect(r.cpuTimeUs >= 500_000)
        }
    }

    @Test func sleepHitsTheWallLimit() async throws {
        let r = try await daemon().run(.python, "import time\ntime.sleep(60)") { $0.cpuTimeMs = 500 }
        #expect(r.status == .timeLimit && r.timeLimitKind == .wall)
        #expect(r.wallTimeUs >= 2_000_000 && r.wallTimeUs < 10_000_000)  // 2 × CPU + 1 s, not 60 s
        let js = try await daemon().run(.javascript, "setTimeout(()=>{}, 60000)") { $0.wallTimeMs = 1000 }
        #expect(js.status == .timeLimit && js.timeLimitKind == .wall)
    }

    @Test func memoryHogHitsTheMemoryLimit() async throws {
        let py = try await daemon().run(.python, "a=[]\nwhile True: a.append(bytearray(10**7))") { $0.memoryBytes = 64 << 20 }
        #expect(py.status == .memoryLimit, "\(py.status) \(py.err)")
        let js = try await daemon().run(.javascript, "const a=[];for(;;){a.push(Buffer.alloc(1e7,1))}") { $0.memoryBytes = 96 << 20 }
        #expect(js.status == .memoryLimit, "\(js.status) \(js.err)")
    }

    @Test func forkBombIsContained() async throws {
        let d = try await daemon()
        let bomb = "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass"
        let r = try await d.run(.python, bomb) { $0.cpuTimeMs = 1000; $0.maxProcesses = 16 }
        #expect(r.status == .timeLimit, "\(r.status)")
        let after = try await d.run(.python, "print('still fine')")
        #expect(after.status == .ok && after.out == "still fine\n")
        #expect(d.leftoverProcesses().isEmpty)
    }

    @Test func outputFloodHitsTheOutputLimitFast() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let r = try await daemon().run(.python, "while True: print('x' * 1000)") { $0.outputBytes = 64 << 10; $0.cpuTimeMs = 10_000 }
        #expect(r.status == .outputLimit && r.stdoutTruncated)
        #expect(r.stdout.count == 64 << 10)
        #expect(clock.now - start < .seconds(5))  // far below the 10 s CPU limit
        let err = try await daemon().run(.javascript, "for(;;) process.stderr.write('y'.repeat(1000))") { $0.outputBytes = 64 << 10 }
        #expect(err.status == .outputLimit && err.stderrTruncated)
    }

    /// Output is read in batches (`RunMonitor.outputQuiet`): more than a pipe holds, on both streams at once, still
    /// arrives whole and in order, and quickly (a program waits at most 10 ms for a full pipe to be drained).
    @Test func outputLargerThanItsPipesArrivesWhole() async throws {
        let code = """
        import sys
        for i in range(3000):
            sys.stdout.write('%07d' % i + 'o' * 993)
            sys.stderr.write('%07d' % i + 'e' * 993)
        """
        let clock = ContinuousClock()
        let start = clock.now
        let r = try await daemon().run(.python, code) { $0.outputBytes = 4 << 20 }
        #expect(r.status == .ok, "\(r.status)")
        #expect(r.stdout.count == 3_000_000 && r.stderr.count == 3_000_000)
        #expect(!r.stdoutTruncated && !r.stderrTruncated)
        let expected = (0..<3000).map { String(format: "%07d", $0) + String(repeating: "o", count: 993) }.joined()
        #expect(String(decoding: r.stdout, as: UTF8.self) == expected)
        #expect(clock.now - start < .seconds(3))
    }

    @Test func writesOutsideTmpFail() async throws {
        let code = """
            import os
            for p in ["/etc/passwd", "/usr/x", "/x", "/dev/x", "/proc/x", "/bin/x"]:
                try:
                    open(p, "a").write("x"); print("WROTE", p)
                except OSError as e:
                    print("denied", p)
            open("/tmp/ok", "w").write("fine"); print(open("/tmp/ok").read())
            """
        let r = try await daemon().run(.python, code)
        #expect(!r.out.contains("WROTE"), "\(r.out)")
        #expect(r.out.hasSuffix("fine\n"))
    }

    @Test func networkSocketsFail() async throws {
        let py = try await daemon().run(.python, """
            import socket
            for family in (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK, socket.AF_PACKET):
                try:
                    socket.socket(family, socket.SOCK_DGRAM if family == socket.AF_NETLINK else socket.SOCK_STREAM); print("OPEN", family)
                except OSError as e:
                    print("denied", e.errno)
            a, b = socket.socketpair(); a.send(b"unix ok"); print(b.recv(10).decode())
            """)
        #expect(!py.out.contains("OPEN"), "\(py.out)")
        #expect(py.out.contains("unix ok"))
        let js = try await daemon().run(.javascript, "require('net').connect(80,'127.0.0.1').on('error',e=>console.log('error',e.code)).on('connect',()=>console.log('CONNECTED'))")
        #expect(js.out.hasPrefix("error") && !js.out.contains("CONNECTED"), "\(js.out) \(js.err)")
    }

    @Test func capabilitiesAreZeroAndSeccompIsOn() async throws {
        let r = try await daemon().run(.python, "print(open('/proc/self/status').read())")
        let fields = Dictionary(r.out.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: ":", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces)) : nil
        }, uniquingKeysWith: { a, _ in a })
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] { #expect(fields[cap] == "0000000000000000", "\(cap)") }
        #expect(fields["NoNewPrivs"] == "1")
        #expect(fields["Seccomp"] == "2")
        let denied = try await daemon().run(.python, """
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            for name, call in [("unshare", lambda: libc.unshare(0x10000000)), ("ptrace", lambda: libc.ptrace(16, 1, 0, 0)),
                               ("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)), ("chroot", lambda: libc.chroot(b"/tmp"))]:
                print(name, call(), ctypes.get_errno())
            """)
        for line in denied.out.split(separator: "\n") { #expect(line.hasSuffix("-1 1"), "\(line)") }  // -1, EPERM
        #expect(denied.out.split(separator: "\n").count == 4, "\(denied.out)\(denied.err)")
    }

    @Test func hostFilesOutsideTheBindsAreInvisible() async throws {
        let r = try await daemon().run(.python, """
            import os
            print(sorted(os.listdir("/")))
            for p in ["/root", "/home", "/var", "/work", "/run", "/sys", "/opt", "/srv", "/mnt", "/boot"]:
                print(p, os.path.exists(p))
            print(sorted(os.listdir("/dev")))
            print(sorted(p for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())))
            """)
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.first == "['bin', 'dev', 'etc', 'lib', 'lib64', 'proc', 'sbin', 'tmp', 'usr']", "\(r.out)")
        #expect(lines.filter { $0.hasSuffix(" True") }.isEmpty, "\(r.out)")
        #expect(lines.contains("['fd', 'null', 'random', 'stderr', 'stdin', 'stdout', 'urandom', 'zero']"))
        // Besides itself: the sandbox's reaper and the program (one-shot) or the slot's reaper and zygote (warm).
        #expect(lines.last == "['1', '2']")
    }

    @Test func theDaemonsCommandLineIsNotVisible() async throws {
        // pid 1 of every sandbox is a fork of the daemon: its inherited argv must not be readable.
        let py = try await daemon().run(.python, "print(open('/proc/1/cmdline','rb').read().strip(b'\\0'), open('/proc/1/comm').read().strip())")
        #expect(py.out == "b'' execd-init\n", "\(py.out)\(py.err)")
        let js = try await daemon().run(.javascript, "const fs=require('fs');console.log(JSON.stringify(fs.readFileSync('/proc/1/cmdline','latin1').replace(/\\0/g,'')))")
        #expect(js.out == "\"\"\n", "\(js.out)\(js.err)")
    }

    @Test func consecutiveRunsCannotSeeEachOther() async throws {
        let d = try await daemon()
        let first = try await d.run(.python, """
            import os, subprocess
            open("/tmp/secret", "w").write("run one was here")
            subprocess.Popen(["/usr/bin/sleep", "30"], start_new_session=True)
            print(os.getpid())
            """)
        #expect(first.status == .ok, "\(first.err)")
        let second = try await d.run(.python, """
            import os
            print(os.path.exists("/tmp/secret"), sorted(os.listdir("/tmp")))
            print(sorted(p for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())))
            """)
        #expect(second.out == "False ['main.py']\n['1', '2']\n", "\(second.out)")
        #expect(d.leftoverProcesses().isEmpty, "\(d.leftoverProcesses())")
    }

    @Test func noLeftoversAfterARunOfEveryKind() async throws {
        let d = try await daemon()
        _ = try await d.run(.python, "import os\nfor _ in range(5):\n    if os.fork() == 0:\n        import time; time.sleep(100)\nprint('bye')")
        _ = try await d.run(.javascript, "require('child_process').spawn('/usr/bin/sleep',['100'],{detached:true}); setTimeout(()=>{},100000)") { $0.wallTimeMs = 500 }
        #expect(d.leftoverProcesses().isEmpty, "\(d.leftoverProcesses())")
        #expect(d.leftoverCgroups().isEmpty, "\(d.leftoverCgroups())")
    }

    @Test func badRequestsGetClearErrors() async throws {
        let client = try await daemon().client()
        defer { Task { await client.close() } }
        var request = Execd_V1_RunRequest()
        request.language = .python
        request.limits.memoryBytes = 1 << 40
        await #expect { try await client.run(request) } throws: { error in
            guard case ExecClientError.server(let code, let message) = error else { return false }
            return code == .badRequest && message.contains("memory_bytes")
        }
        var noLanguage = Execd_V1_RunRequest()
        noLanguage.code = Data("print(1)".utf8)
        await #expect { try await client.run(noLanguage) } throws: { error in
            guard case ExecClientError.server(let code, _) = error else { return false }
            return code == .unsupportedLanguage
        }
        var traversal = Execd_V1_RunRequest()
        traversal.language = .python
        var file = Execd_V1_File()
        file.path = "../etc/passwd"
        traversal.files = [file]
        await #expect { try await client.run(traversal) } throws: { error in
            guard case ExecClientError.server(let code, _) = error else { return false }
            return code == .badRequest
        }
    }
}
}
