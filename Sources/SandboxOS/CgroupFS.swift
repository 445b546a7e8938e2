import Glibc

/// Directory operations that differ between the kernel's cgroupfs and a fake tree in a temporary
/// directory: the kernel populates a new cgroup with interface files on `mkdir` and removes an empty
/// cgroup (which still lists those files) with `rmdir`; a plain directory does neither.
/// Production always uses `.kernel`; tests substitute a fake (like firecracker's `MockCgroupFs`).
public struct CgroupDirectoryOps: Sendable {
    /// Creates one cgroup directory; must throw `CgroupError.system(operation: "mkdir", ..., errno: EEXIST)`
    /// if it already exists.
    public var makeDirectory: @Sendable (_ path: String) throws -> Void
    /// Removes one (empty) cgroup directory.
    public var removeDirectory: @Sendable (_ path: String) throws -> Void

    /// Creates a set of operations from two closures.
    public init(
        makeDirectory: @escaping @Sendable (String) throws -> Void,
        removeDirectory: @escaping @Sendable (String) throws -> Void
    ) {
        self.makeDirectory = makeDirectory
        self.removeDirectory = removeDirectory
    }

    /// The real thing: mkdir(2) with mode 0755 and rmdir(2).
    public static let kernel = CgroupDirectoryOps(
        makeDirectory: { try CgroupFS.makeDirectory($0) },
        removeDirectory: { try CgroupFS.removeDirectory($0) }
    )
}

/// Thin EINTR-retrying wrappers over the few file system calls the cgroup layer needs. Every failure
/// becomes a `CgroupError.system` carrying the operation, the path and errno.
enum CgroupFS {
    /// Reads a whole (small) file.
    static func read(_ path: String) throws -> String {
        let fd = try retrying("open", path) { Glibc.open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try retrying("read", path) {
                chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads a control file through an fd opened earlier (pread from 0 regenerates a cgroup file's contents).
    static func read(fd: Int32, path: String) throws -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var offset = 0
        while true {
            let n = try retrying("pread", path) {
                chunk.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            }
            bytes.append(contentsOf: chunk[0..<n])
            offset += n
            // Every control file read through a cached fd is one record (a number, or a few lines printed at once),
            // which the kernel returns whole: a short read is its end, with no second call to find it.
            if n < chunk.count { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Parses a small control file read through an fd opened earlier, straight from a buffer on the stack: these are
    /// read on every run, and the general path's arrays and strings cost more than the read. Contents that fill
    /// `capacity` take the general path.
    static func parse<T>(fd: Int32, path: String, capacity: Int = 256, _ parse: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        try withUnsafeTemporaryAllocation(byteCount: capacity, alignment: 1) { buffer in
            let n = try retrying("pread", path) { Glibc.pread(fd, buffer.baseAddress, capacity, 0) }
            if n < capacity { return try parse(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
            return try Array(try read(fd: fd, path: path).utf8).withUnsafeBytes(parse)
        }
    }

    /// Writes a control file through an fd opened earlier.
    static func write(fd: Int32, path: String, _ value: String) throws {
        let bytes = Array(value.utf8)
        let n = try retrying("write", path) { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
        if n != bytes.count { throw CgroupError.system(operation: "write (short)", path: path, errno: EIO) }
    }

    static func open(_ path: String, flags: Int32) throws -> Int32 {
        try retrying("open", path) { Glibc.open(path, flags | O_CLOEXEC) }
    }

    /// Writes `value` with a single write(2), as cgroupfs requires. No O_CREAT: a missing interface
    /// file means a missing controller or feature and must surface as ENOENT.
    static func write(_ path: String, _ value: String) throws {
        let fd = try retrying("open", path) { Glibc.open(path, O_WRONLY | O_TRUNC | O_CLOEXEC) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let n = try retrying("write", path) { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
        if n != bytes.count { throw CgroupError.system(operation: "write (short)", path: path, errno: EIO) }
    }

    static func makeDirectory(_ path: String) throws {
        _ = try retrying("mkdir", path) { mkdir(path, 0o755) }
    }

    static func removeDirectory(_ path: String) throws {
        _ = try retrying("rmdir", path) { rmdir(path) }
    }

    /// Opens a directory as O_PATH for `clone3(CLONE_INTO_CGROUP)`.
    static func openPath(_ path: String) throws -> Int32 {
        try retrying("open(O_PATH)", path) { Glibc.open(path, oPath | O_DIRECTORY | O_CLOEXEC) }
    }

    /// O_PATH from <asm-generic/fcntl.h> (x86_64 and aarch64); Glibc exports it only under _GNU_SOURCE.
    static let oPath: Int32 = 0o10000000

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Names of the subdirectories of `path` (no "." or ".."), unsorted.
    static func subdirectories(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw CgroupError.system(operation: "opendir", path: path, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            var isDirectory = Int32(entry.pointee.d_type) == Int32(DT_DIR)
            if Int32(entry.pointee.d_type) == Int32(DT_UNKNOWN) {
                var info = stat()
                isDirectory = lstat(path + "/" + name, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
            }
            if isDirectory { names.append(name) }
        }
        return names
    }

    /// Sends `signal` to `pid`; a process that is already gone (ESRCH) is not an error.
    static func kill(_ pid: pid_t, _ signal: Int32) throws {
        if Glibc.kill(pid, signal) != 0 && errno != ESRCH {
            throw CgroupError.system(operation: "kill(\(pid))", path: "", errno: errno)
        }
    }

    /// Sleeps for `duration`, resuming after signal interruptions (a nap in a polling loop).
    static func nap(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    /// Runs `body` until it does not fail with EINTR; throws on any other failure (result < 0).
    @discardableResult
    static func retrying<T: BinaryInteger>(_ operation: String, _ path: String, _ body: () -> T) throws -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            if errno == EINTR { continue }
            throw CgroupError.system(operation: operation, path: path, errno: errno)
        }
    }
}

/// Parsers for the text formats of cgroup interface files (and the kernel's other files in those formats).
enum CgroupFormat {
    /// Parses "flat keyed" files (`key value` per line: cpu.stat, memory.events, memory.oom_control,
    /// pids.events). Lines that are not exactly two fields with a numeric value are skipped.
    static func flatKeyed(_ content: String) -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        for line in content.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count == 2, let value = UInt64(fields[1]) { result[String(fields[0])] = value }
        }
        return result
    }

    /// Parses a single-number file such as cpuacct.usage or memory.peak.
    static func number(_ content: String, path: String) throws -> UInt64 {
        guard let value = Array(content.utf8).withUnsafeBytes(number) else { throw CgroupError.malformed(path: path, content: content) }
        return value
    }

    /// The number a single-number file holds (blanks around it allowed), or nil.
    static func number(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        var index = 0
        while index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\n") { index += 1 }
        guard let (value, end) = digits(bytes, from: index) else { return nil }
        return end == bytes.count || bytes[end] == UInt8(ascii: " ") || bytes[end] == UInt8(ascii: "\n") ? value : nil
    }

    /// Reads a key of a flat keyed file, throwing if it is absent.
    static func key(_ key: String, in content: String, path: String) throws -> UInt64 {
        guard let value = Array(content.utf8).withUnsafeBytes({ Self.key(key, in: $0) }) else {
            throw CgroupError.malformed(path: path, content: content)
        }
        return value
    }

    /// The value of the line `<key> <number>` of a flat keyed file, or nil. Blanks (spaces or tabs) separate the two,
    /// so the kernel's other `key value` files read the same way (`Pid:\t12` in /proc's fdinfo).
    static func key(_ key: String, in bytes: UnsafeRawBufferPointer) -> UInt64? {
        let key = Array(key.utf8)
        func isBlank(_ index: Int) -> Bool { bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") }
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
            var valueStart = start + key.count
            if valueStart < end, isBlank(valueStart), zip(key.indices, start..<valueStart).allSatisfy({ key[$0] == bytes[$1] }) {
                while valueStart < end, isBlank(valueStart) { valueStart += 1 }
                if let (value, valueEnd) = digits(bytes, from: valueStart), valueEnd == end { return value }
            }
            start = end + 1
        }
        return nil
    }

    /// The pids of a cgroup.procs file.
    static func pids(_ bytes: UnsafeRawBufferPointer) -> [pid_t] {
        var pids: [pid_t] = []
        var index = 0
        while index < bytes.count {
            if let (value, end) = digits(bytes, from: index) {
                if let pid = pid_t(exactly: value) { pids.append(pid) }
                index = end
            } else {
                index += 1
            }
        }
        return pids
    }

    /// The decimal number starting at `start` and the index after it, or nil if there is no digit there (or it
    /// overflows).
    private static func digits(_ bytes: UnsafeRawBufferPointer, from start: Int) -> (UInt64, Int)? {
        var value: UInt64 = 0
        var index = start
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(bytes[index] - UInt8(ascii: "0")))
            if overflow1 || overflow2 { return nil }
            value = sum
            index += 1
        }
        return index > start ? (value, index) : nil
    }

    /// Parses a whitespace-separated list (cgroup.controllers, cgroup.subtree_control, cgroup.procs).
    static func words(_ content: String) -> [String] {
        content.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
    }

    /// Parses cgroup.procs into pids.
    static func pids(_ content: String) -> [pid_t] {
        Array(content.utf8).withUnsafeBytes(pids)
    }
}
