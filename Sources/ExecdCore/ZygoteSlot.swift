import ExecProtocol
import Foundation
import Harness
import SandboxOS

/// One pool slot: a sandbox of its own (namespaces, two host uids, a cgroup) holding a warm Python interpreter
/// that forks one child per run (see Zygote/zygote.py).
final class ZygoteSlot: PoolSlot, @unchecked Sendable {
    /// The uid run children become inside the slot's user namespace (zygote.py's RUN_ID).
    static let runUID: UInt32 = 1000
    /// The system calls only the zygote makes: between runs (each run's fresh /tmp), and once at its start (pinning
    /// the pages its children get copied at fork, see zygote.py; the ring never does I/O, `io_uring_enter` stays
    /// denied). Its seccomp filter allows them; each child adds the filter that denies them before it waits for its
    /// request.
    static let zygoteSyscalls: Set<String> = ["mount", "umount2", "io_uring_setup", "io_uring_register"]
    /// The most a zygote pins for its children's copies at fork: its RLIMIT_MEMLOCK hard limit leaves this much above
    /// the children's 64 KiB, and zygote.py's `pin` pins nothing beyond that hard limit.
    static let maxCopiedAtFork: UInt64 = 4 << 20
    /// What a zygote keeps to set up its children: CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_SYS_ADMIN.
    static let zygoteCaps: UInt64 = (1 << 6) | (1 << 7) | (1 << 8) | (1 << 21)

    let id: String
    let zygoteHostID: UInt32
    let runHostID: UInt32
    let process: SandboxProcess
    let control: ControlSocket
    let cgroup: any RunCgroup
    /// The CPU its zygote and runs stay on (nil: not pinned), see `EngineConfig.pinPythonSlots`.
    let cpu: Int32?
    let started = ContinuousClock.now
    var sandboxPID: pid_t { process.pid }
    /// Mutated only by the one run that holds the slot (or the pool, while it is idle).
    var runsServed = 0
    var lastStatus: Execd_V1_Status = .unspecified
    var lastPeakMemory: UInt64 = 0
    /// The cgroup the next run will use, made ahead of time with `preparedLimits` (off the request path).
    var nextGroup: (any RunCgroup)?
    /// The next run's process: forked by the zygote, set up ahead and already in `nextGroup`.
    var warm: WarmChild?
    /// A warm child that came with its predecessor's run status (`ZygoteRun`'s `nextWarm`), for the cleanup.
    var pendingWarm: WarmChild?
    /// The warm child's pid in execd's pid namespace.
    var warmHostPID: pid_t = 0
    var preparedLimits: CgroupLimits?
    /// How much of the zygote's memory each child gets copied at fork instead of on its first writes (zygote.py's
    /// `COPY`; 0 until the zygote has said, and when it could not pin its pages).
    private(set) var copiedAtForkBytes: UInt64 = 0
    private var groups = 0

    /// The cgroup limits of a run with `limits` on this slot. The pages each child gets copied at fork are charged to
    /// the slot's cgroup (the copies are made before the child joins the run's), so the run's cgroup gets that much
    /// less memory and its peak is reported that much higher (`executePooled`): limit and peak stay those of the
    /// run's whole private memory, as when its first writes copied those pages.
    func cgroupLimits(_ limits: RunLimits) -> CgroupLimits {
        let copied = copiedAtForkBytes
        return CgroupLimits(memoryBytes: limits.memoryBytes > 2 * copied ? limits.memoryBytes - copied : limits.memoryBytes,
                            maxProcesses: limits.maxProcesses, cpuQuotaMillicores: limits.cpuQuotaMillicores)
    }

    /// Makes the next run's cgroup now (off the request path: a cleaner thread, or the pool's at start), so a run
    /// only has to join it.
    func prepareNextGroup(_ cgroups: any CgroupManager, limits: CgroupLimits) {
        groups += 1
        nextGroup = try? cgroups.createRunGroup(name: "\(id)-run\(groups)", limits: limits)
        preparedLimits = nextGroup == nil ? nil : limits
    }

    /// After a run: its group, emptied and with its peak counter reset, serves the next run (cgroup v1, where
    /// creating and removing a group costs four directories each); otherwise the group goes and a fresh one is made.
    /// False when the run's processes would not die.
    func recycleGroup(_ used: any RunCgroup, limits: CgroupLimits, cgroups: any CgroupManager, applied: CgroupLimits) -> Bool {
        do {
            if try used.recycle() {
                nextGroup = used
                preparedLimits = applied
                return true
            }
        } catch {
            return false
        }
        guard (try? used.destroy()) != nil else { return false }
        prepareNextGroup(cgroups, limits: limits)
        return true
    }

    /// Waits (up to `timeout`) for the zygote's next warm child. The zygote forks it only once every process of the
    /// previous run is gone (it is their subreaper and reaps them all), so from here the previous run's cgroup is
    /// empty. `whileWaiting` runs each time 20 ms pass without it: the cleanup kills the previous run's processes
    /// again there, in case one was forked while the first kill round went through the group.
    func receiveWarmChild(timeout: Duration, whileWaiting: () -> Void = {}) throws -> WarmChild {
        let deadline = ContinuousClock.now + timeout
        func next() throws -> (message: [UInt8], fds: [Int32])? {
            while true {
                let left = deadline - ContinuousClock.now
                do { return try control.receive(timeout: max(.zero, min(left, .milliseconds(20)))) } catch {
                    guard (error as? SystemError)?.errno == ETIMEDOUT, left > .milliseconds(20) else {
                        throw ExecdError(.internalError, "zygote \(id) did not fork a warm child (\(error)): \(process.drainStderr())")
                    }
                    whileWaiting()
                }
            }
        }
        var message: (message: [UInt8], fds: [Int32])?
        var stale = 0
        receiving: repeat {
            // What may come first: the zygote's COPY (once, before its first warm child), the previous child's EXIT
            // if its run did not read it (a run that ended on DONE), a warm child's ERR and EXIT if it died before
            // announcing itself. Not without bound: a zygote whose children keep dying is broken.
            message = try next()
            guard let current = message, current.fds.isEmpty else { break }
            switch ZygoteRun.report(current.message) {
            case .copied(let pages): copiedAtForkBytes = UInt64(max(0, pages)) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
            case .exit, .error: stale += 1
            default: break receiving
            }
        } while stale <= 8
        guard let message else { throw ExecdError(.internalError, "zygote \(id) closed its control socket: \(process.drainStderr())") }
        guard case .warm = ZygoteRun.report(message.message), message.fds.count == 2 else {
            for fd in message.fds { close(fd) }
            throw ExecdError(.internalError, "zygote \(id) sent \(String(decoding: message.message, as: UTF8.self)) instead of a warm child")
        }
        return WarmChild(pidfd: message.fds[0], link: ControlSocket(fd: message.fds[1]))
    }

    /// Moves `child` into `nextGroup` (before its request can arrive: no user code ever runs outside the run's
    /// cgroup) and makes it the slot's warm child.
    func place(_ child: WarmChild) throws {
        guard let group = nextGroup else {
            child.kill()
            throw ExecdError(.internalError, "slot \(id) has no cgroup for its next run")
        }
        do {
            warmHostPID = try hostPID(ofPidfd: child.pidfd)
            try group.add(pid: warmHostPID)
        } catch {
            child.kill()
            throw ExecdError(.internalError, "placing zygote \(id)'s warm child in its cgroup: \(error)")
        }
        warm = child
    }

    /// Gives the slot's host uids back once its sandbox is gone.
    var onRetire: (@Sendable () -> Void)?

    private init(id: String, zygoteHostID: UInt32, runHostID: UInt32, process: SandboxProcess, control: ControlSocket,
                 cgroup: any RunCgroup, cpu: Int32?) {
        self.id = id
        self.cpu = cpu
        self.zygoteHostID = zygoteHostID
        self.runHostID = runHostID
        self.process = process
        self.control = control
        self.cgroup = cgroup
    }

    /// Starts a zygote (`receiveWarmChild` then waits until it is warm). The calling thread must outlive the slot
    /// (death signal).
    static func start(
        id: String, hostIDs: (zygote: UInt32, run: UInt32), config: EngineConfig,
        seccomp: (zygote: SeccompProgram, child: SeccompProgram), cgroups: any CgroupManager, cpu: Int32?
    ) throws -> ZygoteSlot {
        let cgroup = try cgroups.createRunGroup(
            name: id, limits: CgroupLimits(memoryBytes: 256 << 20, maxProcesses: 16, cpuQuotaMillicores: 1000))
        do {
            let (control, childEnd) = try ControlSocket.pair()
            defer { close(childEnd) }
            let profile = config.python
            var spec = SandboxSpec(
                rootDirectory: config.rootDirectory, mounts: config.mounts,
                files: [SandboxFile(path: "/tmp/zygote.py", contents: try zygoteSource()),
                        SandboxFile(path: "/tmp/zygote.so", contents: try zygoteLibrary()),
                        SandboxFile(path: "/tmp/seccomp.bpf", contents: seccomp.child.bytes),
                        SandboxFile(path: "/tmp/harness.py", contents: Array(try Judge.pythonRunner()))],
                tmpfsBytes: 1 << 20, tmpfsInodes: 64, executable: profile.executable,
                arguments: profile.arguments + ["/tmp/zygote.py", defaultTmpfs(config)], environment: profile.environment,
                rlimits: slotRlimits(config.maxima), seccomp: seccomp.zygote, hostID: hostIDs.zygote)
            spec.secondaryID = (runUID, hostIDs.run)
            spec.inheritedFD3 = childEnd
            spec.zygoteKeepCaps = zygoteCaps
            let process = try SandboxSpawner.spawn(spec, cgroupFD: cgroup.cloneIntoFD) { pid in
                if cgroup.cloneIntoFD == nil { try cgroup.add(pid: pid) }
            }
            process.closeStdin()
            return ZygoteSlot(id: id, zygoteHostID: hostIDs.zygote, runHostID: hostIDs.run, process: process,
                              control: control, cgroup: cgroup, cpu: cpu)
        } catch {
            try? cgroup.killAll()
            try? cgroup.destroy()
            throw error
        }
    }

    /// Kills the zygote (and with it the slot's pid namespace) and removes its cgroup.
    func retire() {
        process.kill()
        _ = process.reap()
        process.closeAll()
        control.close()
        try? cgroup.killAll()
        try? cgroup.destroy()
        warm?.kill()
        warm = nil
        pendingWarm?.kill()
        pendingWarm = nil
        if let nextGroup { try? nextGroup.destroy() }
        nextGroup = nil
        onRetire?()
        onRetire = nil
    }

    /// True while the zygote's sandbox is alive (its reaper has not exited) and so is its warm child, if any.
    var isAlive: Bool {
        var p = [pollfd(fd: process.pidfd, events: Int16(POLLIN), revents: 0),
                 pollfd(fd: warm?.pidfd ?? -1, events: Int16(POLLIN), revents: 0)]
        return process.pidfd >= 0 && poll(&p, 2, 0) == 0
    }

    /// The /tmp a run gets unless it asks for another size; the zygote mounts it ahead of each run.
    static func defaultTmpfs(_ config: EngineConfig) -> String {
        "size=\(config.defaults.tmpfsBytes),nr_inodes=\(config.tmpfsInodes),mode=1777"
    }

    /// The zygote's rlimits are the maxima, so each run can lower them to its own (raising needs a capability the
    /// zygote does not have).
    static func slotRlimits(_ maxima: RunLimits) -> [ResourceLimit] {
        [
            ResourceLimit(.core, 0),
            ResourceLimit(.fileSize, maxima.fileSizeBytes),
            ResourceLimit(.openFiles, UInt64(maxima.openFiles)),
            ResourceLimit(.processes, UInt64(maxima.maxProcesses)),
            // The hard limit leaves room for the pages pinned at the zygote's start, unless execd's own hard limit
            // is lower (the zygote then pins nothing if they do not fit); the zygote then lowers both to 64 KiB.
            ResourceLimit(.memoryLock, soft: 64 << 10,
                          hard: max(64 << 10, min((64 << 10) + maxCopiedAtFork, ResourceLimit.hardLimit(.memoryLock)))),
            ResourceLimit(.messageQueue, 0),
            ResourceLimit(.stack, soft: 8 << 20, hard: 64 << 20),
        ]
    }

    static func zygoteSource() throws -> [UInt8] { try SandboxResources.load("zygote.py") }
    static func zygoteLibrary() throws -> [UInt8] { try SandboxResources.load("libexecd-zygote.so", subdirectory: nil) }

    /// The payload a JavaScript worker reads for its run (worker.js): a JSON header line, then the files' bytes back
    /// to back. Written by hand: it is on every run's path, and Foundation's JSONSerialization cost more than the
    /// rest of the hand-off.
    static func payload(files: [SandboxFile], args: [String], rlimits: [ResourceLimit], side: Bool = false) -> [UInt8] {
        var header = "{\"side\":\(side),\"args\":["
        header += args.map(jsonString).joined(separator: ",")
        header += "],\"rlimits\":["
        header += rlimits.map { "[\($0.resource),\(Int(clamping: $0.soft)),\(Int(clamping: $0.hard))]" }.joined(separator: ",")
        header += "],\"files\":["
        header += files.map { "{\"path\":\(jsonString($0.path)),\"len\":\($0.contents.count),\"mode\":\($0.mode)}" }.joined(separator: ",")
        header += "]}\n"
        var bytes = Array(header.utf8)
        bytes.reserveCapacity(bytes.count + files.reduce(0) { $0 + $1.contents.count })
        for file in files { bytes += file.contents }
        return bytes
    }

    /// The request a zygote's child reads (execd_zygote.c): one line of decimal numbers (side channel; the arguments'
    /// lengths; the rlimits; each file's mode, path length and content length), then the bytes they measure: the
    /// arguments, then each file's path and content. The program is the first file; the directories above a file are
    /// entries before it (mode S_IFDIR, no content).
    static func zygoteRequest(files: [SandboxFile], args: [String], rlimits: [ResourceLimit], side: Bool) -> [UInt8] {
        let files = SandboxFile.withDirectories(files)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64 + 24 * (args.count + 3 * rlimits.count + 3 * files.count)
            + args.reduce(0) { $0 + $1.utf8.count } + files.reduce(0) { $0 + $1.path.utf8.count + $1.contents.count })
        func number(_ value: some BinaryInteger) {
            if !bytes.isEmpty { bytes.append(UInt8(ascii: " ")) }
            var value = UInt64(clamping: value), digits: (UInt64, Int) = (1, 1)
            while digits.1 < 20, value / digits.0 >= 10 { digits = (digits.0 * 10, digits.1 + 1) }
            for _ in 0..<digits.1 {
                bytes.append(UInt8(ascii: "0") + UInt8(value / digits.0))
                value %= digits.0
                digits.0 /= 10
            }
        }
        number(side ? 1 : 0)
        number(args.count)
        for arg in args { number(arg.utf8.count) }
        number(rlimits.count)
        for limit in rlimits {
            number(limit.resource)
            number(Int(clamping: limit.soft))
            number(Int(clamping: limit.hard))
        }
        number(files.count)
        for file in files {
            number(file.mode)
            number(file.path.utf8.count)
            number(file.contents.count)
        }
        bytes.append(UInt8(ascii: "\n"))
        for arg in args { bytes += arg.utf8 }
        for file in files {
            bytes += file.path.utf8
            bytes += file.contents
        }
        return bytes
    }

    /// A JSON string literal (Harness's escaping, RFC 8259).
    static func jsonString(_ s: String) -> String {
        var out = ""
        JSONValue.escape(s, into: &out)
        return out
    }
}

extension SandboxProcess {
    /// Whatever the process wrote on stderr so far (non-blocking), for diagnostics.
    func drainStderr() -> String {
        var text = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while stderrFD >= 0 && text.count < 16384 {
            let n = buffer.withUnsafeMutableBytes { read(stderrFD, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            text += buffer[0..<n]
        }
        return String(decoding: text, as: UTF8.self)
    }
}
