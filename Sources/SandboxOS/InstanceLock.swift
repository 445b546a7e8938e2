import Glibc

/// Makes sure only one execd uses a cgroup subtree: two daemons sharing one would kill each other's sandboxes
/// when cleaning up stale groups. Held (flock) for the life of the process; the kernel drops it on exit.
public final class InstanceLock: Sendable {
    public let path: String
    private let fd: Int32

    /// Takes the lock for `name` without waiting; throws EWOULDBLOCK when another process holds it.
    public init(name: String, directory: String = "/run/lock") throws {
        precondition(!name.isEmpty && !name.contains("/"), "lock names are single path components")
        mkdir(directory, 0o755)
        path = "\(directory)/execd-\(name).lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("open", path: path) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let error = SystemError("flock (another execd uses this cgroup subtree)", path: path)
            close(fd)  // before self.fd is set, so deinit never closes it again
            throw error
        }
        self.fd = fd
    }

    deinit { close(fd) }
}
