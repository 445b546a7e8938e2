import Glibc

/// One step of building the sandbox's root, executed in order by the child.
public enum MountEntry: Sendable, Equatable {
    /// Recursive bind of a host path, read-only, nosuid, nodev.
    case bindReadOnly(source: String, target: String)
    /// Bind of a host device node; writable (for /dev/null), nosuid, noexec.
    case device(source: String, target: String)
    /// A symlink at `target` whose text is `text`.
    case symlink(target: String, text: String)
    /// An empty directory.
    case directory(String)
}

/// Builds the mount plan of a sandbox root from the host.
public enum MountPlan {
    /// The development default: read-only binds of the host's system directories, mirrored as they are (Debian 12
    /// is merged-/usr, so /bin, /lib, /lib64 and /sbin become symlinks into /usr), plus a minimal /dev.
    public static let defaultHostPaths = ["/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc"]

    public static func host(paths: [String] = defaultHostPaths) -> [MountEntry] {
        var plan: [MountEntry] = []
        for path in paths {
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }  // absent on this host: nothing to mirror
            if (st.st_mode & S_IFMT) == S_IFLNK {
                if let text = readLink(path) { plan.append(.symlink(target: path, text: text)) }
            } else {
                plan.append(.bindReadOnly(source: path, target: path))
            }
        }
        return plan + devices
    }

    /// /dev with the four harmless character devices and the usual fd symlinks; nothing else.
    public static let devices: [MountEntry] =
        [.directory("/dev")]
        + ["null", "zero", "random", "urandom"].map { .device(source: "/dev/\($0)", target: "/dev/\($0)") }
        + [.symlink(target: "/dev/fd", text: "/proc/self/fd"),
           .symlink(target: "/dev/stdin", text: "/proc/self/fd/0"),
           .symlink(target: "/dev/stdout", text: "/proc/self/fd/1"),
           .symlink(target: "/dev/stderr", text: "/proc/self/fd/2")]

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, Int(PATH_MAX))
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
