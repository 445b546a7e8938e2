import ExecProtocol

/// The resolved limits of one run, in units, not raw numbers.
public struct RunLimits: Sendable, Equatable, Codable {
    public var cpuTime: Duration
    public var wallTime: Duration
    public var memoryBytes: UInt64
    public var maxProcesses: Int
    public var outputBytes: Int
    public var fileSizeBytes: UInt64
    public var openFiles: Int
    public var tmpfsBytes: UInt64
    public var cpuQuotaMillicores: Int

    public init(
        cpuTime: Duration, wallTime: Duration, memoryBytes: UInt64, maxProcesses: Int, outputBytes: Int,
        fileSizeBytes: UInt64, openFiles: Int, tmpfsBytes: UInt64, cpuQuotaMillicores: Int
    ) {
        self.cpuTime = cpuTime
        self.wallTime = wallTime
        self.memoryBytes = memoryBytes
        self.maxProcesses = maxProcesses
        self.outputBytes = outputBytes
        self.fileSizeBytes = fileSizeBytes
        self.openFiles = openFiles
        self.tmpfsBytes = tmpfsBytes
        self.cpuQuotaMillicores = cpuQuotaMillicores
    }

    /// Defaults for a request that names no limits.
    public static let defaults = RunLimits(
        cpuTime: .seconds(2), wallTime: .seconds(5), memoryBytes: 256 << 20, maxProcesses: 64,
        outputBytes: 1 << 20, fileSizeBytes: 16 << 20, openFiles: 256, tmpfsBytes: 64 << 20,
        cpuQuotaMillicores: 1000)

    /// The most a request may ask for.
    public static let maxima = RunLimits(
        cpuTime: .seconds(30), wallTime: .seconds(120), memoryBytes: 4 << 30, maxProcesses: 1024,
        outputBytes: 64 << 20, fileSizeBytes: 1 << 30, openFiles: 4096, tmpfsBytes: 1 << 30,
        cpuQuotaMillicores: 4000)

    /// The wire form (milliseconds and bytes).
    public var wire: Execd_V1_Limits {
        var w = Execd_V1_Limits()
        w.cpuTimeMs = UInt64(cpuTime.milliseconds)
        w.wallTimeMs = UInt64(wallTime.milliseconds)
        w.memoryBytes = memoryBytes
        w.maxProcesses = UInt32(maxProcesses)
        w.outputBytes = UInt64(outputBytes)
        w.fileSizeBytes = fileSizeBytes
        w.openFiles = UInt32(openFiles)
        w.tmpfsBytes = tmpfsBytes
        w.cpuQuotaMillicores = UInt32(cpuQuotaMillicores)
        return w
    }

    /// Applies a request's limits over `defaults`, rejecting any above `maxima` with a message naming the field.
    /// A request that sets a CPU limit but no wall limit gets a wall limit of twice the CPU limit plus a second,
    /// so a sleeping program still ends.
    public static func resolve(_ w: Execd_V1_Limits, defaults: RunLimits, maxima: RunLimits) throws(LimitError) -> RunLimits {
        func pick<T: BinaryInteger>(_ name: String, _ value: some BinaryInteger, _ def: T, _ max: T, unit: String) throws(LimitError) -> T {
            if value == 0 { return def }
            guard value <= max else { throw LimitError(field: name, requested: "\(value)\(unit)", maximum: "\(max)\(unit)") }
            return T(value)
        }
        var r = defaults
        r.cpuTime = .milliseconds(try pick("cpu_time_ms", w.cpuTimeMs, defaults.cpuTime.milliseconds, maxima.cpuTime.milliseconds, unit: " ms"))
        let defaultWall = w.cpuTimeMs == 0 ? defaults.wallTime : r.cpuTime * 2 + .seconds(1)
        r.wallTime = .milliseconds(try pick("wall_time_ms", w.wallTimeMs, min(defaultWall, maxima.wallTime).milliseconds, maxima.wallTime.milliseconds, unit: " ms"))
        r.memoryBytes = try pick("memory_bytes", w.memoryBytes, defaults.memoryBytes, maxima.memoryBytes, unit: " bytes")
        r.maxProcesses = try pick("max_processes", w.maxProcesses, defaults.maxProcesses, maxima.maxProcesses, unit: "")
        r.outputBytes = try pick("output_bytes", w.outputBytes, defaults.outputBytes, maxima.outputBytes, unit: " bytes")
        r.fileSizeBytes = try pick("file_size_bytes", w.fileSizeBytes, defaults.fileSizeBytes, maxima.fileSizeBytes, unit: " bytes")
        r.openFiles = try pick("open_files", w.openFiles, defaults.openFiles, maxima.openFiles, unit: "")
        r.tmpfsBytes = try pick("tmpfs_bytes", w.tmpfsBytes, defaults.tmpfsBytes, maxima.tmpfsBytes, unit: " bytes")
        r.cpuQuotaMillicores = try pick("cpu_quota_millicores", w.cpuQuotaMillicores, defaults.cpuQuotaMillicores, maxima.cpuQuotaMillicores, unit: "")
        guard r.maxProcesses >= 8 else { throw LimitError(field: "max_processes", requested: "\(r.maxProcesses)", minimum: "8") }
        guard r.memoryBytes >= 16 << 20 else { throw LimitError(field: "memory_bytes", requested: "\(r.memoryBytes) bytes", minimum: "16 MiB") }
        return r
    }
}

/// A requested limit outside what the server allows.
public struct LimitError: Error, CustomStringConvertible, Sendable {
    public let description: String

    init(field: String, requested: String, maximum: String) {
        description = "limits.\(field) = \(requested) exceeds the server's maximum of \(maximum)"
    }

    init(field: String, requested: String, minimum: String) {
        description = "limits.\(field) = \(requested) is below the minimum of \(minimum) an interpreter needs"
    }
}
