import Glibc
import Testing

@testable import SandboxOS

/// Whether the real-kernel v1 tests can run here.
enum CgroupV1Host {
    /// Why these tests cannot run here, or nil.
    static let skipReason: String? = {
        if getuid() != 0 { return "needs root to create cgroups" }
        guard let mountInfo = try? CgroupFS.read("/proc/self/mountinfo"),
            let cgroup = try? CgroupFS.read("/proc/self/cgroup")
        else { return "cannot read /proc/self/mountinfo or /proc/self/cgroup" }
        let mounts = CgroupMountTable.parse(mountInfo)
        let membership = CgroupMembership.parse(cgroup)
        let (_, missing) = Cgroups.v1Hierarchies(mounts: mounts, membership: membership, subtree: "x")
        if !missing.isEmpty { return "cgroup v1 controllers not mounted: \(missing.joined(separator: ", "))" }
        // detect() would pick v2 and move this test process; v2 is covered by CgroupV2Tests.
        if let unified = Cgroups.v2DelegatedPath(mounts: mounts, membership: membership),
            let controllers = try? CgroupFS.read(unified + "/cgroup.controllers"),
            Cgroups.v2Controllers.allSatisfy(CgroupFormat.words(controllers).contains)
        {
            return "this host has a usable cgroup v2 hierarchy; v1 is not in use"
        }
        return nil
    }()
}

/// Real cgroup v1 on this machine (root). Each test works in its own subtree
/// `execd-test-<pid>-<tag>` under the test process's own cgroups and removes it, leaves and all,
/// even when an expectation fails.
@Suite(.serialized, .enabled(if: CgroupV1Host.skipReason == nil, "\(CgroupV1Host.skipReason ?? "")"))
struct CgroupV1KernelTests {
    static let limits = CgroupLimits(memoryBytes: 64 << 20, maxProcesses: 16, cpuQuotaMillicores: 500)
    static let python = "/usr/bin/python3"

    /// Runs `body` with a v1 manager on a fresh subtree, then removes the subtree in every hierarchy.
    func withManager(_ tag: String, _ body: (CgroupV1Manager) throws -> Void) throws {
        let subtree = "execd-test-\(getpid())-\(tag)"
        let detected = try Cgroups.detect(CgroupHost(subtreeName: subtree))
        let manager = try #require(detected as? CgroupV1Manager)
        defer {
            _ = try? manager.removeStaleGroups()
            for hierarchy in manager.hierarchies { rmdir(hierarchy.basePath) }
            for hierarchy in manager.hierarchies {
                #expect(!CgroupFS.exists(hierarchy.basePath), "test subtree left behind: \(hierarchy.basePath)")
            }
        }
        #expect(manager.version == .v1)
        #expect(Set(manager.hierarchies.flatMap(\.controllers)) == Set(Cgroups.v1Controllers))
        for hierarchy in manager.hierarchies { #expect(hierarchy.basePath.hasSuffix("/" + subtree)) }
        try body(manager)
    }

    func read(_ group: CgroupV1RunGroup, _ controller: String, _ file: String) throws -> String {
        try CgroupFS.read(group.directory(controller) + "/" + file).trimmingSuffix()
    }

    @Test func limitsReadBack() throws {
        try withManager("limits") { manager in
            let group = try #require(
                try manager.createRunGroup(name: "limits", limits: Self.limits) as? CgroupV1RunGroup
            )
            defer { try? group.destroy() }
            #expect(try read(group, "memory", "memory.limit_in_bytes") == "67108864")
            #expect(try read(group, "memory", "memory.memsw.limit_in_bytes") == "67108864")
            #expect(try read(group, "pids", "pids.max") == "16")
            #expect(try read(group, "cpu", "cpu.cfs_period_us") == "100000")
            #expect(try read(group, "cpu", "cpu.cfs_quota_us") == "50000")
            #expect(group.cloneIntoFD == nil)
            #expect(try group.usage() == CgroupUsage(cpuTime: .zero, memoryPeakBytes: 0, oomKills: 0))
            try group.destroy()
            for leaf in group.leaves { #expect(!CgroupFS.exists(leaf.basePath)) }
            try group.destroy()
        }
    }

    @Test func addUsageKillAllDestroy() throws {
        try withManager("life") { manager in
            let group = try #require(try manager.createRunGroup(name: "life", limits: Self.limits) as? CgroupV1RunGroup)
            defer { try? group.destroy() }
            let child = try CgroupTestChild([
                "/bin/sh", "-c", "read x; i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; exec sleep 30",
            ])
            defer { child.cleanUp() }
            try group.add(pid: child.pid)
            child.release()
            for leaf in group.leaves {
                #expect(CgroupFormat.pids(try CgroupFS.read(leaf.basePath + "/cgroup.procs")) == [child.pid])
            }
            // Wait until the busy loop has run and sleep was exec'd: exec's fresh anonymous pages are
            // charged to the group (pages the shell touched before moving stay with the old group).
            try waitFor { (try? CgroupFS.read("/proc/\(child.pid)/comm")) == "sleep\n" }
            let usage = try group.usage()
            #expect(usage.cpuTime > .zero && usage.cpuTime < .seconds(10))
            #expect(usage.memoryPeakBytes > 0 && usage.memoryPeakBytes < Self.limits.memoryBytes)
            #expect(usage.oomKills == 0)

            try group.killAll()
            #expect(child.wait() == SIGKILL)
            try group.destroy()
            for leaf in group.leaves { #expect(!CgroupFS.exists(leaf.basePath)) }
        }
    }

    @Test(.enabled(if: access(CgroupV1KernelTests.python, X_OK) == 0, "needs /usr/bin/python3"))
    func memoryHogIsOOMKilled() throws {
        try withManager("oom") { manager in
            let group = try manager.createRunGroup(name: "hog", limits: Self.limits)
            defer { try? group.destroy() }
            let hog =
                "import sys\nsys.stdin.readline()\nheld = []\nfor _ in range(20): held.append(b'x' * (10 << 20))\n"
            let child = try CgroupTestChild([Self.python, "-I", "-S", "-c", hog])
            defer { child.cleanUp() }
            try group.add(pid: child.pid)
            child.release()
            #expect(child.wait() == SIGKILL)
            let usage = try group.usage()
            #expect(usage.oomKills >= 1)
            #expect(usage.memoryPeakBytes <= Self.limits.memoryBytes)
            #expect(usage.memoryPeakBytes > Self.limits.memoryBytes / 2)
            try group.destroy()
        }
    }

    @Test func destroyWithLiveProcessThrowsThenSucceedsAfterKill() throws {
        try withManager("busy") { manager in
            let group = try manager.createRunGroup(name: "busy", limits: Self.limits)
            defer { try? group.destroy() }
            let child = try CgroupTestChild(["/bin/sh", "-c", "read x; exec sleep 30"])
            defer { child.cleanUp() }
            try group.add(pid: child.pid)
            child.release()
            #expect(throws: CgroupError.self) { try group.destroy() }
            try group.killAll()
            // Not reaped yet: a zombie is no longer in the group and does not block rmdir.
            try group.destroy()
            #expect(child.wait() == SIGKILL)
        }
    }

    @Test func forkedProcessesAreAllKilled() throws {
        try withManager("fork") { manager in
            let group = try #require(try manager.createRunGroup(name: "fork", limits: Self.limits) as? CgroupV1RunGroup)
            defer { try? group.destroy() }
            let child = try CgroupTestChild(["/bin/sh", "-c", "read x; for i in 1 2 3 4 5; do sleep 30 & done; wait"])
            defer { child.cleanUp() }
            try group.add(pid: child.pid)
            child.release()
            try waitFor { CgroupFormat.pids(try CgroupFS.read(group.directory("pids") + "/cgroup.procs")).count == 6 }
            try group.killAll()
            #expect(child.wait() == SIGKILL)
            try group.destroy()
        }
    }

    @Test func removeStaleGroupsStaysInsideOurSubtree() throws {
        try withManager("stale") { manager in
            // A sibling directory next to our subtree (ours too, so the test may create and remove it).
            let memoryBase = manager.hierarchies.first { $0.controllers.contains("memory") }!.basePath
            let sibling = memoryBase + "-sibling"
            try CgroupFS.makeDirectory(sibling)
            defer { rmdir(sibling) }

            let stale = try manager.createRunGroup(name: "crashed", limits: Self.limits)
            let empty = try manager.createRunGroup(name: "crashed-empty", limits: Self.limits)
            _ = empty
            let child = try CgroupTestChild(["/bin/sh", "-c", "read x; exec sleep 30"])
            defer { child.cleanUp() }
            try stale.add(pid: child.pid)
            child.release()

            // A new daemon (a new manager on the same subtree) cleans up after the "crashed" one.
            let subtree = String(memoryBase.split(separator: "/").last!)
            let restarted = try #require(try Cgroups.detect(CgroupHost(subtreeName: subtree)) as? CgroupV1Manager)
            #expect(restarted.hierarchies == manager.hierarchies)
            #expect(try restarted.removeStaleGroups() == 2)
            #expect(child.wait() == SIGKILL)
            for hierarchy in manager.hierarchies {
                #expect(try CgroupFS.subdirectories(hierarchy.basePath).isEmpty)
            }
            #expect(CgroupFS.exists(sibling))
            #expect(try restarted.removeStaleGroups() == 0)
        }
    }

    /// Polls `condition` for up to 5 s.
    func waitFor(_ condition: () throws -> Bool) throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while try !condition() {
            if ContinuousClock.now > deadline {
                Issue.record("condition not met within 5 s")
                return
            }
            CgroupFS.nap(.milliseconds(5))
        }
    }
}

extension String {
    fileprivate func trimmingSuffix() -> String {
        var result = self
        while result.last == "\n" { result.removeLast() }
        return result
    }
}
