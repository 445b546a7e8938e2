import CExecChild
import Glibc

/// The daemon's end of a SOCK_SEQPACKET pair: whole messages, with fds attached (SCM_RIGHTS).
public final class ControlSocket: @unchecked Sendable {
    public private(set) var fd: Int32

    /// A connected pair: the daemon keeps the returned socket, the other end goes to the child.
    public static func pair() throws -> (ControlSocket, childEnd: Int32) {
        var fds: [Int32] = [-1, -1]
        guard execd_socketpair_seqpacket(&fds) == 0 else { throw SystemError("socketpair") }
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
    /// throws ETIMEDOUT when nothing arrived in time.
    public func receive(timeout: Duration? = nil) throws -> (message: [UInt8], fds: [Int32])? {
        if let timeout {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            let ready = retryingEINTR { poll(&p, 1, ms) }
            guard ready > 0 else { throw SystemError("receive(control)", errno: ready == 0 ? ETIMEDOUT : errno) }
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var fds = [Int32](repeating: -1, count: 16)
        var count: Int32 = 0
        let n = buffer.withUnsafeMutableBytes { execd_recv_with_fds(fd, $0.baseAddress, $0.count, &fds, 16, &count, 1) }
        guard n >= 0 else { throw SystemError("recvmsg(control)") }
        let received = Array(fds[0..<Int(count)])
        if n == 0 && received.isEmpty { return nil }
        return (Array(buffer[0..<n]), received)
    }
}

/// The host pid behind a pidfd (from /proc/self/fdinfo, which translates it into our pid namespace).
public func hostPID(ofPidfd pidfd: Int32) throws -> pid_t {
    let path = "/proc/self/fdinfo/\(pidfd)"
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemError("open", path: path) }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 1024)
    let n = read(fd, &buffer, buffer.count)
    guard n > 0 else { throw SystemError("read", path: path) }
    for line in String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n") where line.hasPrefix("Pid:") {
        if let pid = pid_t(line.dropFirst(4).filter { $0 != " " && $0 != "\t" }), pid > 0 { return pid }
    }
    throw SystemError("no live Pid in", path: path, errno: ESRCH)
}

/// Sets an rlimit of another process (root only).
public func setResourceLimit(pid: pid_t, _ limit: ResourceLimit) throws {
    guard execd_prlimit(pid, limit.resource, limit.soft, limit.hard) == 0 else { throw SystemError("prlimit(\(limit.resource))") }
}
