import CExecChild

/// The step of the sandbox child's setup that failed; mirrors `enum execd_stage` in exec_child.h.
public enum ChildStage: Int32, Sendable, CustomStringConvertible {
    case sync = 1, signals, setIDs, deathSignal, mountPrivate, mountRoot, mountPlan, mountProc, mountTmp
    case writeFiles, pivotRoot, rootReadOnly, hostname, rlimits, fds, capabilities, noNewPrivs, seccomp
    case fork, chdir, exec

    public var description: String {
        switch self {
        case .sync: "waiting for the parent"
        case .signals: "resetting signals"
        case .setIDs: "setting ids in the user namespace"
        case .deathSignal: "setting the parent-death signal"
        case .mountPrivate: "making mounts private"
        case .mountRoot: "mounting the root tmpfs"
        case .mountPlan: "applying the mount plan"
        case .mountProc: "mounting /proc"
        case .mountTmp: "mounting /tmp"
        case .writeFiles: "writing files into /tmp"
        case .pivotRoot: "pivot_root"
        case .rootReadOnly: "making the root read-only"
        case .hostname: "setting the hostname"
        case .rlimits: "setting rlimits"
        case .fds: "arranging file descriptors"
        case .capabilities: "dropping capabilities"
        case .noNewPrivs: "setting no_new_privs"
        case .seccomp: "installing the seccomp filter"
        case .fork: "forking the program"
        case .chdir: "changing directory"
        case .exec: "executing the interpreter"
        }
    }
}

/// The sandbox child reported that its setup failed at `stage` with `errno`.
public struct ChildSetupError: Error, CustomStringConvertible, Sendable {
    public let stage: ChildStage?
    public let rawStage: Int32
    public let errno: Int32

    public init(rawStage: Int32, errno: Int32) {
        self.rawStage = rawStage
        self.stage = ChildStage(rawValue: rawStage)
        self.errno = errno
    }

    public var description: String {
        let what = stage.map(\.description) ?? "stage \(rawStage)"
        return "sandbox setup failed while \(what): \(SystemError("", errno: errno).description.dropFirst(2))"
    }
}
