import ExecProtocol
import Foundation

/// The `--json` form of a run result: stable snake_case keys; stdout/stderr as UTF-8 text (invalid bytes replaced),
/// with a base64 copy when they are not valid UTF-8.
struct RunResultJSON: Encodable {
    var status: String
    var time_limit_kind: String?
    var exit_code: Int32
    var signal: Int32
    var stdout: String
    var stderr: String
    var stdout_base64: String?
    var stderr_base64: String?
    var stdout_truncated: Bool
    var stderr_truncated: Bool
    var cpu_time_ms: Double
    var wall_time_ms: Double
    var memory_peak_bytes: UInt64
    var run_id: String
    var internal_error: String?

    init(_ r: Execd_V1_RunResult) {
        status = r.status.name
        time_limit_kind = r.status == .timeLimit ? (r.timeLimitKind == .cpu ? "cpu" : "wall") : nil
        exit_code = r.exitCode
        signal = r.signal
        stdout = String(decoding: r.stdout, as: UTF8.self)
        stderr = String(decoding: r.stderr, as: UTF8.self)
        stdout_base64 = String(data: r.stdout, encoding: .utf8) == nil ? r.stdout.base64EncodedString() : nil
        stderr_base64 = String(data: r.stderr, encoding: .utf8) == nil ? r.stderr.base64EncodedString() : nil
        stdout_truncated = r.stdoutTruncated
        stderr_truncated = r.stderrTruncated
        cpu_time_ms = Double(r.cpuTimeUs) / 1000
        wall_time_ms = Double(r.wallTimeUs) / 1000
        memory_peak_bytes = r.memoryPeakBytes
        run_id = r.runID
        internal_error = r.status == .internalError ? r.internalError : nil
    }


    func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }
}
