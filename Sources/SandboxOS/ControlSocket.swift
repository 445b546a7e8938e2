import CExecChild
import Glibc

/// The daemon's end of a SOCK_SEQPACKET pair: whole messages, with fds attached (SCM_RIGHTS).
public final class ControlSocket: @unchecked Sendable {
    public private(set) var fd: Int32

    /// A connected pair: the daemon keeps the returned socket, the other end goes to the child.
    public static func pair() throws -> (ControlSocket, childEnd: Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SystemError("socketpair")
        }
        return (ControlSocket(fd: fds[0]), fds[1])
    }

    /// Takes ownership of a connected SOCK_SEQPACKET socket.
    public init(fd: Int32) { self.fd = fd }

    deinit { close() }

    public func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }

    public func send(_ bytes: [UInt8], fds: [Int32] = []) throws {
        let n = bytes.withUnsafeBytes { buffer in
            fds.withUnsafeBufferPointer { execd_send_with_fds(fd, buffer.baseAddress, buffer.count, $0.baseAddress, Int32(fds.count)) }
        }
        guard n == bytes.count else { throw SystemError("sendmsg(control)") }
    }

    /// The next message and its fds (the caller owns them), or nil at EOF. Blocks unless `timeout` is given;
    /// throws ETIMEDOUT when nothing arrived in time (at once for `.zero`, which does not poll first).
    public func receive(timeout: Duration? = nil) throws -> (message: [UInt8], fds: [Int32])? {
        var flags = Int32(MSG_CMSG_CLOEXEC)
        if timeout == .zero {
            flags |= Int32(MSG_DONTWAIT)
        } else if let timeout {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            let ready = retryingEINTR { poll(&p, 1, ms) }
            guard ready > 0 else { throw SystemError("receive(control)", errno: ready == 0 ? ETIMEDOUT : errno) }
        }
        // Every message on these sockets is a short report; one longer than this is cut (SOCK_SEQPACKET).
        return try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 512) { buffer in
            try withUnsafeTemporaryAllocation(of: Int32.self, capacity: 16) { fds in
                var count: Int32 = 0
                let n = execd_recv_with_fds(fd, buffer.baseAddress, buffer.count, fds.baseAddress, 16, &count, flags)
                if n < 0 && errno == EAGAIN { throw SystemError("receive(control)", errno: ETIMEDOUT) }
                guard n >= 0 else { throw SystemError("recvmsg(control)") }
                let received = Array(fds[0..<Int(count)])
                if n == 0 && received.isEmpty { return nil }
                return (Array(buffer[0..<n]), received)
            }
        }
    }
}

/// The pid of a pidfd's process in our pid namespace (`Pid:` in its fdinfo).
public func hostPID(ofPidfd pidfd: Int32) throws -> pid_t {
    let path = "/proc/self/fdinfo/\(pidfd)"
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemError("open", path: path) }
    defer { close(fd) }
    // "Pid:\t<pid>", -1 once the process is gone (and then no number).
    let pid = withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 1) { buffer -> UInt64? in
        let n = read(fd, buffer.baseAddress, buffer.count)
        return n > 0 ? CgroupFormat.key("Pid:", in: UnsafeRawBufferPointer(rebasing: buffer[0..<n])) : nil
    }.flatMap { pid_t(exactly: $0) }
    guard let pid, pid > 0 else { throw SystemError("no live Pid in", path: path, errno: ESRCH) }
    return pid
}

/// Sets an rlimit of another process (root only).
public func setResourceLimit(pid: pid_t, _ limit: ResourceLimit) throws {
    guard execd_prlimit(pid, limit.resource, limit.soft, limit.hard) == 0 else { throw SystemError("prlimit(\(limit.resource))") }
}
