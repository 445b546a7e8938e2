import Glibc

/// A failed system call: what was attempted, on what, and the errno. SandboxOS never logs; callers do.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    public let operation: String
    public let path: String?
    public let errno: Int32

    public init(_ operation: String, path: String? = nil, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String {
        let target = path.map { " \($0)" } ?? ""
        return "\(operation)\(target): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Retries a system call interrupted by a signal, as swift-nio's `System.swift` does.
@inline(__always)
func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> T {
    while true {
        let result = body()
        if result == -1 && errno == EINTR { continue }
        return result
    }
}

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { buffer in
            retryingEINTR { write(fd, buffer.baseAddress! + offset, buffer.count - offset) }
        }
        if n <= 0 { return false }
        offset += n
    }
    return true
}

/// Writes a short string to a file that already exists (proc and cgroup control files).
func writeControlFile(_ path: String, _ text: String) throws {
    let fd = retryingEINTR { open(path, O_WRONLY | O_CLOEXEC) }
    guard fd >= 0 else { throw SystemError("open", path: path) }
    defer { close(fd) }
    guard writeAll(fd, Array(text.utf8)) else { throw SystemError("write", path: path) }
}
