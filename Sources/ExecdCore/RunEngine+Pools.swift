import ExecProtocol
import Foundation
import Glibc
import SandboxOS

/// Runs on warm slots: a Python zygote's child or a pre-started JavaScript worker (see docs/pool.md).
extension RunEngine {
    /// Runs on a warm zygote's child, which is already in the run's own cgroup (see `ZygoteSlot.place`): the
    /// request is one message away from user code. The slot goes back to the pool only if the zygote is still sound.
    /// Returns nil when the run could not be handed to the zygote at all (the caller falls back to a one-shot
    /// sandbox).
    func executePooled(
        _ runID: String, slot: ZygoteSlot, pool: SlotPool<ZygoteSlot>, request: Execd_V1_RunRequest, limits: RunLimits,
        files: [SandboxFile], side: (any SideChannelSink)?, control: RunControl
    ) -> Execd_V1_RunResult? {
        guard let cgroup = slot.nextGroup, let child = slot.warm else {
            pool.giveBack(slot, healthy: false)  // an idle slot always has both
            return nil
        }
        let wanted = slot.cgroupLimits(limits)
        if slot.preparedLimits != wanted {
            do {
                try cgroup.apply(wanted)
                slot.preparedLimits = wanted
            } catch {
                // E.g. a memory limit below what the warm child already uses: the slot stays as it is (its limits
                // rewritten before its next run) and this run goes one-shot, where the limit applies from the start.
                slot.preparedLimits = nil
                pool.giveBack(slot, healthy: true)
                return nil
            }
        }
        // More than a core: the run gets every CPU back (its cgroup's quota is the limit; the slot's CPU is a hint).
        if slot.cpu != nil, limits.cpuQuotaMillicores > 1000 {
            try? CPUAffinity.set(pid: slot.warmHostPID, cpus: cpus)
        }
        slot.nextGroup = nil
        slot.warm = nil
        // After the result, on a cleaner thread: the zygote reaps every process of the run (it is their subreaper;
        // the run's end sent SIGKILL through the cgroup) and only then forks its next warm child, so once that child
        // is here the run's cgroup is empty: it is recycled (peak reset) and the child placed in it. The slot is not
        // handed out again before that is done. A run whose processes will not die must not share a slot with the
        // next run: the slot is then retired.
        let cgroups = self.cgroups
        let defaults = slot.cgroupLimits(config.defaults)
        func cleanup(adopt: Bool) -> @Sendable () -> Bool {
            {
                let pending = slot.pendingWarm
                slot.pendingWarm = nil
                if !adopt { pending?.kill() }
                let child = adopt
                    ? pending ?? (try? slot.receiveWarmChild(timeout: .seconds(5), whileWaiting: { try? cgroup.signalAll() })) : nil
                guard slot.recycleGroup(cgroup, limits: defaults, cgroups: cgroups, applied: wanted) else {
                    child?.kill()
                    return false
                }
                guard adopt else { return true }
                guard let child else { return false }
                return (try? slot.place(child)) != nil
            }
        }
        let baseline = (try? cgroup.usage()) ?? CgroupUsage(cpuTime: .zero, memoryPeakBytes: 0, oomKills: 0)
        let run: ZygoteRun
        do {
            let payload = ZygoteSlot.zygoteRequest(files: files, args: request.args, rlimits: Self.rlimits(limits), side: side != nil)
            run = try ZygoteRun.start(control: slot.control, child: child, payload: payload, sideChannel: side != nil,
                                      killGroup: { try? cgroup.killAll() }, signalGroup: { try? cgroup.signalAll() },
                                      nextWarm: { slot.pendingWarm = $0 })
        } catch {
            pool.giveBack(slot, healthy: false, cleanup: cleanup(adopt: false))
            return nil
        }
        var result = finish(runID, process: run, cgroup: cgroup, request: request, limits: limits, side: side,
                            control: control, cpuBaseline: baseline.cpuTime, oomBaseline: baseline.oomKills)
        if result.memoryPeakBytes > 0 { result.memoryPeakBytes += slot.copiedAtForkBytes }  // see cgroupLimits
        slot.runsServed += 1
        slot.lastStatus = result.status
        slot.lastPeakMemory = result.memoryPeakBytes
        let healthy = !run.zygoteBroken && result.status != .internalError && slot.isAlive
        pool.giveBack(slot, healthy: healthy, cleanup: cleanup(adopt: healthy))
        return result
    }

    /// Runs on a pre-started worker: the worker's cgroup takes the run's limits, the program arrives on fd 4, and
    /// the CPU node spent starting up is not the run's. The worker is used once.
    /// Returns nil when the worker cannot take the run's limits (e.g. a memory limit below what node already
    /// uses): the caller runs it one-shot, where the limit applies from the start.
    func executeOnWorker(
        _ runID: String, slot: WorkerSlot, pool: SlotPool<WorkerSlot>, request: Execd_V1_RunRequest, limits: RunLimits,
        files: [SandboxFile], side: (any SideChannelSink)?, control: RunControl
    ) -> Execd_V1_RunResult? {
        defer {
            // Single use. Either finish() reaped the sandbox's reaper, whose exit ended its pid namespace, or the run
            // ended on the worker's DONE and the reaper has been sent SIGKILL, which ends it just the same (the pool
            // reaps it). Otherwise retire() kills and waits here. The rest — reaping, the cgroup's directories, the
            // mount namespace, the host uid — is released on the pool's thread, after the result.
            if !slot.hasEnded && !slot.process.endedEarly { slot.retire() }
            pool.giveBack(slot, healthy: false)
        }
        let baseline: CgroupUsage
        do {
            let wanted = CgroupLimits(memoryBytes: limits.memoryBytes, maxProcesses: limits.maxProcesses,
                                      cpuQuotaMillicores: limits.cpuQuotaMillicores)
            if wanted != slot.cgroupLimits { try slot.cgroup.apply(wanted) }
            try slot.cgroup.setCPUWeight(.normal)  // a warming worker's weight is .background
        } catch {
            return nil
        }
        do {
            baseline = try slot.cgroup.usage()
            let payload = ZygoteSlot.payload(files: files, args: request.args, rlimits: [], side: side != nil)
            let process = slot.process
            guard payload.withUnsafeBytes({ raw -> Bool in
                var offset = 0
                while offset < raw.count {
                    var p = pollfd(fd: process.inputFD, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&p, 1, 1000)
                    let n = write(process.inputFD, raw.baseAddress! + offset, raw.count - offset)
                    if n > 0 { offset += n } else if n < 0 && errno != EAGAIN && errno != EINTR { return false }
                }
                return true
            }) else { throw ExecdError(.internalError, "writing the program to the worker failed (errno \(errno))") }
            try process.finishInput()
        } catch {
            return Self.internalError(Execd_V1_RunResult.with { $0.runID = runID }, "starting the run on worker \(slot.id): \(error)")
        }
        let result = finish(runID, process: slot.process, cgroup: slot.cgroup, request: request, limits: limits, side: side,
                            control: control, cpuBaseline: baseline.cpuTime, oomBaseline: baseline.oomKills)
        slot.runsServed = 1
        return result
    }
}
