import Foundation
import Glibc
import Testing

@testable import SandboxOS

/// Parsing of /proc/self/mountinfo, /proc/self/cgroup and interface files; v1 hierarchy discovery.
@Suite struct CgroupDetectTests {
    /// This machine's layout: separate cpu and cpuacct mounts, memory in a non-root cgroup.
    static let hybridMountInfo = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """
    static let hybridCgroup = """
        9:name=systemd:/
        8:pids:/
        4:memory:/process_api/4c39a9d3d771676c925b97aec7d32f91
        2:cpuacct:/
        1:cpu:/
        0::/
        """

    @Test func parsesMountInfo() {
        let mounts = CgroupMountTable.parse(Self.hybridMountInfo)
        #expect(mounts.count == 6)  // tmpfs dropped
        #expect(
            mounts[0]
                == CgroupMount(
                    root: "/",
                    mountPoint: "/sys/fs/cgroup/cpu",
                    fileSystemType: "cgroup",
                    superOptions: ["rw", "cpu"]
                )
        )
        #expect(mounts.last?.fileSystemType == "cgroup2")
    }

    @Test func parsesMountInfoWithOptionalFieldsAndEscapes() {
        let line =
            "30 25 0:26 / /sys/fs/cgroup/cpu\\040acct rw,nosuid shared:10 master:2 - cgroup cgroup rw,cpu,cpuacct"
        let mounts = CgroupMountTable.parse(line)
        #expect(
            mounts == [
                CgroupMount(
                    root: "/",
                    mountPoint: "/sys/fs/cgroup/cpu acct",
                    fileSystemType: "cgroup",
                    superOptions: ["rw", "cpu", "cpuacct"]
                )
            ]
        )
    }

    @Test func parsesMembership() {
        let membership = CgroupMembership.parse(Self.hybridCgroup)
        #expect(membership.unifiedPath == "/")
        #expect(membership.v1Paths["memory"] == "/process_api/4c39a9d3d771676c925b97aec7d32f91")
        #expect(membership.v1Paths["cpu"] == "/")
        #expect(membership.v1Paths["name=systemd"] == "/")
    }

    @Test func mountPathJoinsOwnPath() {
        let mount = CgroupMount(root: "/", mountPoint: "/sys/fs/cgroup", fileSystemType: "cgroup2", superOptions: [])
        #expect(mount.path(for: "/") == "/sys/fs/cgroup")
        #expect(mount.path(for: "/system.slice/execd.service") == "/sys/fs/cgroup/system.slice/execd.service")
        // A container that bind-mounts its own cgroup as the mount's root.
        let nested = CgroupMount(
            root: "/lxc/c1",
            mountPoint: "/sys/fs/cgroup",
            fileSystemType: "cgroup2",
            superOptions: []
        )
        #expect(nested.path(for: "/lxc/c1/app") == "/sys/fs/cgroup/app")
    }

    @Test func v1HierarchiesSeparateMounts() {
        let (hierarchies, missing) = Cgroups.v1Hierarchies(
            mounts: CgroupMountTable.parse(Self.hybridMountInfo),
            membership: CgroupMembership.parse(Self.hybridCgroup),
            subtree: "execd"
        )
        #expect(missing.isEmpty)
        #expect(
            hierarchies == [
                CgroupV1Hierarchy(
                    controllers: ["memory"],
                    basePath: "/sys/fs/cgroup/memory/process_api/4c39a9d3d771676c925b97aec7d32f91/execd"
                ),
                CgroupV1Hierarchy(controllers: ["pids"], basePath: "/sys/fs/cgroup/pids/execd"),
                CgroupV1Hierarchy(controllers: ["cpu"], basePath: "/sys/fs/cgroup/cpu/execd"),
                CgroupV1Hierarchy(controllers: ["cpuacct"], basePath: "/sys/fs/cgroup/cpuacct/execd"),
            ]
        )
    }

    @Test func v1HierarchiesCoMountedCpuAndMissingPids() {
        let mountInfo = """
            32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:7 - cgroup cgroup rw,cpu,cpuacct
            35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:8 - cgroup cgroup rw,memory
            """
        let cgroup = "5:cpu,cpuacct:/user.slice\n4:memory:/user.slice/session-1.scope\n0::/user.slice\n"
        let (hierarchies, missing) = Cgroups.v1Hierarchies(
            mounts: CgroupMountTable.parse(mountInfo),
            membership: CgroupMembership.parse(cgroup),
            subtree: "execd"
        )
        #expect(missing == ["pids"])
        #expect(
            hierarchies == [
                CgroupV1Hierarchy(
                    controllers: ["memory"],
                    basePath: "/sys/fs/cgroup/memory/user.slice/session-1.scope/execd"
                ),
                CgroupV1Hierarchy(
                    controllers: ["cpu", "cpuacct"],
                    basePath: "/sys/fs/cgroup/cpu,cpuacct/user.slice/execd"
                ),
            ]
        )
    }

    @Test func flatKeyedFormats() throws {
        // memory.oom_control as this kernel (6.18) prints it.
        let oomControl = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"
        #expect(CgroupFormat.flatKeyed(oomControl) == ["oom_kill_disable": 0, "under_oom": 0, "oom_kill": 1])
        #expect(try CgroupFormat.number("9223372036854771712\n", path: "x") == 9_223_372_036_854_771_712)
        #expect(throws: CgroupError.malformed(path: "x", content: "max\n")) {
            try CgroupFormat.number("max\n", path: "x")
        }
        #expect(CgroupFormat.pids("12\n345\n") == [12, 345])
        // The byte parsers the per-run reads use: a key never matches a longer one that starts with it, a value must
        // be the whole rest of its line, and an overflowing number is malformed.
        #expect(try CgroupFormat.key("oom_kill", in: "oom_kill_disable 5\nunder_oom 0\noom_kill 7\n", path: "x") == 7)
        #expect(try CgroupFormat.key("usage_usec", in: "usage_usec 42", path: "x") == 42)
        // A pidfd's fdinfo, which hostPID(ofPidfd:) reads with the same parser: tabs separate, NSpid is not Pid.
        #expect(try CgroupFormat.key("Pid:", in: "pos:\t0\nNSpid:\t9\t1\nPid:\t12\n", path: "x") == 12)
        #expect(throws: CgroupError.self) { try CgroupFormat.key("Pid:", in: "NSpid:\t9\nPid:\t-1\n", path: "x") }
        #expect(throws: CgroupError.self) { try CgroupFormat.key("oom_kill", in: "oom_kill_disable 0\noom_kill x1\n", path: "x") }
        #expect(throws: CgroupError.self) { try CgroupFormat.key("oom", in: "oom 1 2\n", path: "x") }
        #expect(try CgroupFormat.number(" 17 \n", path: "x") == 17)
        #expect(throws: CgroupError.self) { try CgroupFormat.number("18446744073709551616\n", path: "x") }
        #expect(throws: CgroupError.self) { try CgroupFormat.number("12abc\n", path: "x") }
        #expect(CgroupFormat.pids("") == [])
        #expect(CgroupFormat.words("cpu memory pids\n") == ["cpu", "memory", "pids"])
    }

    @Test func errorDescriptionsNamePathAndErrno() {
        let error = CgroupError.system(operation: "write", path: "/sys/fs/cgroup/pids/execd/x/pids.max", errno: EINVAL)
        #expect(
            error.description
                == "cgroup: write /sys/fs/cgroup/pids/execd/x/pids.max failed: Invalid argument (errno 22)"
        )
        let missing = CgroupError.controllersMissing(version: .v2, missing: ["memory"], path: "/sys/fs/cgroup/a")
        #expect(missing.description.contains("Delegate=yes"))
    }
}

/// v1 logic against a fake tree with cpu and cpuacct co-mounted and no swap accounting.
@Suite struct CgroupV1FakeTests {
    static let files: [String: String] = [
        "cgroup.procs": "", "memory.limit_in_bytes": "", "memory.swappiness": "60", "memory.max_usage_in_bytes": "0",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", "pids.max": "max",
        "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1", "cpuacct.usage": "0",
    ]

    @Test func coMountedCpuAndSwappinessFallback() throws {
        let tree = try CgroupFakeTree()
        let ops = tree.ops(files: Self.files)
        let manager = try CgroupV1Manager(
            hierarchies: [
                CgroupV1Hierarchy(controllers: ["memory"], basePath: tree.root + "/memory-execd"),
                CgroupV1Hierarchy(controllers: ["pids"], basePath: tree.root + "/pids-execd"),
                CgroupV1Hierarchy(controllers: ["cpu", "cpuacct"], basePath: tree.root + "/cpu-execd"),
            ],
            directoryOps: ops
        )
        let group = try manager.createRunGroup(
            name: "r",
            limits: CgroupLimits(memoryBytes: 1 << 30, maxProcesses: 64, cpuQuotaMillicores: 1500)
        )
        #expect(group.cloneIntoFD == nil)
        #expect(try tree.read("memory-execd/r/memory.limit_in_bytes") == "1073741824")
        #expect(try tree.read("memory-execd/r/memory.swappiness") == "0")
        #expect(try tree.read("pids-execd/r/pids.max") == "64")
        #expect(try tree.read("cpu-execd/r/cpu.cfs_period_us") == "100000")
        #expect(try tree.read("cpu-execd/r/cpu.cfs_quota_us") == "150000")
        try group.add(pid: 99)
        for base in ["memory-execd", "pids-execd", "cpu-execd"] {
            #expect(try tree.read(base + "/r/cgroup.procs") == "99")
        }

        try tree.write("cpu-execd/r/cpuacct.usage", "2500000000\n")
        try tree.write("memory-execd/r/memory.max_usage_in_bytes", "8388608\n")
        try tree.write("memory-execd/r/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
        #expect(try group.usage() == CgroupUsage(cpuTime: .milliseconds(2500), memoryPeakBytes: 8 << 20, oomKills: 2))

        try tree.write("pids-execd/r/cgroup.procs", "")
        try tree.write("memory-execd/r/cgroup.procs", "")
        try tree.write("cpu-execd/r/cgroup.procs", "")
        try group.destroy()
        for base in ["memory-execd", "pids-execd", "cpu-execd"] {
            #expect(!tree.exists(base + "/r"))
            #expect(tree.exists(base))
        }
        try group.destroy()
    }

    @Test func missingControllerIsNamed() throws {
        let tree = try CgroupFakeTree()
        #expect(
            throws: CgroupError.controllersMissing(
                version: .v1,
                missing: ["cpuacct"],
                path: tree.root + "/a, " + tree.root + "/b"
            )
        ) {
            try CgroupV1Manager(
                hierarchies: [
                    CgroupV1Hierarchy(controllers: ["memory", "pids"], basePath: tree.root + "/a"),
                    CgroupV1Hierarchy(controllers: ["cpu"], basePath: tree.root + "/b"),
                ],
                directoryOps: tree.ops(files: Self.files)
            )
        }
    }
}
