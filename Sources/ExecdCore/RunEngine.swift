import ExecProtocol
import Foundation
import Glibc
import NIOCore
import NIOPosix
import SandboxOS
import Synchronization

/// Settings of the run engine (a part of `ExecdConfig`).
public struct EngineConfig: Sendable {
    /// An empty directory each sandbox mounts its private root on (inside its own mount namespace).
    public var rootDirectory = "/run/execd/root"
    public var mounts: [MountEntry] = MountPlan.host()
    public var python = LanguageProfile.python
    public var javascript = LanguageProfile.javascript
    public var hostIDBase: UInt32 = 900_000
    /// Runs executing at once. A warm run is mostly waiting on the kernel, so twice the cores keeps them busy.
    public var maxConcurrentRuns = max(4, 2 * System.coreCount)
    /// Of those, runs using the CPU at once (see `AdmissionGate`): one per core. A run found waiting (sleeping,
    /// reading stdin) 5 ms after its start or later makes room for the next, up to `maxConcurrentRuns`.
    public var maxActiveRuns = System.coreCount
    public var maxQueuedRuns = 256
    public var defaults = RunLimits.defaults
    public var maxima = RunLimits.maxima
    public var tmpfsInodes = 4096
    /// Warm Python zygotes (0 disables the pool: every run starts a fresh interpreter). Twice the runs that execute
    /// at once, and two: a slot stays busy after its run is answered until the zygote has reaped the run and forked
    /// the next warm child, which at full load takes as long as a run (concurrency 4 with 6 slots: runs waited for
    /// one 1.7 times per run, two thread wake-ups each).
    public var pythonSlots = 2 * max(4, 2 * System.coreCount) + 2
    /// Pre-started single-use JavaScript workers (0 disables them).
    public var javascriptSlots = max(2, System.coreCount)
    /// A slot is replaced after this many runs or this long, whichever comes first (bounds how long one interpreter's
    /// hash seed is reused). A replacement costs a zygote's start (≈ 0.14 s of CPU: the sandbox, python3 and the
    /// preloads), which 10 000 runs share (≈ 0.014 ms each; 1000 runs made it 6 % of a run's CPU at full load).
    public var maxRunsPerSlot = 10_000
    public var maxSlotAge: Duration = .seconds(600)
    /// Each warm Python slot (its zygote and every run forked from it) stays on one CPU, the slots spread over the CPUs
    /// execd may use, and a run gets an idle slot on the CPU with the fewest busy ones. A run allowed more than one
    /// core (`cpu_quota_millicores` above 1000) gets them all back. Off: the scheduler places every process.
    public var pinPythonSlots = true

    public init() {}
}

/// An infrastructure failure (ours, not the program's).
public struct ExecdError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable { case badRequest, unsupportedLanguage, busy, internalError, cancelled, shuttingDown, deadlineExceeded, notFound }
    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// Runs programs in one-shot sandboxes: admission, a host uid and a cgroup per run, spawn, monitor, verdict,
/// cleanup. Blocking work happens on a dedicated thread pool whose threads live as long as the engine (the
/// sandboxes' parent-death signal is tied to the spawning thread).
public final class RunEngine: Sendable {
    public let config: EngineConfig
    let cgroups: any CgroupManager
    private let seccomp: SeccompProgram
    private let threads: NIOThreadPool
    let gate: AdmissionGate
    let startedAt = ContinuousClock.now
    private let hostIDs: HostIDPool
    private let counter = Atomic<UInt64>(0)
    private let active = Mutex<[String: RunControl]>([:])
    public let stats = RunStats()
    let pythonPool: SlotPool<ZygoteSlot>?
    let javascriptPool: SlotPool<WorkerSlot>?
    /// The CPUs execd may use (pinned Python slots take them in turn; a run allowed more than a core gets them all).
    let cpus = CPUAffinity.allowed()

    public init(config: EngineConfig, cgroups: any CgroupManager) throws {
        self.config = config
        self.cgroups = cgroups
        seccomp = try SeccompPolicy.standard.compile()
        threads = NIOThreadPool(numberOfThreads: config.maxConcurrentRuns)
        threads.start()
        gate = AdmissionGate(capacity: config.maxConcurrentRuns, activeLimit: config.maxActiveRuns, queueLimit: config.maxQueuedRuns)
        let hostIDs = HostIDPool(base: config.hostIDBase, count: 4096)
        self.hostIDs = hostIDs
        do {
            try FileManager.default.createDirectory(
                atPath: config.rootDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw ExecdError(.internalError, "cannot create the sandbox root mount point \(config.rootDirectory): \(error)")
        }
        if config.pythonSlots > 0 {
            // A slot's zygote is spawned by the pool's thread while that thread is on the slot's CPU: the sandbox
            // inherits it.
            let cpus = self.cpus
            let turn = Mutex(0)
            let zygoteFilters = (zygote: try SeccompPolicy.standard.excluding(ZygoteSlot.zygoteSyscalls).compile(),
                                 child: try SeccompPolicy.standard.only(ZygoteSlot.zygoteSyscalls).compile())
            pythonPool = SlotPool(
                name: "python",
                settings: .init(target: config.pythonSlots, maxRunsPerSlot: config.maxRunsPerSlot, maxSlotAge: config.maxSlotAge,
                                cleaners: config.maxConcurrentRuns),
                start: { id in
                    guard let zygote = hostIDs.acquire() else { throw ExecdError(.internalError, "no free host uid") }
                    guard let run = hostIDs.acquire() else {
                        hostIDs.release(zygote)
                        throw ExecdError(.internalError, "no free host uid")
                    }
                    do {
                        let cpu: Int32? = config.pinPythonSlots && cpus.count > 1
                            ? turn.withLock { n in defer { n += 1 }; return cpus[n % cpus.count] } : nil
                        let slot = try CPUAffinity.pinned(to: cpu, restoring: cpus) {
                            try ZygoteSlot.start(id: id, hostIDs: (zygote, run), config: config, seccomp: zygoteFilters,
                                                 cgroups: cgroups, cpu: cpu)
                        }
                        do {
                            // The first warm child comes after the zygote's COPY, which the run cgroups' limits need.
                            let child = try slot.receiveWarmChild(timeout: .seconds(10))
                            slot.prepareNextGroup(cgroups, limits: slot.cgroupLimits(config.defaults))
                            try slot.place(child)
                        } catch {
                            slot.retire()
                            throw error
                        }
                        slot.onRetire = { hostIDs.release(zygote); hostIDs.release(run) }
                        return slot
                    } catch {
                        hostIDs.release(zygote)
                        hostIDs.release(run)
                        throw error
                    }
                },
                onEvent: { _ in })
        } else {
            pythonPool = nil
        }
        if config.javascriptSlots > 0 {
            let seccomp = self.seccomp
            javascriptPool = SlotPool(
                name: "javascript",
                settings: .init(target: config.javascriptSlots, maxRunsPerSlot: 1, maxSlotAge: config.maxSlotAge,
                                maxWarming: System.coreCount, cleaners: 1),  // single-use: no cleanup between runs
                start: { id in
                    guard let hostID = hostIDs.acquire() else { throw ExecdError(.internalError, "no free host uid") }
                    do {
                        let slot = try WorkerSlot.start(id: id, hostID: hostID, config: config, seccomp: seccomp, cgroups: cgroups)
                        slot.onRetire = { hostIDs.release(hostID) }
                        return slot
                    } catch {
                        hostIDs.release(hostID)
                        throw error
                    }
                },
                onEvent: { _ in })
        } else {
            javascriptPool = nil
        }
    }

    /// Stops accepting runs, lets running ones finish for up to `grace`, kills the rest, stops the threads.
    /// When it returns no sandbox of ours is alive.
    public func shutdown(grace: Duration = .seconds(10)) async {
        gate.close()
        let deadline = ContinuousClock.now + grace
        while activeCount > 0 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        for control in active.withLock({ Array($0.values) }) { control.cancel() }
        while activeCount > 0 { try? await Task.sleep(for: .milliseconds(5)) }
        pythonPool?.shutdown()
        javascriptPool?.shutdown()
        try? await threads.shutdownGracefully()
        cgroups.removeSubtree()
    }

    /// Host uids of the live zygotes themselves (not their runs): they are meant to stay.
    public var zygoteUIDs: Set<UInt32> {
        Set((pythonPool?.snapshot.slots ?? []).map(\.zygoteUID) + (javascriptPool?.snapshot.slots.filter { $0.state == "idle" } ?? []).map(\.zygoteUID))
    }

    /// Ids of the runs executing now.
    public var activeRunIDs: [String] { active.withLock { Array($0.keys) } }

    /// Runs executing now.
    public var activeCount: Int { active.withLock { $0.count } }

    /// Kills a running run by id; false if no such run is running.
    public func kill(runID: String) -> Bool {
        guard let control = active.withLock({ $0[runID] }) else { return false }
        control.cancel()
        return true
    }

    public func profile(for language: Execd_V1_Language) throws(ExecdError) -> LanguageProfile {
        switch language {
        case .python: return config.python
        case .javascript: return config.javascript
        default: throw ExecdError(.unsupportedLanguage, "language must be LANGUAGE_PYTHON or LANGUAGE_JAVASCRIPT")
        }
    }

    /// Runs one program. Bad requests and a full queue throw; everything the program does (and our own failures
    /// while running it) comes back as a result. Cancelling the task cancels the run.
    public func run(
        _ request: Execd_V1_RunRequest, extraFiles: [SandboxFile] = [], sideChannel: (any SideChannelSink)? = nil,
        control: RunControl = RunControl(), queueDeadline: ContinuousClock.Instant? = nil, client: UInt64 = 0
    ) async throws(ExecdError) -> Execd_V1_RunResult {
        let handle = RunHandle(control: control)
        let box = UncheckedBox(sideChannel)
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                submit(request, extraFiles: extraFiles, sideChannel: box.value, handle: handle, queueDeadline: queueDeadline,
                       client: client) { continuation.resume(returning: $0) }
            }
        } onCancel: {
            handle.cancel()
        }
        return try result.get()
    }

    /// Starts one program and returns at once; `completion` gets the result exactly once (on a pool thread, or on
    /// this one when the request is refused). `handle` cancels it, queued or running. The path of a request from the
    /// socket: validated and admitted on the connection's event loop, run on a pool thread, answered from there.
    public func submit(
        _ request: Execd_V1_RunRequest, extraFiles: [SandboxFile] = [], sideChannel: (any SideChannelSink)? = nil,
        handle: RunHandle, queueDeadline: ContinuousClock.Instant? = nil, client: UInt64 = 0,
        completion: @escaping @Sendable (Result<Execd_V1_RunResult, ExecdError>) -> Void
    ) {
        let profile: LanguageProfile, limits: RunLimits, files: [SandboxFile]
        do throws(ExecdError) {
            profile = try self.profile(for: request.language)
            do { limits = try RunLimits.resolve(request.limits, defaults: config.defaults, maxima: config.maxima) }
            catch { throw ExecdError(.badRequest, error.description) }
            files = try Self.files(request, profile: profile, extra: extraFiles)
        } catch {
            completion(.failure(error))
            return
        }
        let control = handle.control
        let box = UncheckedBox(sideChannel)
        let waiter = gate.enter(client: client, deadline: queueDeadline) { [self] admitted in
            switch admitted {
            case .failure(.full(let queued)):
                completion(.failure(ExecdError(.busy, "execd is at capacity (\(config.maxConcurrentRuns) running, \(queued) queued); retry later")))
            case .failure(.cancelled):
                completion(.failure(ExecdError(.cancelled, "cancelled while queued")))
            case .failure(.deadlineExceeded):
                completion(.failure(ExecdError(.deadlineExceeded, "the run could not start before its deadline; execd is busy")))
            case .failure(.shuttingDown):
                completion(.failure(ExecdError(.shuttingDown, "execd is shutting down")))
            case .success:
                let runID = "run-\(counter.add(1, ordering: .relaxed).newValue)"
                active.withLock { $0[runID] = control }
                control.whenWaiting { [gate] in gate.park() }
                dispatch { state in
                    defer {
                        self.active.withLock { _ = $0.removeValue(forKey: runID) }
                    }
                    guard state == .active else {
                        self.gate.release()
                        completion(.failure(ExecdError(.shuttingDown, "execd is shutting down")))
                        return
                    }
                    let result = control.isCancelled ? nil : self.execute(
                        runID, request: request, profile: profile, limits: limits, files: files, side: box.value, control: control)
                    RunThread.handingOver { self.gate.release(parked: control.wasFoundWaiting) }
                    guard let result, !control.isCancelled else {
                        completion(.failure(ExecdError(.cancelled, "\(runID) was cancelled (client gone, cancel request or admin kill)")))
                        return
                    }
                    self.stats.record(result.status)
                    completion(.success(result))
                }
            }
        }
        if let waiter { handle.queued(waiter, client: client, gate: gate) }
    }

    /// Runs an admitted run's job on a run thread: the one that just freed its place when there is one (the job
    /// follows its run there, without waking another thread), otherwise any.
    private func dispatch(_ job: @escaping RunThread.Job) {
        if RunThread.takeOver(job) { return }
        threads.submit { state in
            var next: RunThread.Job? = job
            while let current = next { next = RunThread.running(current, state) }
        }
    }

    /// The blocking part, on a pool thread.
    private func execute(
        _ runID: String, request: Execd_V1_RunRequest, profile: LanguageProfile, limits: RunLimits,
        files: [SandboxFile], side: (any SideChannelSink)?, control: RunControl
    ) -> Execd_V1_RunResult {
        var result = Execd_V1_RunResult()
        result.runID = runID
        // A zygote's runs get the slot's /tmp size (their filter forbids mounts by the time a request arrives).
        if request.language == .python, limits.tmpfsBytes == config.defaults.tmpfsBytes, let pool = pythonPool,
           let slot = pool.take() {
            if let pooled = executePooled(runID, slot: slot, pool: pool, request: request, limits: limits, files: files,
                                          side: side, control: control) {
                return pooled
            }
        }
        if request.language == .javascript, let pool = javascriptPool, let slot = pool.take() {
            if slot.fits(limits) {
                if let result = executeOnWorker(runID, slot: slot, pool: pool, request: request, limits: limits, files: files,
                                                side: side, control: control) {
                    return result
                }
            } else {
                pool.giveBack(slot, healthy: true)
            }
        }
        stats.recordOneShot()
        var files = files
        if profile.arguments.contains(LanguageProfile.stdioPreloadPath), let preload = try? SandboxResources.load("stdio.js") {
            files.append(SandboxFile(path: LanguageProfile.stdioPreloadPath, contents: preload))
        }
        guard let hostID = hostIDs.acquire() else {
            return Self.internalError(result, "no free host uid (more sandboxes alive than configured)")
        }
        defer { hostIDs.release(hostID) }
        let cgroup: any RunCgroup
        do {
            cgroup = try cgroups.createRunGroup(
                name: runID,
                limits: CgroupLimits(memoryBytes: limits.memoryBytes, maxProcesses: limits.maxProcesses,
                                     cpuQuotaMillicores: limits.cpuQuotaMillicores))
        } catch {
            return Self.internalError(result, "creating the run's cgroup: \(error)")
        }
        defer { try? cgroup.destroy() }

        let spec = SandboxSpec(
            rootDirectory: config.rootDirectory, mounts: config.mounts, files: files, tmpfsBytes: limits.tmpfsBytes,
            tmpfsInodes: config.tmpfsInodes, executable: profile.executable,
            arguments: profile.argv(programArguments: request.args), environment: profile.environment,
            rlimits: Self.rlimits(limits), seccomp: seccomp, hostID: hostID, sideChannel: side != nil)
        let process: SandboxProcess
        do {
            process = try SandboxSpawner.spawn(spec, cgroupFD: cgroup.cloneIntoFD) { pid in
                if cgroup.cloneIntoFD == nil { try cgroup.add(pid: pid) }
            }
        } catch {
            return Self.internalError(result, "spawning the sandbox: \(error)")
        }
        return finish(runID, process: process, cgroup: cgroup, request: request, limits: limits, side: side, control: control)
    }

    /// Monitors a started run to its end and turns what the kernel reported into a result.
    func finish(
        _ runID: String, process: any MonitoredProcess, cgroup: any RunCgroup, request: Execd_V1_RunRequest,
        limits: RunLimits, side: (any SideChannelSink)?, control: RunControl, cpuBaseline: Duration = .zero,
        oomBaseline: Int = 0
    ) -> Execd_V1_RunResult {
        func measured() -> CgroupUsage {
            guard var usage = try? cgroup.usage() else { return CgroupUsage(cpuTime: .zero, memoryPeakBytes: 0, oomKills: 0) }
            usage.cpuTime = max(.zero, usage.cpuTime - cpuBaseline)
            usage.oomKills = max(0, usage.oomKills - oomBaseline)
            return usage
        }
        let monitor = RunMonitor(
            cpuLimit: limits.cpuTime, wallLimit: limits.wallTime, outputLimit: limits.outputBytes,
            cores: Double(limits.cpuQuotaMillicores) / 1000,
            usage: { let u = measured(); return (u.cpuTime, u.oomKills) }, control: control, side: side)
        let outcome = monitor.run(process, stdin: Array(request.stdin))
        let usage = measured()
        let verdict = Verdict.decide(outcome, cpuTime: usage.cpuTime, cpuLimit: limits.cpuTime,
                                     wallLimit: limits.wallTime, oomKills: usage.oomKills)
        var result = Execd_V1_RunResult()
        result.runID = runID
        result.status = verdict.status
        result.timeLimitKind = verdict.timeLimitKind
        result.exitCode = verdict.exitCode
        result.signal = verdict.signal
        result.internalError = verdict.internalError
        result.stdout = Data(outcome.stdout)
        result.stderr = Data(outcome.stderr)
        result.stdoutTruncated = outcome.stdoutTruncated
        result.stderrTruncated = outcome.stderrTruncated
        result.cpuTimeUs = UInt64(max(0, usage.cpuTime.microseconds))
        result.wallTimeUs = UInt64(max(0, outcome.wallTime.microseconds))
        result.memoryPeakBytes = usage.memoryPeakBytes
        return result
    }

    static func internalError(_ base: Execd_V1_RunResult, _ message: String) -> Execd_V1_RunResult {
        var result = base
        result.status = .internalError
        result.internalError = message
        return result
    }

    /// The program, then the request's files, then the caller's (harness) files, all under /tmp.
    static func files(_ request: Execd_V1_RunRequest, profile: LanguageProfile, extra: [SandboxFile]) throws(ExecdError) -> [SandboxFile] {
        var files = [SandboxFile(path: profile.programPath, contents: Array(request.code))]
        for file in request.files {
            let parts = file.path.split(separator: "/", omittingEmptySubsequences: false)
            guard !file.path.isEmpty, !file.path.hasPrefix("/"), !parts.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }),
                  file.path.utf8.count < 1024, !file.path.contains("\0")
            else { throw ExecdError(.badRequest, "files: path \"\(file.path)\" must be relative to /tmp, without '.', '..' or empty parts") }
            let path = "/tmp/" + file.path
            guard path != profile.programPath else { throw ExecdError(.badRequest, "files: \(path) is where the program goes") }
            files.append(SandboxFile(path: path, contents: Array(file.content), mode: file.executable ? 0o755 : 0o644))
        }
        let all = files + extra
        guard all.count == 1 || Set(all.map(\.path)).count == all.count else { throw ExecdError(.badRequest, "files: duplicate paths") }
        return all
    }

    static func rlimits(_ limits: RunLimits) -> [ResourceLimit] {
        let cpuSeconds = UInt64(limits.cpuTime.components.seconds) + 1
        return [
            ResourceLimit(.core, 0),
            ResourceLimit(.fileSize, limits.fileSizeBytes),
            ResourceLimit(.openFiles, UInt64(limits.openFiles)),
            ResourceLimit(.processes, UInt64(limits.maxProcesses)),
            // Kernel backstop behind the cgroup CPU check: SIGXCPU a second late, SIGKILL a second after that.
            ResourceLimit(.cpu, soft: cpuSeconds + 1, hard: cpuSeconds + 2),
            ResourceLimit(.memoryLock, 64 << 10),
            ResourceLimit(.messageQueue, 0),
            ResourceLimit(.stack, soft: 8 << 20, hard: 64 << 20),
        ]
    }
}

/// Cancels one run, whether it still waits for admission or already runs.
public final class RunHandle: Sendable {
    public let control: RunControl
    private let waiter = Mutex<(id: UInt64, client: UInt64, gate: AdmissionGate)?>(nil)

    public init(control: RunControl = RunControl()) { self.control = control }

    public func cancel() {
        control.cancel()
        if let waiter = waiter.withLock({ $0 }) { waiter.gate.cancel(waiter.id, client: waiter.client, with: .cancelled) }
    }

    /// The run waits in `gate` as `id`: a cancel takes it out of the queue (at once if it came first).
    func queued(_ id: UInt64, client: UInt64, gate: AdmissionGate) {
        waiter.withLock { $0 = (id, client, gate) }
        if control.isCancelled { gate.cancel(id, client: client, with: .cancelled) }
    }
}

/// A run thread's hand-over: the run that ends frees its place in the gate, which admits the next waiting run on the
/// same thread; that run's job then runs there once the first has answered (one thread wake-up less per queued run).
enum RunThread {
    typealias Job = @Sendable (NIOThreadPool.WorkItemState) -> Void

    /// Only ever used by the thread it belongs to.
    private final class Slot: @unchecked Sendable {
        var handingOver = false
        var next: Job?
    }

    private static let current = ThreadSpecificVariable<Slot>()

    /// Runs `job` on this thread; returns the job handed over meanwhile, to run next.
    static func running(_ job: Job, _ state: NIOThreadPool.WorkItemState) -> Job? {
        let slot = current.currentValue ?? { let slot = Slot(); current.currentValue = slot; return slot }()
        job(state)
        let next = slot.next
        slot.next = nil
        return next
    }

    /// `body` (a gate release) may admit one run whose job this thread takes over.
    static func handingOver(_ body: () -> Void) {
        guard let slot = current.currentValue else { return body() }
        slot.handingOver = true
        defer { slot.handingOver = false }
        body()
    }

    /// True if this thread, within `handingOver`, takes `job` over.
    static func takeOver(_ job: @escaping Job) -> Bool {
        guard let slot = current.currentValue, slot.handingOver, slot.next == nil else { return false }
        slot.next = job
        return true
    }
}

/// Passes a non-Sendable reference to the one pool thread that will use it.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Totals per verdict since start.
public final class RunStats: Sendable {
    private let counts = Mutex<[Int: Int]>([:])
    private let oneShotRuns = Atomic<UInt64>(0)

    func record(_ status: Execd_V1_Status) { counts.withLock { $0[status.rawValue, default: 0] += 1 } }
    func recordOneShot() { oneShotRuns.add(1, ordering: .relaxed) }

    public var total: UInt64 { counts.withLock { UInt64($0.values.reduce(0, +)) } }
    public var oneShot: UInt64 { oneShotRuns.load(ordering: .relaxed) }

    public var snapshot: [Execd_V1_Status: Int] {
        counts.withLock { Dictionary(uniqueKeysWithValues: $0.map { (Execd_V1_Status(rawValue: $0.key) ?? .unspecified, $0.value) }) }
    }
}
