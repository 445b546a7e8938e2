import ExecProtocol
import Foundation

extension RunEngine {
    /// What `execctl status` shows: pools, slots, queue, totals.
    public func status() async -> Execd_V1_StatusReply {
        var reply = Execd_V1_StatusReply()
        reply.serverVersion = RequestService.serverVersion
        reply.uptimeMs = UInt64(max(0, (ContinuousClock.now - startedAt).milliseconds))
        reply.running = UInt32(activeCount)
        reply.queued = UInt32(gate.queued)
        reply.queueLimit = UInt32(config.maxQueuedRuns)
        reply.maxConcurrentRuns = UInt32(config.maxConcurrentRuns)
        reply.active = UInt32(gate.active)
        reply.maxActiveRuns = UInt32(config.maxActiveRuns)
        reply.cgroupVersion = cgroups.version == .v1 ? "v1" : "v2"
        for (status, count) in stats.snapshot { reply.verdicts[status.name] = UInt64(count) }
        reply.runsTotal = stats.total
        reply.oneShotRuns = stats.oneShot
        if let pool = pythonPool { reply.pools.append(Self.poolStatus(.python, kind: "zygote", pool.snapshot)) }
        if let pool = javascriptPool { reply.pools.append(Self.poolStatus(.javascript, kind: "worker", pool.snapshot)) }
        return reply
    }

    static func poolStatus(_ language: Execd_V1_Language, kind: String, _ s: PoolSnapshot) -> Execd_V1_PoolStatus {
        var pool = Execd_V1_PoolStatus()
        pool.language = language
        pool.kind = kind
        pool.target = UInt32(s.target)
        pool.idle = UInt32(s.idle)
        pool.busy = UInt32(s.busy)
        pool.starting = UInt32(s.starting)
        pool.failedStarts = UInt32(s.failedStarts)
        pool.retired = UInt64(s.retired)
        pool.draining = s.draining
        pool.slots = s.slots.map { info in
            var slot = Execd_V1_SlotStatus()
            slot.id = info.id
            slot.state = info.state
            slot.pid = info.pid
            slot.hostUid = info.hostUID
            slot.runsServed = UInt64(info.runsServed)
            slot.ageMs = UInt64(max(0, info.age.milliseconds))
            slot.lastStatus = info.lastStatus
            slot.lastPeakMemoryBytes = info.lastPeakMemory
            slot.copiedAtForkBytes = info.copiedAtForkBytes
            return slot
        }
        return pool
    }

    /// Drain, resume, resize, recycle, kill.
    public func admin(_ request: Execd_V1_AdminRequest) throws(ExecdError) -> Execd_V1_AdminReply {
        var reply = Execd_V1_AdminReply()
        func pools(_ target: Execd_V1_PoolTarget) throws(ExecdError) -> [any AdministeredPool] {
            let all: [(Execd_V1_Language, (any AdministeredPool)?)] = [(.python, pythonPool), (.javascript, javascriptPool)]
            let chosen = all.filter { target.language == .unspecified || $0.0 == target.language }.compactMap(\.1)
            guard !chosen.isEmpty else { throw ExecdError(.badRequest, "there is no pool for \(target.language.name)") }
            return chosen
        }
        switch request.action {
        case .drain(let target):
            for pool in try pools(target) { pool.setDraining(true) }
            reply.message = "draining: idle slots retired, new runs start one-shot sandboxes"
        case .resume(let target):
            for pool in try pools(target) { pool.setDraining(false) }
            reply.message = "resumed"
        case .resize(let resize):
            guard resize.target <= 256 else { throw ExecdError(.badRequest, "resize: at most 256 slots per pool") }
            for pool in try pools(Execd_V1_PoolTarget.with { $0.language = resize.language }) { pool.resize(Int(resize.target)) }
            reply.message = "target is now \(resize.target)"
        case .recycle(let target):
            for pool in try pools(target) { pool.recycle() }
            reply.message = "every slot will be replaced"
        case .killRun(let runID):
            guard kill(runID: runID) else { throw ExecdError(.notFound, "no running run has id \(runID)") }
            reply.message = "\(runID) killed"
        case nil:
            throw ExecdError(.badRequest, "admin request without an action")
        }
        reply.done = true
        return reply
    }
}
