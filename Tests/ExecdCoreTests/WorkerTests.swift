import ExecProtocol
import Foundation
import Glibc
import Testing

extension EndToEnd.PoolTests {
    /// Runs `code` on a warm JavaScript worker (never one-shot: the test waits for the pool and checks the count).
    func runOnWorker(_ d: TestDaemon, _ code: String, stdin: String = "",
                     limits: (inout Execd_V1_Limits) -> Void = { _ in }) async throws -> Execd_V1_RunResult {
        _ = try await waitForFullPool(d, .javascript)
        let before = try await status(d).oneShotRuns
        let r = try await d.run(.javascript, code, stdin: stdin, limits: limits)
        #expect(try await status(d).oneShotRuns == before, "\(code) must have run on a warm worker")
        return r
    }

    /// The worker warms node up before the program arrives and may end node without its teardown (worker.js): none
    /// of that may show. Each row is what `node /tmp/main.js` prints and exits with.
    @Test func javascriptWorkerRunsProgramsAsNodeWould() async throws {
        let d = try await daemon()
        let rows: [(code: String, out: String, exit: Int32)] = [
            ("console.log(1)", "1\n", 0),
            ("process.exitCode = 3; console.log('x')", "x\n", 3),
            ("process.exitCode = 300", "", 44),
            ("process.exitCode = '7'", "", 7),
            ("process.on('exit', (c) => console.log('exit', c, process.exitCode)); console.log('main')", "main\nexit 0 undefined\n", 0),
            ("process.on('exit', () => { process.exitCode = 5 }); process.on('exit', (c) => console.log('second', c))", "second 0\n", 5),
            // Microtasks queued by 'exit' listeners still run; ticks do not.
            ("process.on('exit', () => { process.nextTick(() => console.log('tick')); Promise.resolve().then(() => console.log('micro')).then(() => console.log('micro2')) })",
             "micro\nmicro2\n", 0),
            ("setTimeout(() => console.log('t'), 20); setImmediate(() => console.log('i')); process.nextTick(() => console.log('n')); Promise.resolve().then(() => console.log('p'))",
             "n\np\ni\nt\n", 0),
            ("setTimeout(() => { process.exitCode = 9; console.log('late') }, 30)", "late\n", 9),
            ("""
             process.on('beforeExit', (c) => { console.log('beforeExit', c); if (!global.x) { global.x = 1; setTimeout(() => { console.log('revived'); process.exitCode = 2 }, 5) } });
             process.on('exit', (c) => console.log('bye', c))
             """, "beforeExit 0\nrevived\nbeforeExit 2\nbye 2\n", 2),
            ("process.on('beforeExit', () => { if (!global.y) { global.y = 1; process.on('exit', () => console.log('late')) } }); process.on('exit', () => console.log('early'))",
             "early\nlate\n", 0),
            ("let n = 0; process.on('beforeExit', () => { if (n++ < 2) setTimeout(() => console.log('again', n), 1) })", "again 1\nagain 2\n", 0),
            ("process.on('exit', (c) => console.log('exit', c)); setTimeout(() => console.log('never'), 10); process.exit(4)", "exit 4\n", 4),
            ("process.on('exit', () => console.log('L')); process.emit('exit'); setTimeout(() => console.log('after'), 5)", "L\nafter\nL\n", 0),
            ("process.on('uncaughtException', (e) => console.log('caught', e.message)); setTimeout(() => { throw new Error('z') }, 1); process.on('exit', (c) => console.log('exit', c))",
             "caught z\nexit 0\n", 0),
            ("process.stdout.write('a\\n', () => console.log('written')); process.on('exit', () => process.stdout.write('in exit\\n'))",
             "a\nwritten\nin exit\n", 0),
            ("""
             const { Worker } = require('worker_threads');
             new Worker("require('worker_threads').parentPort.postMessage(6 * 7)", { eval: true }).on('message', (m) => console.log('from worker', m))
             """, "from worker 42\n", 0),
            ("require('fs').readFile('/tmp/main.js', (e, d) => console.log('read', d.length > 0))", "read true\n", 0),
            ("console.log(JSON.stringify(require('fs').readFileSync(0, 'utf8')))", "\"in\\nput\\n\"\n", 0),
            // Nothing of the worker shows: argv, execArgv, the module cache, /tmp, stdout's handle.
            ("""
             console.log(process.argv.slice(1), process.execArgv, Object.keys(require.cache), require.main === module,
                         require('fs').readdirSync('/tmp'), process.listenerCount('exit'), process.stdout._handle.constructor.name)
             """, "[ '/tmp/main.js', 'a1' ] [] [ '/tmp/main.js' ] true [ 'main.js' ] 0 Pipe\n", 0),
        ]
        for row in rows {
            var request = Execd_V1_RunRequest()
            request.language = .javascript
            request.code = Data(row.code.utf8)
            request.stdin = Data("in\nput\n".utf8)
            request.args = ["a1"]
            _ = try await waitForFullPool(d, .javascript)
            let before = try await status(d).oneShotRuns
            let client = try await d.client()
            let r = try await client.run(request)
            await client.close()
            #expect(try await status(d).oneShotRuns == before, "must have run on a warm worker: \(row.code)")
            #expect(r.out == row.out && r.exitCode == row.exit, "\(row.code)\n→ \(r.status) \(r.exitCode) \(r.out) \(r.err)")
        }
    }

    @Test func javascriptWorkerReportsUncaughtErrorsAsNodeWould() async throws {
        let d = try await daemon()
        for code in ["process.on('exit', (c) => console.log('exit', c)); throw new Error('boom')",
                     "process.on('exit', (c) => console.log('exit', c)); Promise.reject(new Error('boom'))",
                     "process.on('exit', () => { throw new Error('boom') }); console.log('exit 1')"] {
            let r = try await runOnWorker(d, code)
            #expect(r.status == .runtimeError && r.exitCode == 1, "\(code): \(r.status) \(r.exitCode)")
            #expect(r.out == "exit 1\n" && r.err.hasPrefix("/tmp/main.js:1\n") && r.err.contains("Error: boom\n    at "),
                    "\(code): \(r.out) \(r.err)")
        }
    }

    @Test func javascriptWorkerFloodStillHitsTheOutputLimit() async throws {
        let d = try await daemon()
        let out = try await runOnWorker(d, "for (;;) console.log('x'.repeat(999))") { $0.outputBytes = 64 << 10 }
        #expect(out.status == .outputLimit, "\(out.status) \(out.err)")
        let err = try await runOnWorker(d, "for (;;) process.stderr.write('y'.repeat(1000))") { $0.outputBytes = 64 << 10 }
        #expect(err.status == .outputLimit, "\(err.status)")
    }

    /// fd 4 carries the worker's DONE, and the program holds it too: junk there is ignored, and a DONE of its own can
    /// only end its own run early (with what it wrote so far), never another's.
    @Test func javascriptProgramOnFd4CanOnlyEndItsOwnRun() async throws {
        let d = try await daemon()
        let junk = try await runOnWorker(d, """
            const fs = require('fs');
            fs.writeSync(4, 'EXIT 0 ERR x');
            console.log('still running');
            process.exitCode = 6;
            """)
        #expect(junk.status == .runtimeError && junk.exitCode == 6 && junk.out == "still running\n", "\(junk.out)\(junk.err)")
        let early = try await runOnWorker(d, """
            const fs = require('fs');
            require('child_process').spawn('/usr/bin/sleep', ['60'], { stdio: 'inherit' });
            console.log('before');
            fs.writeSync(4, 'DONE 0');
            setTimeout(() => console.log('after'), 3000);
            """)
        #expect(early.status == .ok && early.out == "before\n", "\(early.status) \(early.out)\(early.err)")
        #expect(early.wallTimeUs < 2_500_000, "DONE ends the run: \(early.wallTimeUs) µs")
        let next = try await runOnWorker(d, "console.log('next')")
        #expect(next.status == .ok && next.out == "next\n")
    }

    /// Workers are retired after the result is sent (cgroup removed, mount namespace released on the pool's thread):
    /// many runs leave no process, cgroup or fd behind.
    @Test func javascriptWorkersLeakNothing() async throws {
        let d = try await daemon()
        _ = try await waitForFullPool(d, .javascript)
        let fdsBefore = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        let client = try await d.client()
        for i in 0..<60 {
            let r = try await client.run(Execd_V1_RunRequest.with {
                $0.language = .javascript
                $0.code = Data("require('fs').writeFileSync('/tmp/f', 'x'.repeat(1 << 20)); console.log(\(i))".utf8)
            })
            #expect(r.status == .ok && r.out == "\(i)\n", "\(r.status) \(r.err)")
        }
        await client.close()
        let pool = try await waitForFullPool(d, .javascript)
        #expect(d.leftoverProcesses().isEmpty, "\(d.leftoverProcesses())")
        #expect(d.leftoverCgroups().isEmpty, "\(d.leftoverCgroups())")
        let workerGroups = try FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup/pids/\(d.cgroupSubtree)")
            .filter { $0.hasPrefix("slot-javascript-") }
        #expect(workerGroups.count == Int(pool.target), "only the idle workers' cgroups remain: \(workerGroups)")
        let fdsAfter = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        #expect(fdsAfter <= fdsBefore + 8, "fds grew from \(fdsBefore) to \(fdsAfter)")
    }
}
