import Glibc

/// Where to look for the kernel's cgroup state; every field is a parameter so detection can run
/// against fake files in tests.
public struct CgroupHost: Sendable {
    /// Mount table of this process (finds the cgroup2 mount and the v1 controller mounts).
    public var mountInfoPath: String
    /// This process's cgroup membership (`ID:controllers:path` per line).
    public var procSelfCgroupPath: String
    /// v1 only: the directory created under the daemon's own cgroup in each hierarchy. On v2 the
    /// daemon's own (delegated) cgroup is the subtree.
    public var subtreeName: String
    /// The pid moved into `<own>/daemon` on v2.
    public var pid: pid_t
    /// mkdir/rmdir; `.kernel` except in tests.
    public var directoryOps: CgroupDirectoryOps

    /// The real host, with defaults for everything.
    public init(
        mountInfoPath: String = "/proc/self/mountinfo",
        procSelfCgroupPath: String = "/proc/self/cgroup",
        subtreeName: String = "execd",
        pid: pid_t = getpid(),
        directoryOps: CgroupDirectoryOps = .kernel
    ) {
        self.mountInfoPath = mountInfoPath
        self.procSelfCgroupPath = procSelfCgroupPath
        self.subtreeName = subtreeName
        self.pid = pid
        self.directoryOps = directoryOps
    }
}

/// Entry point: picks the cgroup implementation this host supports.
public enum Cgroups {
    /// Controllers a v2 setup needs delegated to us.
    public static let v2Controllers = ["memory", "pids", "cpu"]
    /// Controllers a v1 setup needs mounted.
    public static let v1Controllers = ["memory", "pids", "cpu", "cpuacct"]

    /// Returns a v2 manager if the unified hierarchy gives our cgroup memory+pids+cpu, else a v1 manager
    /// if memory, pids, cpu and cpuacct hierarchies are mounted, else throws
    /// `CgroupError.noUsableHierarchy` saying what each lacked. Setting up creates our subtree (and on
    /// v2 moves `host.pid` into `<own>/daemon`).
    public static func detect(_ host: CgroupHost = CgroupHost()) throws -> any CgroupManager {
        let mounts = CgroupMountTable.parse(try CgroupFS.read(host.mountInfoPath))
        let membership = CgroupMembership.parse(try CgroupFS.read(host.procSelfCgroupPath))

        let v2Problem: String
        if let delegated = v2DelegatedPath(mounts: mounts, membership: membership) {
            let controllersFile = delegated + "/cgroup.controllers"
            let available = CgroupFormat.words(try CgroupFS.read(controllersFile))
            let missing = v2Controllers.filter { !available.contains($0) }
            if missing.isEmpty {
                return try CgroupV2Manager(delegatedPath: delegated, pid: host.pid, directoryOps: host.directoryOps)
            }
            v2Problem = "\(controllersFile) lacks \(missing.joined(separator: ", "))"
        } else {
            v2Problem = "no cgroup2 mount or no 0:: line in \(host.procSelfCgroupPath)"
        }

        let (hierarchies, missing) = v1Hierarchies(mounts: mounts, membership: membership, subtree: host.subtreeName)
        if missing.isEmpty {
            return try CgroupV1Manager(hierarchies: hierarchies, directoryOps: host.directoryOps)
        }
        throw CgroupError.noUsableHierarchy(v2: v2Problem, v1: "not mounted: \(missing.joined(separator: ", "))")
    }

    /// `<cgroup2 mount>/<own path>`, with a trailing `/daemon` removed: if we (or systemd's
    /// `DelegateSubgroup=daemon`) already moved the daemon there, the delegated root is its parent.
    static func v2DelegatedPath(mounts: [CgroupMount], membership: CgroupMembership) -> String? {
        guard let mount = mounts.first(where: { $0.fileSystemType == "cgroup2" }),
            let own = membership.unifiedPath
        else { return nil }
        var path = mount.path(for: own)
        if path.hasSuffix("/" + CgroupV2Manager.daemonLeaf) {
            path.removeLast(CgroupV2Manager.daemonLeaf.count + 1)
        }
        return path
    }

    /// One `CgroupV1Hierarchy` per distinct mount carrying our controllers (cpu and cpuacct may share
    /// one), plus the controllers that have no mount or no membership line.
    static func v1Hierarchies(
        mounts: [CgroupMount],
        membership: CgroupMembership,
        subtree: String
    ) -> ([CgroupV1Hierarchy], [String]) {
        var hierarchies: [CgroupV1Hierarchy] = []
        var missing: [String] = []
        for controller in v1Controllers {
            // Already covered by a co-mounted hierarchy (cpu,cpuacct).
            if hierarchies.contains(where: { $0.controllers.contains(controller) }) { continue }
            guard
                let mount = mounts.first(where: {
                    $0.fileSystemType == "cgroup" && $0.superOptions.contains(controller)
                }),
                let own = membership.v1Paths[controller]
            else {
                missing.append(controller)
                continue
            }
            let carried = v1Controllers.filter { mount.superOptions.contains($0) }
            hierarchies.append(CgroupV1Hierarchy(controllers: carried, basePath: mount.path(for: own) + "/" + subtree))
        }
        return (hierarchies, missing)
    }
}

/// One cgroup file system mount from /proc/self/mountinfo.
struct CgroupMount: Equatable {
    /// The mount's root within its hierarchy (field 4), usually "/".
    var root: String
    /// Where it is mounted (field 5).
    var mountPoint: String
    /// "cgroup" or "cgroup2".
    var fileSystemType: String
    /// Super options (last field), which name the v1 controllers: "rw,cpu,cpuacct".
    var superOptions: [String]

    /// The directory of cgroup `own` (a path from /proc/self/cgroup) under this mount.
    func path(for own: String) -> String {
        var relative = own
        if root != "/" && (own == root || own.hasPrefix(root + "/")) { relative = String(own.dropFirst(root.count)) }
        let base = mountPoint == "/" ? "" : mountPoint
        return relative == "/" || relative.isEmpty ? base : base + relative
    }
}

enum CgroupMountTable {
    /// Parses mountinfo lines, keeping only cgroup and cgroup2 mounts.
    static func parse(_ content: String) -> [CgroupMount] {
        content.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard let dash = fields.firstIndex(of: "-"), dash >= 6, fields.count >= dash + 4 else { return nil }
            let type = fields[dash + 1]
            guard type == "cgroup" || type == "cgroup2" else { return nil }
            return CgroupMount(
                root: unescape(fields[3]),
                mountPoint: unescape(fields[4]),
                fileSystemType: type,
                superOptions: fields[dash + 3].split(separator: ",").map(String.init)
            )
        }
    }

    /// Decodes mountinfo's octal escapes (`\040` for a space).
    static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count,
                let value = UInt8(String(decoding: utf8[(i + 1)...(i + 3)], as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                i += 4
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// This process's cgroup membership from /proc/self/cgroup.
struct CgroupMembership: Equatable {
    /// The `0::` line's path, if any.
    var unifiedPath: String?
    /// v1 controller name → path in that controller's hierarchy.
    var v1Paths: [String: String]

    static func parse(_ content: String) -> CgroupMembership {
        var result = CgroupMembership(unifiedPath: nil, v1Paths: [:])
        for line in content.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let path = String(parts[2])
            if parts[0] == "0" && parts[1].isEmpty {
                result.unifiedPath = path
            } else {
                for controller in parts[1].split(separator: ",") { result.v1Paths[String(controller)] = path }
            }
        }
        return result
    }
}
