import CExecChild
import CSeccomp
import Glibc

/// The seccomp policy, kept as data: every denied system call with the reason it is denied.
///
/// Default allow with a deny list (like Docker's and systemd-nspawn's knowingly-excluded lists): interpreters
/// need a large and changing set of ordinary syscalls, while the dangerous ones are few and well known. Calls from
/// a non-native architecture (i386, x32) kill the process, so the deny list cannot be bypassed through another ABI.
public struct SeccompPolicy: Sendable {
    /// What a matching call gets.
    public enum Action: Sendable, Equatable {
        case errno(Int32)
        case killProcess
    }

    /// A comparison on one argument (libseccomp's `scmp_arg_cmp`).
    public enum ArgumentMatch: Sendable, Equatable {
        case notEqual(argument: UInt32, value: UInt64)
        case maskedEqual(argument: UInt32, mask: UInt64, value: UInt64)
    }

    public struct Rule: Sendable {
        public let syscall: String
        public let action: Action
        public let match: ArgumentMatch?
        public let reason: String
    }

    public var rules: [Rule]

    public init(rules: [Rule]) { self.rules = rules }

    /// The policy every sandboxed program runs under.
    public static let standard = SeccompPolicy(rules: denyList)

    /// This policy without the rules for `syscalls`. A zygote runs under `excluding(x)` and each of its children
    /// installs `only(x)` on top: filters stack, the strictest answer wins, so the child ends up under the whole
    /// policy while a small filter is all it has to install.
    public func excluding(_ syscalls: Set<String>) -> SeccompPolicy {
        SeccompPolicy(rules: rules.filter { !syscalls.contains($0.syscall) })
    }

    /// Only this policy's rules for `syscalls` (see `excluding`).
    public func only(_ syscalls: Set<String>) -> SeccompPolicy {
        SeccompPolicy(rules: rules.filter { syscalls.contains($0.syscall) })
    }

    /// Compiles the policy with libseccomp and exports the BPF program the child installs.
    public func compile() throws -> SeccompProgram {
        guard let ctx = seccomp_init(SCMP_ACT_ALLOW) else { throw SystemError("seccomp_init", errno: ENOMEM) }
        defer { seccomp_release(ctx) }
        var rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)
        guard rc == 0 else { throw SystemError("seccomp_attr_set(ACT_BADARCH)", errno: -rc) }
        for rule in rules {
            let number = seccomp_syscall_resolve_name(rule.syscall)
            // Names this architecture does not have need no rule (libseccomp reports them as __NR_SCMP_ERROR).
            guard number != __NR_SCMP_ERROR else { continue }
            let action: UInt32 = switch rule.action {
            case .errno(let code): 0x0005_0000 | (UInt32(code) & 0xffff)  // SCMP_ACT_ERRNO
            case .killProcess: SCMP_ACT_KILL_PROCESS
            }
            var comparisons: [scmp_arg_cmp] = []
            switch rule.match {
            case .none: break
            case .notEqual(let argument, let value):
                comparisons.append(scmp_arg_cmp(arg: argument, op: SCMP_CMP_NE, datum_a: value, datum_b: 0))
            case .maskedEqual(let argument, let mask, let value):
                comparisons.append(scmp_arg_cmp(arg: argument, op: SCMP_CMP_MASKED_EQ, datum_a: mask, datum_b: value))
            }
            rc = seccomp_rule_add_array(ctx, action, number, UInt32(comparisons.count), comparisons)
            guard rc == 0 else { throw SystemError("seccomp_rule_add(\(rule.syscall))", errno: -rc) }
        }
        return try SeccompProgram(exporting: ctx)
    }
}

/// A compiled BPF program (an array of 8-byte `struct sock_filter`), ready for `PR_SET_SECCOMP`.
public struct SeccompProgram: Sendable {
    public let bytes: [UInt8]
    public var instructionCount: Int { bytes.count / 8 }

    init(exporting ctx: scmp_filter_ctx) throws {
        // libseccomp 2.5 exports only to an fd; a memfd keeps it off the filesystem.
        let fd = execd_memfd("execd-seccomp")
        guard fd >= 0 else { throw SystemError("memfd_create") }
        defer { close(fd) }
        let rc = seccomp_export_bpf(ctx, fd)
        guard rc == 0 else { throw SystemError("seccomp_export_bpf", errno: -rc) }
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0, size % 8 == 0, size / 8 <= Int(UInt16.max) else {
            throw SystemError("seccomp_export_bpf produced \(Int(size)) bytes", errno: EINVAL)
        }
        var buffer = [UInt8](repeating: 0, count: Int(size))
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Int(size), 0) }
        guard n == size else { throw SystemError("pread(seccomp program)") }
        bytes = buffer
    }
}

private let namespaceCloneFlags: [(String, UInt64)] = [
    ("CLONE_NEWNS", 0x0002_0000), ("CLONE_NEWCGROUP", 0x0200_0000), ("CLONE_NEWUTS", 0x0400_0000),
    ("CLONE_NEWIPC", 0x0800_0000), ("CLONE_NEWUSER", 0x1000_0000), ("CLONE_NEWPID", 0x2000_0000),
    ("CLONE_NEWNET", 0x4000_0000),
]

private func deny(_ names: [String], _ reason: String) -> [SeccompPolicy.Rule] {
    names.map { SeccompPolicy.Rule(syscall: $0, action: .errno(EPERM), match: nil, reason: reason) }
}

private let denyList: [SeccompPolicy.Rule] =
    deny(["ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "process_madvise", "kcmp"],
         "reading or changing another process's memory or fds")
    + deny(["mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
            "fsmount", "fspick", "mount_setattr"],
           "changing the filesystem layout; the sandbox's mounts are final")
    + deny(["unshare", "setns"], "new or other namespaces are attack surface (user namespaces above all)")
    + namespaceCloneFlags.map { name, flag in
        SeccompPolicy.Rule(syscall: "clone", action: .errno(EPERM),
                           match: .maskedEqual(argument: 0, mask: flag, value: flag),
                           reason: "clone with \(name) would create a namespace")
    }
    + [SeccompPolicy.Rule(syscall: "clone3", action: .errno(ENOSYS), match: nil,
                          reason: "flags live in memory where BPF cannot check them; ENOSYS makes glibc and node fall back to clone")]
    + deny(["mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr"],
           "POSIX message queues outlive a run in a warm slot's IPC namespace (System V IPC objects are removed between runs)")
    + deny(["bpf"], "eBPF programs and maps: kernel attack surface")
    + deny(["perf_event_open"], "performance counters leak side channels and have a long CVE history")
    + deny(["keyctl", "add_key", "request_key"], "the kernel keyring is not namespaced")
    + deny(["userfaultfd"], "used to win kernel races in exploits")
    + deny(["io_uring_setup", "io_uring_enter", "io_uring_register"], "bypasses seccomp for the I/O it performs")
    + deny(["kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
            "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "vhangup", "nfsservctl",
            "lookup_dcookie", "uselib", "ustat", "sysfs", "_sysctl", "iopl", "ioperm"],
           "host administration; never needed by a program")
    + deny(["settimeofday", "clock_settime", "clock_adjtime", "adjtimex"], "the clock is not namespaced")
    + deny(["sethostname", "setdomainname"], "the sandbox's identity is fixed")
    + deny(["open_by_handle_at", "name_to_handle_at"], "file handles bypass the mount namespace")
    + deny(["fanotify_init"], "filesystem-wide event monitoring")
    + deny(["mbind", "set_mempolicy", "migrate_pages", "move_pages"], "NUMA placement affects other tenants")
    + [SeccompPolicy.Rule(syscall: "socket", action: .errno(EPERM), match: .notEqual(argument: 0, value: UInt64(AF_UNIX)),
                          reason: "only AF_UNIX sockets: no network, netlink, packet or vsock"),
       SeccompPolicy.Rule(syscall: "ioctl", action: .errno(EPERM),
                          match: .maskedEqual(argument: 1, mask: 0xffff_ffff, value: UInt64(TIOCSTI)),
                          reason: "TIOCSTI pushes input into a terminal"),
       SeccompPolicy.Rule(syscall: "ioctl", action: .errno(EPERM),
                          match: .maskedEqual(argument: 1, mask: 0xffff_ffff, value: UInt64(TIOCLINUX)),
                          reason: "TIOCLINUX can inject console input")]
