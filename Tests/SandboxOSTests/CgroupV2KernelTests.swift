import Glibc
import Testing

@testable import SandboxOS

/// Where the real cgroup2 hierarchy puts this test process, if we may create groups there.
enum CgroupV2Host {
    /// `<cgroup2 mount>/<own path>` when running as root, else nil.
    static let ownPath: String? = {
        guard getuid() == 0,
            let mountInfo = try? CgroupFS.read("/proc/self/mountinfo"),
            let cgroup = try? CgroupFS.read("/proc/self/cgroup"),
            let path = Cgroups.v2DelegatedPath(
                mounts: CgroupMountTable.parse(mountInfo),
                membership: CgroupMembership.parse(cgroup)
            ),
            CgroupFS.exists(path + "/cgroup.procs")
        else { return nil }
        return path
    }()
}

/// The parts of v2 that work without controllers, on the real kernel: here the cgroup2 hierarchy
/// (/sys/fs/cgroup/unified) has no memory/pids/cpu, so limits and usage are covered by the fake-tree
/// tests only, but cgroup.procs, cgroup.kill, cgroup.events and rmdir are real.
@Suite(.serialized, .enabled(if: CgroupV2Host.ownPath != nil, "needs root and a cgroup2 mount"))
struct CgroupV2KernelTests {
    @Test func killAllAndDestroyOnRealHierarchy() throws {
        let path = CgroupV2Host.ownPath! + "/execd-test-\(getpid())-v2"
        try CgroupFS.makeDirectory(path)
        defer { rmdir(path) }
        let group = CgroupV2RunGroup(name: "v2", path: path, fd: try CgroupFS.openPath(path), ops: .kernel)
        defer { try? group.destroy() }
        #expect(group.cloneIntoFD != nil)

        let child = try CgroupTestChild(["/bin/sh", "-c", "read x; sleep 30 & sleep 30 & wait"])
        defer { child.cleanUp() }
        try group.add(pid: child.pid)
        child.release()
        #expect(CgroupFormat.pids(try CgroupFS.read(path + "/cgroup.procs")).contains(child.pid))
        #expect(try CgroupFormat.key("populated", in: try CgroupFS.read(path + "/cgroup.events"), path: path) == 1)

        try group.killAll()
        // Before reaping: the killed shell is a zombie, which no longer populates the group.
        try group.destroy()
        #expect(!CgroupFS.exists(path))
        #expect(group.cloneIntoFD == nil)
        #expect(child.wait() == SIGKILL)
        try group.destroy()
    }

    @Test func staleRemovalKillsNestedGroups() throws {
        let path = CgroupV2Host.ownPath! + "/execd-test-\(getpid())-v2-stale"
        try CgroupFS.makeDirectory(path)
        try CgroupFS.makeDirectory(path + "/inner")
        defer {
            rmdir(path + "/inner")
            rmdir(path)
        }
        let outer = try CgroupTestChild(["/bin/sh", "-c", "read x; exec sleep 30"])
        defer { outer.cleanUp() }
        let inner = try CgroupTestChild(["/bin/sh", "-c", "read x; exec sleep 30"])
        defer { inner.cleanUp() }
        try CgroupFS.write(path + "/cgroup.procs", "\(outer.pid)")
        try CgroupFS.write(path + "/inner/cgroup.procs", "\(inner.pid)")
        outer.release()
        inner.release()

        try CgroupV2RunGroup.killAndRemove(path, ops: .kernel)
        #expect(!CgroupFS.exists(path))
        #expect(outer.wait() == SIGKILL)
        #expect(inner.wait() == SIGKILL)
    }
}
