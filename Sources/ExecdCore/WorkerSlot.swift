import ExecProtocol
import Foundation
import SandboxOS

/// One pre-started JavaScript worker: a complete one-shot sandbox (every privilege already dropped, seccomp on)
/// whose node has started and waits on fd 4 for its one program (see Zygote/worker.js). Used once, then retired.
final class WorkerSlot: PoolSlot, @unchecked Sendable {
    let id: String
    let hostID: UInt32
    let process: SandboxProcess
    let cgroup: any RunCgroup
    let started = ContinuousClock.now
    /// The limits the sandbox was built with; a run whose rlimit-backed or /tmp limits differ runs one-shot.
    let limits: RunLimits
    /// The limits the worker's cgroup has now (a run with others writes its own before its program arrives).
    let cgroupLimits: CgroupLimits
    var runsServed = 0
    var lastStatus: Execd_V1_Status = .unspecified
    var lastPeakMemory: UInt64 = 0
    var onRetire: (@Sendable () -> Void)?
    /// Set once node has started and loaded worker.js.
    private var warmed = false

    var sandboxPID: pid_t { process.pid }
    var zygoteHostID: UInt32 { hostID }
    var runHostID: UInt32 { hostID }

    private init(id: String, hostID: UInt32, process: SandboxProcess, cgroup: any RunCgroup, limits: RunLimits,
                 cgroupLimits: CgroupLimits) {
        self.id = id
        self.cgroupLimits = cgroupLimits
        self.hostID = hostID
        self.process = process
        self.cgroup = cgroup
        self.limits = limits
    }

    /// Whether a run with these limits may use this worker (the rest are set per run through the cgroup).
    func fits(_ run: RunLimits) -> Bool {
        run.fileSizeBytes == limits.fileSizeBytes && run.openFiles == limits.openFiles
            && run.maxProcesses == limits.maxProcesses && run.tmpfsBytes == limits.tmpfsBytes
            && run.cpuTime <= limits.cpuTime
    }

    /// Spawns the worker's sandbox; node is still starting when this returns (see `warmingFD`).
    static func start(id: String, hostID: UInt32, config: EngineConfig, seccomp: SeccompProgram,
                      cgroups: any CgroupManager) throws -> WorkerSlot {
        let limits = config.defaults
        // The default run's limits from the start: a run with those needs no cgroup write before its program goes in.
        let cgroupLimits = CgroupLimits(memoryBytes: limits.memoryBytes, maxProcesses: limits.maxProcesses,
                                        cpuQuotaMillicores: limits.cpuQuotaMillicores)
        let cgroup = try cgroups.createRunGroup(name: id, limits: cgroupLimits)
        do {
            // Node's start-up is work ahead of demand: it must not slow down runs (the run restores the weight).
            try cgroup.setCPUWeight(.background)
            let profile = config.javascript
            var backstop = limits
            backstop.cpuTime = config.maxima.cpuTime  // RLIMIT_CPU is a backstop; each run's CPU is checked via the cgroup
            var spec = SandboxSpec(
                rootDirectory: config.rootDirectory, mounts: config.mounts,
                files: [SandboxFile(path: "/tmp/.execd-worker.js", contents: try SandboxResources.load("worker.js"))],
                tmpfsBytes: limits.tmpfsBytes, tmpfsInodes: config.tmpfsInodes, executable: profile.executable,
                arguments: ["node", "/tmp/.execd-worker.js"], environment: profile.environment,
                rlimits: RunEngine.rlimits(backstop), seccomp: seccomp, hostID: hostID, sideChannel: true)
            spec.inputFD4 = true
            let process = try SandboxSpawner.spawn(spec, cgroupFD: cgroup.cloneIntoFD) { pid in
                if cgroup.cloneIntoFD == nil { try cgroup.add(pid: pid) }
            }
            return WorkerSlot(id: id, hostID: hostID, process: process, cgroup: cgroup, limits: limits,
                              cgroupLimits: cgroupLimits)
        } catch {
            try? cgroup.killAll()
            try? cgroup.destroy()
            throw error
        }
    }

    /// Node starts after `start` returns: the pool waits for its "R" on fd 3 (the worker's first write).
    var warmingFD: Int32 { warmed ? -1 : process.sideFD }

    func finishWarming() -> Bool {
        var byte: UInt8 = 0
        guard !warmed, read(process.sideFD, &byte, 1) == 1, byte == UInt8(ascii: "R") else { return false }
        warmed = true
        try? process.holdMountNamespace()  // best effort: its teardown then happens in retire(), after the result
        return true
    }

    var isAlive: Bool {
        var p = pollfd(fd: process.pidfd, events: Int16(POLLIN), revents: 0)
        return process.pidfd >= 0 && poll(&p, 1, 0) == 0
    }

    /// True once every process of the worker's sandbox is gone (its pid namespace ended with its reaper).
    var hasEnded: Bool { process.hasEnded }

    /// Idempotent. On the pool's thread once the run's result is out, or by the run itself first if the run could not
    /// prove its processes gone.
    func retire() {
        process.kill()
        _ = process.reap()
        process.closeAll()
        process.releaseMountNamespace()  // before the cgroup goes: frees the run's /tmp, charged to it
        try? cgroup.killAll()
        try? cgroup.destroy()
        onRetire?()
        onRetire = nil
    }
}
