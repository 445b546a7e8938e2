import CCap
import CExecChild
import Glibc

/// A file the child creates inside the sandbox (under /tmp) before the program starts.
public struct SandboxFile: Sendable, Equatable {
    public var path: String
    public var contents: [UInt8]
    public var mode: UInt32

    public init(path: String, contents: [UInt8], mode: UInt32 = 0o644) {
        self.path = path
        self.contents = contents
        self.mode = mode
    }

    /// A directory entry (`mode` has S_IFDIR): created, not written.
    public var isDirectory: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFDIR) }

    /// `files` with an entry for every directory above each of them (mode 0755) just before it, skipping the
    /// directories in `existing` and those already listed: whoever writes them (a sandbox's child, a zygote's child)
    /// creates them in order, without looking at paths.
    public static func withDirectories(_ files: [SandboxFile], existing: Set<String> = ["/tmp"]) -> [SandboxFile] {
        var made = existing
        var entries: [SandboxFile] = []
        for file in files {
            entries += directories(above: file.path, made: &made).map {
                SandboxFile(path: $0, contents: [], mode: UInt32(S_IFDIR) | 0o755)
            }
            entries.append(file)
        }
        return entries
    }

    /// The directories above `path` that are not in `made` yet, outermost first (and now in `made`).
    static func directories(above path: String, made: inout Set<String>) -> [String] {
        // The usual case, a file right in /tmp (the program): nothing to make, nothing to split.
        if path.hasPrefix("/tmp/"), !path.utf8.dropFirst(5).contains(UInt8(ascii: "/")), made.contains("/tmp") { return [] }
        var above: [String] = [], current = ""
        for component in path.split(separator: "/").dropLast() {
            current += "/" + component
            if made.insert(current).inserted { above.append(current) }
        }
        return above
    }
}

/// One rlimit the child sets before dropping privileges.
public struct ResourceLimit: Sendable, Equatable {
    public var resource: Int32
    public var soft: UInt64
    public var hard: UInt64

    public init(_ resource: Int32, soft: UInt64, hard: UInt64) {
        self.resource = resource
        self.soft = soft
        self.hard = hard
    }

    public init(_ resource: __rlimit_resource, _ value: UInt64) {
        self.init(Int32(resource.rawValue), soft: value, hard: value)
    }
}

/// Everything the sandbox child needs to know; see `SandboxSpawner.spawn`.
public struct SandboxSpec: Sendable {
    /// An empty host directory; each child mounts its private root tmpfs there, inside its own mount namespace.
    public var rootDirectory: String
    public var mounts: [MountEntry]
    public var files: [SandboxFile]
    public var tmpfsBytes: UInt64
    public var tmpfsInodes: Int
    public var hostname: String = "sandbox"
    public var executable: String
    /// argv, including argv[0].
    public var arguments: [String]
    /// The whole environment ("KEY=value"); nothing is inherited from the daemon.
    public var environment: [String]
    public var workingDirectory: String = "/tmp"
    public var rlimits: [ResourceLimit]
    public var seccomp: SeccompProgram
    /// The unprivileged host uid (and gid) that root inside the sandbox maps to.
    public var hostID: UInt32
    /// Whether the program gets a side channel as fd 3.
    public var sideChannel: Bool
    /// A further id mapped into the user namespace (a zygote's run children run as `inside`, mapped to `host`).
    public var secondaryID: (inside: UInt32, host: UInt32)?
    /// An fd of the daemon's (e.g. a control socket) given to the program as fd 3 instead of a side channel.
    public var inheritedFD3: Int32?
    /// Whether the program gets a pipe it reads as fd 4 (the daemon writes it later; pre-started workers).
    public var inputFD4 = false
    /// Non-zero makes the program a zygote: it keeps these capabilities, and `seccomp` is installed without
    /// no_new_privs (see exec_child.h).
    public var zygoteKeepCaps: UInt64 = 0

    public init(
        rootDirectory: String, mounts: [MountEntry], files: [SandboxFile], tmpfsBytes: UInt64, tmpfsInodes: Int,
        executable: String, arguments: [String], environment: [String], rlimits: [ResourceLimit],
        seccomp: SeccompProgram, hostID: UInt32, sideChannel: Bool = false
    ) {
        self.rootDirectory = rootDirectory
        self.mounts = mounts
        self.files = files
        self.tmpfsBytes = tmpfsBytes
        self.tmpfsInodes = tmpfsInodes
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.rlimits = rlimits
        self.seccomp = seccomp
        self.hostID = hostID
        self.sideChannel = sideChannel
    }
}

/// Creates sandboxes: clone3 into fresh user/pid/mount/net/ipc/uts/cgroup namespaces, id maps written by the
/// parent, then the C child builds the root, drops every privilege and runs the program as pid 2 under a reaper.
public enum SandboxSpawner {
    /// Spawns a sandbox. `cgroupFD` (cgroup v2) places the child in its cgroup atomically with clone3;
    /// `beforeRelease` runs after the id maps are written and before the child may proceed (cgroup v1: add the pid
    /// to the run's cgroups here, so the child never runs unconstrained). Call from a long-lived thread: the
    /// child's parent-death signal fires when the spawning *thread* exits.
    public static func spawn(
        _ spec: SandboxSpec, cgroupFD: Int32? = nil, beforeRelease: (pid_t) throws -> Void = { _ in }
    ) throws -> SandboxProcess {
        precondition(!(spec.sideChannel && spec.inheritedFD3 != nil), "fd 3 is either a side channel or inherited")
        var pipes = try PipeSet(sideChannel: spec.sideChannel, input: spec.inputFD4)
        defer { pipes.closeAll() }
        let arena = CArena()
        defer { arena.free() }
        guard let caps = cap_init() else { throw SystemError("cap_init") }
        defer { cap_free(UnsafeMutableRawPointer(caps)) }

        var pidfd: Int32 = -1
        let pid: pid_t = spec.seccomp.bytes.withUnsafeBytes { filter in
            var config = makeConfig(spec, pipes: pipes, arena: arena, caps: caps, cgroupFD: cgroupFD)
            config.seccomp_filter = filter.baseAddress
            return execd_spawn(&config, &pidfd)
        }
        guard pid > 0 else { throw SystemError("clone3") }
        pipes.closeChildEnds()
        let process = SandboxProcess(pid: pid, pidfd: pidfd, pipes: &pipes)
        do {
            // Root inside maps to one unprivileged host id. setgroups stays "allow" (we are privileged), so the
            // child can drop the supplementary groups it inherited from the daemon.
            let extra = spec.secondaryID.map { "\($0.inside) \($0.host) 1\n" } ?? ""
            try writeControlFile("/proc/\(pid)/uid_map", "0 \(spec.hostID) 1\n" + extra)
            try writeControlFile("/proc/\(pid)/gid_map", "0 \(spec.hostID) 1\n" + extra)
            try beforeRelease(pid)
            guard writeAll(process.syncFD, [1]) else { throw SystemError("write(sync pipe)") }
            process.closeSync()
        } catch {
            process.kill()
            _ = process.reap()
            process.closeAll()
            throw error
        }
        return process
    }

    private static func makeConfig(
        _ spec: SandboxSpec, pipes: PipeSet, arena: CArena, caps: cap_t, cgroupFD: Int32?
    ) -> execd_child_config {
        var config = execd_child_config()
        config.root_dir = arena.string(spec.rootDirectory)
        config.root_tmpfs_data = arena.string("size=1m,nr_inodes=256,mode=0755")
        config.tmp_tmpfs_data = arena.string("size=\(spec.tmpfsBytes),nr_inodes=\(spec.tmpfsInodes),mode=1777")
        // Host paths under the root directory, and every directory above a target or a file made before it, so
        // the child only follows the list.
        let root = spec.rootDirectory
        var made = Set<String>()
        var plan: [execd_mount] = []
        func directory(_ path: String) -> execd_mount {
            execd_mount(kind: Int32(EXECD_MOUNT_DIR.rawValue), source: nil, target: arena.string(root + path))
        }
        for entry in spec.mounts {
            let (kind, source, target): (execd_mount_kind, String?, String) = switch entry {
            case .bindReadOnly(let source, let target): (EXECD_MOUNT_BIND_RO, source, target)
            case .device(let source, let target): (EXECD_MOUNT_DEVICE, source, target)
            case .symlink(let target, let text): (EXECD_MOUNT_SYMLINK, text, target)
            case .directory(let target): (EXECD_MOUNT_DIR, nil, target)
            }
            plan += SandboxFile.directories(above: target, made: &made).map(directory)
            if kind == EXECD_MOUNT_DIR { made.insert(target) }
            plan.append(execd_mount(kind: Int32(kind.rawValue), source: source.map(arena.string), target: arena.string(root + target)))
        }
        let mounts = arena.array(of: execd_mount.self, count: plan.count)
        for (i, entry) in plan.enumerated() { mounts[i] = entry }
        config.mounts = UnsafePointer(mounts)
        config.mount_count = Int32(plan.count)
        config.proc_dir = arena.string(root + "/proc")
        config.tmp_dir = arena.string(root + "/tmp")
        let entries = SandboxFile.withDirectories(spec.files)
        let files = arena.array(of: execd_file.self, count: entries.count)
        for (i, file) in entries.enumerated() {
            files[i] = execd_file(path: arena.string(root + file.path), data: arena.bytes(file.contents),
                                  length: UInt64(file.contents.count), mode: file.mode)
        }
        config.files = UnsafePointer(files)
        config.file_count = Int32(entries.count)
        config.hostname = arena.string(spec.hostname)
        config.exec_path = arena.string(spec.executable)
        config.argv = arena.stringArray(spec.arguments)
        config.envp = arena.stringArray(spec.environment)
        config.cwd = arena.string(spec.workingDirectory)
        precondition(spec.rlimits.count <= Int(EXECD_MAX_RLIMITS), "too many rlimits")
        withUnsafeMutableBytes(of: &config.rlimits) { raw in
            let limits = raw.bindMemory(to: execd_rlimit.self)
            for (i, limit) in spec.rlimits.enumerated() {
                limits[i] = execd_rlimit(resource: limit.resource, soft: limit.soft, hard: limit.hard)
            }
        }
        config.rlimit_count = Int32(spec.rlimits.count)
        config.seccomp_filter_length = UInt16(spec.seccomp.instructionCount)
        config.empty_caps = UnsafeMutableRawPointer(caps)
        config.last_cap = Int32(cap_max_bits()) - 1
        config.stdin_fd = pipes.stdin.read
        config.stdout_fd = pipes.stdout.write
        config.stderr_fd = pipes.stderr.write
        config.side_fd = pipes.side?.write ?? spec.inheritedFD3 ?? -1
        config.extra_fd = pipes.input?.read ?? -1
        precondition(config.extra_fd < 0 || config.side_fd >= 0, "fd 4 needs an fd 3")
        config.zygote_keep_caps = spec.zygoteKeepCaps
        config.sync_fd = pipes.sync.read
        config.report_fd = pipes.report.write
        config.cgroup_fd = cgroupFD ?? -1
        (config.arg_start, config.arg_end) = Self.argumentArea
        return config
    }

    /// This process's argument area, fields 48-49 of /proc/self/stat (read once: a fork has the same addresses).
    /// (0, 0) if it cannot be read; the reaper then leaves it as it is.
    static let argumentArea: (UInt64, UInt64) = {
        let fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return (0, 0) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        // The command name may contain spaces: fields are counted after its ")", where field 3 begins.
        guard n > 0, let close = buffer[0..<n].lastIndex(of: UInt8(ascii: ")")) else { return (0, 0) }
        let fields = buffer[(close + 1)..<n].split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\n") })
        guard fields.count > 46, let start = UInt64(String(decoding: fields[45], as: UTF8.self)),
              let end = UInt64(String(decoding: fields[46], as: UTF8.self))
        else { return (0, 0) }
        return (start, end)
    }()
}

/// Parent-side memory for the child's config; freed once clone3 has returned (the child has its own copy).
private final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    func string(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!
        allocations.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }

    func stringArray(_ strings: [String]) -> UnsafePointer<UnsafeMutablePointer<CChar>?> {
        let array = self.array(of: UnsafeMutablePointer<CChar>?.self, count: strings.count + 1)
        for (i, s) in strings.enumerated() { array[i] = UnsafeMutablePointer(mutating: string(s)) }
        array[strings.count] = nil
        return UnsafePointer(array)
    }

    func bytes(_ bytes: [UInt8]) -> UnsafeRawPointer {
        let p = malloc(max(bytes.count, 1))!
        bytes.withUnsafeBytes { if let base = $0.baseAddress { p.copyMemory(from: base, byteCount: $0.count) } }
        allocations.append(p)
        return UnsafeRawPointer(p)
    }

    func array<T>(of type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = malloc(max(count, 1) * MemoryLayout<T>.stride)!  // malloc's alignment suits every C type here
        allocations.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    func free() {
        for p in allocations { Glibc.free(p) }
        allocations.removeAll()
    }
}
