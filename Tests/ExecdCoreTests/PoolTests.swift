import ExecProtocol
import Foundation
import Glibc
import SandboxOS
import Testing

extension EndToEnd {
    /// The warm pools, with a daemon of their own so sizes and slots can be steered.
    @Suite(.serialized)
    struct PoolTests {
        static let daemon = Task { try await TestDaemon(tag: "pool", hostIDBase: 960_000, maxConcurrentRuns: 4, queueLimit: 64) }

        func daemon() async throws -> TestDaemon { try await Self.daemon.value }

        func status(_ d: TestDaemon) async throws -> Execd_V1_StatusReply {
            let client = try await d.client()
            defer { Task { await client.close() } }
            guard case .status(let status) = try await client.send(.status(Execd_V1_StatusRequest())).body else {
                throw ExecdTestError("no status reply")
            }
            return status
        }

        func admin(_ d: TestDaemon, _ action: Execd_V1_AdminRequest.OneOf_Action) async throws {
            let client = try await d.client()
            defer { Task { await client.close() } }
            _ = try await client.send(.admin(Execd_V1_AdminRequest.with { $0.action = action }))
        }

        func pool(_ s: Execd_V1_StatusReply, _ language: Execd_V1_Language) throws -> Execd_V1_PoolStatus {
            guard let pool = s.pools.first(where: { $0.language == language }) else { throw ExecdTestError("no \(language) pool") }
            return pool
        }

        /// Waits (bounded) until the pool has `target` idle slots.
        func waitForFullPool(_ d: TestDaemon, _ language: Execd_V1_Language, target: UInt32? = nil) async throws -> Execd_V1_PoolStatus {
            for _ in 0..<400 {
                let p = try pool(try await status(d), language)
                if p.idle == (target ?? p.target) && p.busy == 0 && p.starting == 0 { return p }
                try await Task.sleep(for: .milliseconds(25))
            }
            return try pool(try await status(d), language)
        }

        @Test func runsUseWarmSlotsNotFreshSandboxes() async throws {
            let d = try await daemon()
            _ = try await waitForFullPool(d, .python)
            _ = try await waitForFullPool(d, .javascript)
            let before = try await status(d).oneShotRuns
            let py = try await d.run(.python, "print('warm')")
            let js = try await d.run(.javascript, "console.log(require('fs').readdirSync('/tmp'))")
            #expect(py.out == "warm\n" && js.out == "[ 'main.js' ]\n", "\(py.err)\(js.err)")
            #expect(try await status(d).oneShotRuns == before, "both runs must have used a warm slot")
        }

        /// A zygote's child gets its request as numbers and bytes (zygote.py's `parse`): arguments and files of any
        /// content arrive intact, as for a one-shot run.
        @Test func argumentsAndFilesArriveIntactOnAWarmSlot() async throws {
            let d = try await daemon()
            _ = try await waitForFullPool(d, .python)
            let before = try await status(d).oneShotRuns
            var request = Execd_V1_RunRequest()
            request.language = .python
            request.code = Data("import sys, os\nprint(repr(sys.argv[1:]))\nprint(repr(open('/tmp/d/e f.txt', 'rb').read()))\nprint(oct(os.stat('/tmp/run.sh').st_mode & 0o777))".utf8)
            request.args = ["a b", "", "line\nbreak", "é ✓", "1 2 3"]
            request.files = [
                Execd_V1_File.with { $0.path = "d/e f.txt"; $0.content = Data([0, 10, 32, 255, 49]) },
                Execd_V1_File.with { $0.path = "run.sh"; $0.content = Data("#!/bin/sh\n".utf8); $0.executable = true },
            ]
            let client = try await d.client()
            defer { Task { await client.close() } }
            let r = try await client.run(request)
            #expect(r.status == .ok, "\(r.err)")
            #expect(r.out == "['a b', '', 'line\\nbreak', 'é ✓', '1 2 3']\nb'\\x00\\n \\xff1'\n0o755\n")
            #expect(try await status(d).oneShotRuns == before, "the run must have used a warm slot")
        }

        /// The same in a one-shot sandbox (another /tmp size): the parent lists the directories above each file, the
        /// child creates them in order.
        @Test func argumentsAndFilesArriveIntactInAOneShotSandbox() async throws {
            let d = try await daemon()
            let before = try await status(d).oneShotRuns
            var request = Execd_V1_RunRequest()
            request.language = .python
            request.code = Data("import sys, os\nprint(repr(sys.argv[1:]))\nprint(repr(open('/tmp/d/e/f g.txt', 'rb').read()))\nprint(oct(os.stat('/tmp/d/run.sh').st_mode & 0o777), oct(os.stat('/tmp/d/e').st_mode & 0o777))".utf8)
            request.args = ["a b", "", "é ✓"]
            request.files = [
                Execd_V1_File.with { $0.path = "d/e/f g.txt"; $0.content = Data([0, 10, 32, 255, 49]) },
                Execd_V1_File.with { $0.path = "d/run.sh"; $0.content = Data("#!/bin/sh\n".utf8); $0.executable = true },
            ]
            request.limits.tmpfsBytes = 8 << 20
            let client = try await d.client()
            defer { Task { await client.close() } }
            let r = try await client.run(request)
            #expect(r.status == .ok, "\(r.err)")
            #expect(r.out == "['a b', '', 'é ✓']\nb'\\x00\\n \\xff1'\n0o755 0o755\n", "\(r.out)")
            #expect(try await status(d).oneShotRuns == before + 1)
        }

        /// A zygote's children get the slot's /tmp size; a run that asks for another one runs one-shot and gets it.
        @Test func anotherTmpfsSizeRunsOneShotWithThatSize() async throws {
            let d = try await daemon()
            _ = try await waitForFullPool(d, .python)
            let before = try await status(d).oneShotRuns
            let r = try await d.run(.python, "import os\ns = os.statvfs('/tmp')\nprint(s.f_blocks * s.f_frsize)") {
                $0.tmpfsBytes = 8 << 20
            }
            #expect(r.status == .ok && r.out == "\(8 << 20)\n", "\(r.out)\(r.err)")
            #expect(try await status(d).oneShotRuns == before + 1)
        }

        @Test func poolRefillsAfterEveryKindOfVerdict() async throws {
            let d = try await daemon()
            let programs: [(String, Execd_V1_Status, (inout Execd_V1_Limits) -> Void)] = [
                ("print(1)", .ok, { _ in }),
                ("raise SystemExit(4)", .runtimeError, { _ in }),
                ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", .signaled, { _ in }),
                ("while True: pass", .timeLimit, { $0.cpuTimeMs = 300 }),
                ("import time\ntime.sleep(30)", .timeLimit, { $0.wallTimeMs = 300 }),
                ("a = []\nwhile True: a.append(bytearray(10**7))", .memoryLimit, { $0.memoryBytes = 64 << 20 }),
                ("while True: print('x' * 999)", .outputLimit, { $0.outputBytes = 4096 }),
                ("import os\nos._exit(0)", .ok, { _ in }),
            ]
            for (code, expected, limits) in programs {
                let r = try await d.run(.python, code, limits: limits)
                #expect(r.status == expected, "\(code): \(r.status) \(r.err) \(r.internalError)")
                let p = try await waitForFullPool(d, .python)
                #expect(p.idle == p.target, "after \(expected): \(p)")
            }
            let js = try await d.run(.javascript, "for(;;){}") { $0.cpuTimeMs = 300 }
            #expect(js.status == .timeLimit)
            let jsPool = try await waitForFullPool(d, .javascript)
            #expect(jsPool.idle == jsPool.target)
            #expect(try await status(d).pools.allSatisfy { $0.failedStarts == 0 })
        }

        @Test func hostileRunLeavesTheNextRunOnTheSameSlotPristine() async throws {
            let d = try await daemon()
            try await admin(d, .resize(Execd_V1_Resize.with { $0.language = .python; $0.target = 1 }))
            let slot = try await waitForFullPool(d, .python, target: 1).slots.first?.id
            let hostile = """
                import builtins, os, sys, signal, random, subprocess
                builtins.print = lambda *a, **k: None
                builtins.len = lambda x: 42
                sys.modules["json"] = None
                random.seed(1234)
                open("/tmp/leftover", "w").write("x")
                subprocess.Popen(["/usr/bin/sleep", "60"], start_new_session=True)
                if os.fork() == 0:
                    import time; time.sleep(60)
                for attempt in (lambda: os.kill(os.getppid(), signal.SIGKILL), lambda: os.kill(1, signal.SIGKILL),
                                lambda: open("/proc/%d/mem" % os.getppid(), "r+b").write(b"x")):
                    try:
                        attempt(); os.write(1, b"BREACH\\n")
                    except OSError:
                        pass
                os.write(1, str(random.random()).encode() + b"\\n")
                """
            let first = try await d.run(.python, hostile)
            #expect(first.status == .ok && !first.out.contains("BREACH"), "\(first.out)\(first.err)")
            _ = try await waitForFullPool(d, .python, target: 1)
            let probe = """
                import builtins, os, sys, json, random
                print(builtins.print.__module__ if hasattr(builtins.print, '__module__') else 'builtin', len([1, 2]))
                print(json.dumps([1]), sorted(os.listdir("/tmp")))
                print(sorted(p for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())))
                random.seed(1234)
                """
            let second = try await d.run(.python, probe)
            let lines = second.out.split(separator: "\n").map(String.init)
            #expect(lines.count == 3, "\(second.out)\(second.err)")
            #expect(lines.first == "builtins 2")
            #expect(lines.dropFirst().first == "[1] ['main.py']")
            #expect(lines.last == "['1', '2']")  // the slot's reaper and zygote: nothing of the first run survives
            let after = try await waitForFullPool(d, .python, target: 1)
            #expect(after.slots.first?.id == slot, "both runs on the same warm slot")
            #expect(after.slots.first?.runsServed ?? 0 >= 2)
            try await admin(d, .resize(Execd_V1_Resize.with { $0.language = .python; $0.target = 4 }))
        }

        /// Each run's child gets the zygote's pages that every run writes copied at fork (zygote.py's copy at fork)
        /// rather than one page fault at a time: every Python slot says how much, and a run has taken far fewer
        /// faults than the ≈ 300 a fork of the zygote takes without (≈ 90 with). The copies are counted as the
        /// run's memory. They stay the child's own: `hostileRunLeavesTheNextRunOnTheSameSlotPristine` rewrites the
        /// builtins, which live in those pages. The io_uring that pins them is the zygote's alone: a run can neither
        /// make one nor register buffers.
        @Test func runsGetTheirHotPagesCopiedAtFork() async throws {
            let d = try await daemon()
            let slots = try await waitForFullPool(d, .python).slots
            let ioUring = (try? String(contentsOfFile: "/proc/sys/kernel/io_uring_disabled", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "0" == "0"
            #expect(!slots.isEmpty)
            for slot in slots {
                #expect(ioUring ? slot.copiedAtForkBytes >= 256 << 10 : slot.copiedAtForkBytes == 0, "\(slot)")
            }
            let run = try await d.run(.python, """
                import ctypes, resource
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                libc = ctypes.CDLL(None, use_errno=True)
                print(faults < 200 or faults, libc.syscall(425, 1, ctypes.create_string_buffer(120)), ctypes.get_errno())
                print(libc.syscall(427, 0, 0, 0, 0), ctypes.get_errno())
                """)
            let words = run.out.split(whereSeparator: \.isWhitespace).map(String.init)
            #expect(run.status == .ok && words.count == 5, "\(run.out)\(run.err)")
            if ioUring { #expect(words.first == "True", "page faults before the program's first line: \(words.first ?? "")") }
            #expect(Array(words.dropFirst()) == ["-1", "1", "-1", "1"], "io_uring must be denied (EPERM): \(run.out)")
            let copied = slots.map(\.copiedAtForkBytes).min() ?? 0
            #expect(run.memoryPeakBytes >= copied, "peak \(run.memoryPeakBytes), copied \(copied)")
        }

        /// A slot's /tmp is remounted by the zygote between runs, once the previous run's cgroup is empty: a
        /// background process that keeps writing into /tmp after its run ended (on DONE, on exit, or killed at a
        /// limit) never reaches the next run's /tmp, on the same slot.
        @Test func aRunsLeftoversNeverReachTheNextRunsTmp() async throws {
            let d = try await daemon()
            try await admin(d, .resize(Execd_V1_Resize.with { $0.language = .python; $0.target = 1 }))
            let slot = try await waitForFullPool(d, .python, target: 1).slots.first?.id
            // Four writers that never pause: the window between the run's end and its cgroup's kill is theirs.
            let writer = """
                import os, time
                for w in range(4):
                    if os.fork() == 0:
                        os.setsid()
                        i = 0
                        while True:
                            i += 1
                            try:
                                open("/tmp/evil-%d-%d" % (w, i), "w").close()
                            except OSError:
                                pass
                time.sleep(0.05)
                """
            let endings: [(String, (inout Execd_V1_Limits) -> Void)] = [
                ("", { _ in }),  // DONE after the program
                ("os._exit(0)", { _ in }),  // EXIT only
                ("time.sleep(30)", { $0.wallTimeMs = 300 }),  // killed at the wall limit
            ]
            for (ending, limits) in endings {
                let first = try await d.run(.python, writer + "\n" + ending, limits: limits)
                #expect(first.status == .ok || first.status == .timeLimit, "\(first.status) \(first.err)")
                let probe = try await d.run(.python, """
                    import os, time
                    seen = set()
                    for _ in range(20):
                        seen.update(os.listdir("/tmp"))
                        time.sleep(0.005)
                    print(len(seen), sorted(seen)[:3])
                    """)
                #expect(probe.out == "1 ['main.py']\n", "after a run ending with \(ending.isEmpty ? "DONE" : ending): \(probe.out)\(probe.err)")
            }
            let after = try await waitForFullPool(d, .python, target: 1)
            #expect(after.slots.first?.id == slot, "every run on the same warm slot")
            try await admin(d, .resize(Execd_V1_Resize.with { $0.language = .python; $0.target = 4 }))
        }

        /// Each run's /tmp is a fresh tmpfs; finished ones are emptied and set aside under it, then detached in
        /// batches (an unmount per run was ≈ 9 % of the throughput). Over more runs than a batch, on one slot, with
        /// runs that leave files, directories and fifos: every run finds only its own files, nothing set aside is
        /// reachable, and the mounts stay bounded.
        @Test func everyRunGetsAFreshTmpAndSetAsideLayersStayBounded() async throws {
            let d = try await daemon()
            try await admin(d, .resize(Execd_V1_Resize.with { $0.language = .python; $0.target = 1 }))
            let slot = try await waitForFullPool(d, .python, target: 1).slots.first?.id
            for i in 0..<45 {
                let r = try await d.run(.python, """
                    import os
                    st = os.statvfs("/tmp")
                    layers = sum(1 for line in open("/proc/self/mountinfo") if line.split()[4].startswith("/tmp"))
                    print(sorted(os.listdir("/tmp")), oct(os.stat("/tmp").st_mode & 0o7777), st.f_files - st.f_ffree,
                          layers <= 40, any(os.path.exists("/tmp/%d" % n) for n in range(40)))
                    open("/tmp/data-\(i)", "wb").write(os.urandom(1 << 20))
                    if \(i) in (3, 44):  # between them, more clean runs than a batch holds
                        os.mkdir("/tmp/dir"); open("/tmp/dir/inner", "w").write("x"); os.mkfifo("/tmp/fifo")
                    """)
                #expect(r.status == .ok && r.out == "['main.py'] 0o1777 2 True False\n", "run \(i): \(r.out)\(r.err)")
            }
            let after = try await waitForFullPool(d, .python, target: 1)
            #expect(after.slots.first?.id == slot && after.slots.first?.runsServed ?? 0 >= 45, "all on the same warm slot")
            try await admin(d, .resize(Execd_V1_Resize.with { $0.language = .python; $0.target = 4 }))
        }

        /// A warm slot's zygote and runs stay on one CPU (the slots spread over the CPUs); a run allowed more than one
        /// core gets them all back.
        @Test func aSlotsRunsStayOnItsCPUUnlessTheyMayUseMore() async throws {
            let cpus = CPUAffinity.allowed()
            guard cpus.count > 1 else { return }  // one CPU: nothing to pin
            let d = try await daemon()
            _ = try await waitForFullPool(d, .python)
            let probe = "import os; print(sorted(os.sched_getaffinity(0)))"
            var seen = Set<String>()
            for _ in 0..<8 {
                let r = try await d.run(.python, probe)
                #expect(r.status == .ok && r.out.split(separator: ",").count == 1, "one CPU: \(r.out)\(r.err)")
                seen.insert(r.out)
            }
            let wide = try await d.run(.python, probe) { $0.cpuQuotaMillicores = 2000 }
            #expect(wide.out == "[\(cpus.map(String.init).joined(separator: ", "))]\n", "every CPU: \(wide.out)\(wide.err)")
            // The slots are spread: with every slot busy at once, both CPUs serve runs.
            let client = try await d.client()
            let outs = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<4 { group.addTask { try await client.run(Execd_V1_RunRequest.with {
                    $0.language = .python; $0.code = Data("import os, time; time.sleep(0.2); print(sorted(os.sched_getaffinity(0)))".utf8)
                }).out } }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            await client.close()
            #expect(outs.count > 1, "four runs at once, on the least loaded CPUs: \(outs)")
        }

        @Test func systemVIPCDoesNotOutliveARun() async throws {
            let d = try await daemon()
            try await admin(d, .resize(Execd_V1_Resize.with { $0.language = .python; $0.target = 1 }))
            _ = try await waitForFullPool(d, .python, target: 1)
            let writer = try await d.run(.python, """
                import ctypes
                libc = ctypes.CDLL(None, use_errno=True)
                libc.shmat.restype = ctypes.c_void_p
                shm = libc.shmget(0x5EC2E7, 4096, 0o1000 | 0o666)  # IPC_CREAT
                addr = libc.shmat(shm, None, 0)
                ctypes.memmove(addr, b"secret from run one", 19)
                print(shm >= 0, libc.semget(0x5EC2E8, 1, 0o1000 | 0o666) >= 0, libc.msgget(0x5EC2E9, 0o1000) >= 0,
                      libc.shmget(0x5EC2EA, 4096, 0o1000) >= 0)  # mode 0: only its owner may even look at it
                libc.mq_open.restype = ctypes.c_int
                print(libc.mq_open(b"/execd-test", 0o100 | 2, 0o600, None), ctypes.get_errno())  # O_CREAT | O_RDWR
                """)
            #expect(writer.out == "True True True True\n-1 1\n", "\(writer.out)\(writer.err)")
            let reader = try await d.run(.python, """
                import ctypes
                libc = ctypes.CDLL(None, use_errno=True)
                print(libc.shmget(0x5EC2E7, 0, 0), libc.semget(0x5EC2E8, 0, 0), libc.msgget(0x5EC2E9, 0),
                      libc.shmget(0x5EC2EA, 0, 0), ctypes.get_errno())
                print(open("/proc/sysvipc/shm").read().count("\\n"), open("/proc/sysvipc/sem").read().count("\\n"),
                      open("/proc/sysvipc/msg").read().count("\\n"))  # the header lines only
                """)
            #expect(reader.out == "-1 -1 -1 -1 2\n1 1 1\n", "the next run on the slot must not find them: \(reader.out)\(reader.err)")
            try await admin(d, .resize(Execd_V1_Resize.with { $0.language = .python; $0.target = 4 }))
        }

        /// The child's link to execd (where it says DONE before it exits) stays open under user code, at the top of
        /// the run's fds: what user code writes there can end its own run and nothing else. Junk and a forged setup
        /// failure are ignored; a DONE sent early ends the run at once, with whatever it had left running killed.
        @Test func userCodeOnTheLinkCanOnlyEndItsOwnRun() async throws {
            let d = try await daemon()
            try await admin(d, .resize(Execd_V1_Resize.with { $0.language = .python; $0.target = 1 }))
            let slot = try await waitForFullPool(d, .python, target: 1).slots.first?.id
            let junk = try await d.run(.python, """
                import os
                print(sorted(int(fd) for fd in os.listdir("/proc/self/fd"))[-1])
                for message in (b"ERR mount /tmp 1", b"EXIT 0", b"DONE x", b"\\0" * 100):
                    os.write(255, message)
                print("still running")
                raise SystemExit(3)
                """)
            #expect(junk.status == .runtimeError && junk.exitCode == 3, "\(junk.status) \(junk.err) \(junk.internalError)")
            #expect(junk.out == "255\nstill running\n", "the link sits at the top of the default 256 fds: \(junk.out)")
            let early = try await d.run(.python, """
                import os, subprocess, time
                subprocess.Popen(["/usr/bin/sleep", "60"])
                print("before", flush=True)
                os.write(255, b"DONE 0")
                time.sleep(10)
                print("after", flush=True)
                """)
            #expect(early.status == .ok && early.out == "before\n", "\(early.status) \(early.out)\(early.err)")
            #expect(early.wallTimeUs < 5_000_000, "DONE ends the run: \(early.wallTimeUs) µs")
            let probe = try await d.run(.python, """
                import os
                print(sorted(p for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())))
                """)
            #expect(probe.out == "['1', '2']\n", "nothing of the earlier runs survives: \(probe.out)\(probe.err)")
            // Another file put where the link was: the child's DONE does not go there, and the run ends on EXIT.
            let clobbered = try await d.run(.python, "import os\nos.dup2(1, 255)\nprint('clobbered')")
            #expect(clobbered.status == .ok && clobbered.out == "clobbered\n", "\(clobbered.out)\(clobbered.err)")
            // A limit of open files too small to spare one for the link: the run ends on the zygote's report instead.
            let few = try await d.run(.python, "import sys\nprint('few fds')\nsys.exit(5)") { $0.openFiles = 4 }
            #expect(few.status == .runtimeError && few.exitCode == 5 && few.out == "few fds\n", "\(few.err) \(few.internalError)")
            let after = try await waitForFullPool(d, .python, target: 1)
            #expect(after.slots.first?.id == slot, "none of this costs the slot")
            try await admin(d, .resize(Execd_V1_Resize.with { $0.language = .python; $0.target = 4 }))
        }

        @Test func aCrashedZygoteIsReplaced() async throws {
            let d = try await daemon()
            let before = try await waitForFullPool(d, .python)
            let victim = try #require(before.slots.first)
            // The zygote is the slot reaper's only child.
            let children = try String(contentsOfFile: "/proc/\(victim.pid)/task/\(victim.pid)/children", encoding: .utf8)
            let zygote = try #require(pid_t(children.split(separator: " ").first ?? ""))
            #expect(kill(zygote, SIGKILL) == 0)
            for _ in 0..<8 {
                let r = try await d.run(.python, "print('ok')")
                #expect(r.status == .ok && r.out == "ok\n", "\(r.status) \(r.internalError)")
            }
            var after = try await waitForFullPool(d, .python)
            for _ in 0..<200 where after.slots.contains(where: { $0.id == victim.id }) || after.idle < after.target {
                try await Task.sleep(for: .milliseconds(25))
                after = try pool(try await status(d), .python)
            }
            #expect(!after.slots.contains { $0.id == victim.id }, "the dead slot must be noticed and replaced")
            #expect(after.retired > before.retired && after.idle == after.target)
        }

        @Test func statusReflectsDrainResizeAndRecycle() async throws {
            let d = try await daemon()
            let start = try await waitForFullPool(d, .python)
            try await admin(d, .drain(Execd_V1_PoolTarget.with { $0.language = .python }))
            let drained = try await waitForFullPool(d, .python, target: 0)
            #expect(drained.draining && drained.idle == 0)
            let oneShotBefore = try await status(d).oneShotRuns
            let r = try await d.run(.python, "print('one-shot')")
            #expect(r.out == "one-shot\n")
            #expect(try await status(d).oneShotRuns == oneShotBefore + 1)
            try await admin(d, .resume(Execd_V1_PoolTarget.with { $0.language = .python }))
            try await admin(d, .resize(Execd_V1_Resize.with { $0.language = .python; $0.target = 2 }))
            let resized = try await waitForFullPool(d, .python, target: 2)
            #expect(resized.target == 2 && resized.idle == 2 && !resized.draining)
            let ids = Set(resized.slots.map(\.id))
            try await admin(d, .recycle(Execd_V1_PoolTarget.with { $0.language = .python }))
            let recycled = try await waitForFullPool(d, .python, target: 2)
            #expect(Set(recycled.slots.map(\.id)).isDisjoint(with: ids), "recycle replaces every slot")
            try await admin(d, .resize(Execd_V1_Resize.with { $0.language = .python; $0.target = start.target }))
            _ = try await waitForFullPool(d, .python, target: start.target)
        }

        /// One run computes per core (here: one); a run that sleeps is found waiting and makes room, so it cannot hold
        /// up the runs behind it (with the old single bound, the second run would wait the sleeper's whole second).
        @Test func aWaitingRunDoesNotHoldUpTheNext() async throws {
            let d = try await TestDaemon(tag: "active", hostIDBase: 980_000, maxConcurrentRuns: 4, maxActiveRuns: 1)
            defer { Task { try? await d.stop() } }
            _ = try await waitForFullPool(d, .python)
            let clock = ContinuousClock()
            let sleeper = Task { try await d.run(.python, "import time\ntime.sleep(1.5)\nprint('slept')") }
            for _ in 0..<200 where d.engine.activeCount == 0 { try await Task.sleep(for: .milliseconds(5)) }
            // Status shows the sleeper parked: running, but no longer holding the one computing place.
            var status = await d.engine.status()
            for _ in 0..<100 where status.active != 0 {
                try await Task.sleep(for: .milliseconds(5))
                status = await d.engine.status()
            }
            #expect(status.running == 1 && status.active == 0 && status.maxActiveRuns == 1, "\(status)")
            let start = clock.now
            let quick = try await d.run(.python, "print('quick')")
            let waited = clock.now - start
            #expect(quick.out == "quick\n")
            #expect(waited < .milliseconds(700), "the quick run waited \(waited) behind a sleeping one")
            #expect(try await sleeper.value.out == "slept\n")
            #expect(d.engine.activeCount == 0)
        }

        @Test func killByRunID() async throws {
            let d = try await daemon()
            let client = try await d.client()
            defer { Task { await client.close() } }
            let sleeper = Task { try await d.run(.python, "import time\ntime.sleep(30)") { $0.wallTimeMs = 20_000 } }
            var runID: String?
            for _ in 0..<200 where runID == nil {
                runID = d.engine.activeRunIDs.first
                try await Task.sleep(for: .milliseconds(10))
            }
            let id = try #require(runID)
            _ = try await client.send(.admin(Execd_V1_AdminRequest.with { $0.action = .killRun(id) }))
            await #expect { _ = try await sleeper.value } throws: { error in
                guard case ExecClientError.server(let code, _) = error else { return false }
                return code == .cancelled
            }
            await #expect { _ = try await client.send(.admin(Execd_V1_AdminRequest.with { $0.action = .killRun("run-nope") })) } throws: { error in
                guard case ExecClientError.server(let code, _) = error else { return false }
                return code == .notFound
            }
        }

        @Test func thousandsOfRunsLeakNothing() async throws {
            let d = try await daemon()
            _ = try await waitForFullPool(d, .python)
            // Warm up every slot, so fds opened once per slot (its cgroup's control files) are not counted as a leak.
            let client = try await d.client()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 { group.addTask { for _ in 0..<10 { _ = try await client.run(Execd_V1_RunRequest.with { $0.language = .python; $0.code = Data("pass".utf8) }) } } }
                try await group.waitForAll()
            }
            _ = try await waitForFullPool(d, .python)
            let fdsBefore = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        for i in 0..<300 {
                            var request = Execd_V1_RunRequest()
                            request.language = .python
                            request.code = Data("print(\(worker * 1000 + i))".utf8)
                            let r = try await client.run(request)
                            #expect(r.status == .ok && r.out == "\(worker * 1000 + i)\n")
                        }
                    }
                }
                try await group.waitForAll()
            }
            await client.close()
            _ = try await waitForFullPool(d, .python)
            #expect(d.leftoverProcesses().isEmpty, "\(d.leftoverProcesses())")
            #expect(d.leftoverCgroups().isEmpty, "\(d.leftoverCgroups())")
            let zombies = try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { entry in
                guard Int(entry) != nil, let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                      let close = stat.lastIndex(of: ")")
                else { return false }
                let fields = stat[stat.index(after: close)...].split(separator: " ")  // state, ppid, ...
                return fields.count > 1 && fields[0] == "Z" && fields[1] == "\(getpid())"
            }
            #expect(zombies.isEmpty, "zombie children of the daemon: \(zombies)")
            let fdsAfter = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
            #expect(fdsAfter <= fdsBefore + 8, "fds grew from \(fdsBefore) to \(fdsAfter)")
        }
    }
}

struct ExecdTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
