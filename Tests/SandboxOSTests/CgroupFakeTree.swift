import Foundation
import Glibc
import Testing

@testable import SandboxOS

/// A fake cgroup file system in a temporary directory (like firecracker's MockCgroupFs): "mkdir"
/// populates the directory with the interface files the kernel would create, "rmdir" removes those
/// files first but, like the kernel, refuses a directory that still has subdirectories.
final class CgroupFakeTree: Sendable {
    let root: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/execd-cgroup-test-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw CgroupError.system(operation: "mkdtemp", path: "", errno: errno)
        }
        root = String(cString: made)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Interface files of a fresh v2 cgroup with every controller we use enabled.
    static let v2Files: [String: String] = [
        "cgroup.controllers": "cpu memory pids\n",
        "cgroup.subtree_control": "",
        "cgroup.procs": "",
        "cgroup.events": "populated 0\nfrozen 0\n",
        "cgroup.kill": "",
        "memory.max": "max\n",
        "memory.swap.max": "max\n",
        "memory.oom.group": "0\n",
        "memory.peak": "0\n",
        "memory.current": "0\n",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
        "pids.max": "max\n",
        "cpu.max": "max 100000\n",
        "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    ]

    /// Directory operations that behave like cgroupfs for `files`.
    func ops(files: [String: String] = CgroupFakeTree.v2Files) -> CgroupDirectoryOps {
        CgroupDirectoryOps(
            makeDirectory: { path in
                if mkdir(path, 0o755) != 0 { throw CgroupError.system(operation: "mkdir", path: path, errno: errno) }
                for (name, content) in files { try CgroupFakeTree.write(path + "/" + name, content) }
            },
            removeDirectory: { path in
                let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                for entry in entries {
                    var isDirectory: ObjCBool = false
                    if FileManager.default.fileExists(atPath: path + "/" + entry, isDirectory: &isDirectory),
                        !isDirectory.boolValue
                    {
                        unlink(path + "/" + entry)
                    }
                }
                if rmdir(path) != 0 { throw CgroupError.system(operation: "rmdir", path: path, errno: errno) }
            }
        )
    }

    /// Creates `relative` (and parents) as a cgroup with `files`.
    func makeGroup(_ relative: String, files: [String: String] = CgroupFakeTree.v2Files) throws {
        let path = root + "/" + relative
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, content) in files { try Self.write(path + "/" + name, content) }
    }

    func read(_ relative: String) throws -> String {
        try String(contentsOfFile: root + "/" + relative, encoding: .utf8)
    }

    func write(_ relative: String, _ content: String) throws {
        try Self.write(root + "/" + relative, content)
    }

    func exists(_ relative: String) -> Bool {
        FileManager.default.fileExists(atPath: root + "/" + relative)
    }

    /// Writes a file that stands for /proc/self/mountinfo or /proc/self/cgroup; returns its path.
    func writeProcFile(_ name: String, _ content: String) throws -> String {
        try Self.write(root + "/" + name, content)
        return root + "/" + name
    }

    static func write(_ path: String, _ content: String) throws {
        try content.write(toFile: path, atomically: false, encoding: .utf8)
    }
}
