import Foundation
import Glibc
import Testing

@testable import SandboxOS

/// cgroup v2 logic against a fake tree: a systemd unit with Delegate=yes at
/// <root>/cg/system.slice/execd.service.
@Suite struct CgroupV2Tests {
    let tree: CgroupFakeTree
    let unit = "cg/system.slice/execd.service"
    let limits = CgroupLimits(memoryBytes: 64 << 20, maxProcesses: 16, cpuQuotaMillicores: 500)

    init() throws {
        tree = try CgroupFakeTree()
        try tree.makeGroup(unit)
        try tree.makeGroup("cg/system.slice/other.service")
    }

    func host(
        ownPath: String = "/system.slice/execd.service",
        files: [String: String] = CgroupFakeTree.v2Files
    ) throws
        -> CgroupHost
    {
        let mountInfo = try tree.writeProcFile(
            "mountinfo",
            """
            24 1 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
            31 23 0:28 / \(tree.root)/cg rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate

            """
        )
        let membership = try tree.writeProcFile("cgroup", "0::\(ownPath)\n")
        return CgroupHost(
            mountInfoPath: mountInfo,
            procSelfCgroupPath: membership,
            subtreeName: "ignored-on-v2",
            pid: 4242,
            directoryOps: tree.ops(files: files)
        )
    }

    func manager() throws -> CgroupV2Manager {
        let detected = try Cgroups.detect(try host())
        return try #require(detected as? CgroupV2Manager)
    }

    @Test func detectSetsUpDelegatedSubtree() throws {
        let manager = try manager()
        #expect(manager.version == .v2)
        #expect(manager.delegatedPath == tree.root + "/" + unit)
        #expect(try tree.read(unit + "/daemon/cgroup.procs") == "4242")
        #expect(try tree.read(unit + "/cgroup.subtree_control") == "+memory +pids +cpu")
        #expect(try tree.read(unit + "/runs/cgroup.subtree_control") == "+memory +pids +cpu")
        // The sibling unit is not touched.
        #expect(try tree.read("cg/system.slice/other.service/cgroup.subtree_control") == "")
    }

    @Test func detectAgainFromDaemonLeafReusesSubtree() throws {
        _ = try manager()
        let again = try #require(
            try Cgroups.detect(try host(ownPath: "/system.slice/execd.service/daemon")) as? CgroupV2Manager
        )
        #expect(again.delegatedPath == tree.root + "/" + unit)
        #expect(!tree.exists(unit + "/daemon/daemon"))
    }

    @Test func createRunGroupWritesLimits() throws {
        let group = try manager().createRunGroup(name: "run-1", limits: limits)
        defer { try? group.destroy() }
        let leaf = unit + "/runs/run-1"
        #expect(group.name == "run-1")
        #expect(try tree.read(leaf + "/memory.max") == "67108864")
        #expect(try tree.read(leaf + "/memory.swap.max") == "0")
        #expect(try tree.read(leaf + "/memory.oom.group") == "1")
        #expect(try tree.read(leaf + "/pids.max") == "16")
        #expect(try tree.read(leaf + "/cpu.max") == "50000 100000")
        let fd = try #require(group.cloneIntoFD)
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(fd, F_GETFL) & CgroupFS.oPath != 0)
    }

    @Test func cpuQuotaRounding() {
        #expect(CgroupRules.quotaMicroseconds(millicores: 1000) == 100_000)
        #expect(CgroupRules.quotaMicroseconds(millicores: 2500) == 250_000)
        #expect(CgroupRules.quotaMicroseconds(millicores: 1) == 1_000)  // kernel minimum
        #expect(CgroupRules.quotaMicroseconds(millicores: .max) == .max)
    }

    @Test func addAndKillWriteInterfaceFiles() throws {
        let group = try manager().createRunGroup(name: "run-2", limits: limits)
        defer { try? group.destroy() }
        try group.add(pid: 777)
        #expect(try tree.read(unit + "/runs/run-2/cgroup.procs") == "777")
        try group.killAll()
        #expect(try tree.read(unit + "/runs/run-2/cgroup.kill") == "1")
    }

    @Test func usageParsesCpuStatPeakAndEvents() throws {
        let group = try manager().createRunGroup(name: "run-3", limits: limits)
        defer { try? group.destroy() }
        let leaf = unit + "/runs/run-3"
        try tree.write(leaf + "/cpu.stat", "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 3\n")
        try tree.write(leaf + "/memory.peak", "1048576\n")
        try tree.write(leaf + "/memory.events", "low 0\nhigh 0\nmax 9\noom 1\noom_kill 3\noom_group_kill 1\n")
        #expect(
            try group.usage() == CgroupUsage(cpuTime: .microseconds(123456), memoryPeakBytes: 1_048_576, oomKills: 3)
        )

        // Kernels before 5.19 have no memory.peak; memory.current stands in. Pre-5.17 memory.events
        // has no oom_group_kill.
        unlink(tree.root + "/" + leaf + "/memory.peak")
        try tree.write(leaf + "/memory.current", "4096\n")
        try tree.write(leaf + "/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
        #expect(try group.usage() == CgroupUsage(cpuTime: .microseconds(123456), memoryPeakBytes: 4096, oomKills: 0))

        try tree.write(leaf + "/cpu.stat", "garbage\n")
        #expect(throws: CgroupError.malformed(path: tree.root + "/" + leaf + "/cpu.stat", content: "garbage\n")) {
            try group.usage()
        }
    }

    @Test func destroyRemovesLeafClosesFdAndIsIdempotent() throws {
        let group = try manager().createRunGroup(name: "run-4", limits: limits)
        let fd = try #require(group.cloneIntoFD)
        try group.destroy()
        #expect(!tree.exists(unit + "/runs/run-4"))
        #expect(group.cloneIntoFD == nil)
        // The number may already be reused by another thread; it just must not be the leaf any more.
        var target = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/fd/\(fd)", &target, target.count - 1)
        let link = n > 0 ? String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        #expect(!link.hasSuffix("/runs/run-4"))
        try group.destroy()
    }

    @Test func destroyOfPopulatedGroupThrowsAfterWaiting() throws {
        let group = try manager().createRunGroup(name: "busy", limits: limits)
        try tree.write(unit + "/runs/busy/cgroup.events", "populated 1\nfrozen 0\n")
        #expect(throws: CgroupError.stillPopulated(path: tree.root + "/" + unit + "/runs/busy", waited: .seconds(2))) {
            try group.destroy()
        }
        #expect(tree.exists(unit + "/runs/busy"))
        try tree.write(unit + "/runs/busy/cgroup.events", "populated 0\nfrozen 0\n")
        try group.destroy()
        #expect(!tree.exists(unit + "/runs/busy"))
    }

    @Test func invalidNamesAndLimitsAreRejected() throws {
        let manager = try manager()
        for name in ["", ".", "..", "a/b", "../escape"] {
            #expect(throws: CgroupError.invalidName(name)) { try manager.createRunGroup(name: name, limits: limits) }
        }
        var bad = limits
        bad.maxProcesses = 0
        #expect(throws: CgroupError.invalidLimits("maxProcesses must be > 0")) {
            try manager.createRunGroup(name: "x", limits: bad)
        }
    }

    @Test func existingLeafIsAnError() throws {
        let manager = try manager()
        let group = try manager.createRunGroup(name: "dup", limits: limits)
        defer { try? group.destroy() }
        let path = tree.root + "/" + unit + "/runs/dup"
        #expect(throws: CgroupError.system(operation: "mkdir", path: path, errno: EEXIST)) {
            try manager.createRunGroup(name: "dup", limits: limits)
        }
    }

    @Test func failedLimitWriteRemovesLeaf() throws {
        var files = CgroupFakeTree.v2Files
        files["pids.max"] = nil  // as if pids were not enabled for the leaf
        let manager = try #require(try Cgroups.detect(try host(files: files)) as? CgroupV2Manager)
        let path = tree.root + "/" + unit + "/runs/half"
        #expect(throws: CgroupError.system(operation: "open", path: path + "/pids.max", errno: ENOENT)) {
            try manager.createRunGroup(name: "half", limits: limits)
        }
        #expect(!tree.exists(unit + "/runs/half"))
    }

    @Test func missingSwapAccountingIsTolerated() throws {
        var files = CgroupFakeTree.v2Files
        files["memory.swap.max"] = nil
        let manager = try #require(try Cgroups.detect(try host(files: files)) as? CgroupV2Manager)
        let group = try manager.createRunGroup(name: "noswap", limits: limits)
        try group.destroy()
    }

    @Test func missingControllerIsNamed() throws {
        try tree.write(unit + "/cgroup.controllers", "cpu memory io\n")
        #expect(throws: CgroupError.controllersMissing(version: .v2, missing: ["pids"], path: tree.root + "/" + unit)) {
            try CgroupV2Manager(delegatedPath: tree.root + "/" + unit, pid: 1, directoryOps: tree.ops())
        }
        // detect() falls back to v1, which has no mounts in this fake mountinfo.
        do {
            _ = try Cgroups.detect(try host())
            Issue.record("detect should fail")
        } catch let error as CgroupError {
            guard case .noUsableHierarchy(let v2, let v1) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(v2.contains("cgroup.controllers lacks pids"))
            #expect(v1 == "not mounted: memory, pids, cpu, cpuacct")
            #expect(error.description.contains("no usable hierarchy"))
        }
        #expect(!tree.exists(unit + "/daemon"))
    }

    @Test func removeStaleGroupsRemovesOnlyRunLeaves() throws {
        _ = try manager()
        try tree.makeGroup(unit + "/runs/crashed-1")
        try tree.makeGroup(unit + "/runs/crashed-2")
        try tree.makeGroup(unit + "/runs/crashed-2/nested")
        let manager = try manager()
        #expect(try manager.removeStaleGroups() == 2)
        #expect(!tree.exists(unit + "/runs/crashed-1"))
        #expect(!tree.exists(unit + "/runs/crashed-2"))
        #expect(tree.exists(unit + "/runs"))
        #expect(tree.exists(unit + "/daemon"))
        #expect(tree.exists("cg/system.slice/other.service"))
        #expect(try manager.removeStaleGroups() == 0)
    }
}
