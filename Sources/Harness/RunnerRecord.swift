import ExecProtocol
import Foundation

/// What the runner reported for one finished test (untrusted: only "the value the program produced").
struct TestOutcome: Sendable {
    enum Status: String, Sendable {
        case ok, error
        case outputLimit = "output_limit"
        case memoryLimit = "memory_limit"
    }
    var status: Status
    var value: JSONValue?
    var errorType = ""
    var errorMessage = ""
    var traceback = ""
    var stdout: [UInt8] = []
    var stderr: [UInt8] = []
    /// Measured on the trusted side between the start and end records.
    var elapsed: Duration = .zero
}

/// One framed record of the result channel: 4-byte big-endian length, then a UTF-8 JSON object carrying
/// the run's nonce `n` and an event `ev`. See docs/harness.md.
enum RunnerRecord: Sendable {
    case start(Int)
    case end(Int, TestOutcome)
    case compileError(Execd_V1_CompileError)
    case missingEntry(String)
    case loadError(traceback: String, stdout: [UInt8], stderr: [UInt8])
    case specError(String)
    case done

    /// Decodes a record body; nil for a record without the right nonce (a forgery) or of unknown shape.
    static func decode(_ json: JSONValue, nonce: String) -> RunnerRecord? {
        guard json["n"]?.stringValue == nonce, let ev = json["ev"]?.stringValue else { return nil }
        let index = json["i"].flatMap { $0.doubleValue }.map { Int($0) }
        switch ev {
        case "start": return index.map { .start($0) }
        case "end":
            guard let index, let status = json["status"]?.stringValue.flatMap(TestOutcome.Status.init) else {
                return nil
            }
            var o = TestOutcome(status: status, value: json["value"])
            if let e = json["error"] {
                o.errorType = e["type"]?.stringValue ?? ""
                o.errorMessage = e["message"]?.stringValue ?? ""
                o.traceback = e["traceback"]?.stringValue ?? ""
            }
            o.stdout = base64(json["stdout"])
            o.stderr = base64(json["stderr"])
            return .end(index, o)
        case "compile_error":
            var c = Execd_V1_CompileError()
            c.line = UInt32(clamping: Int(json["line"]?.doubleValue ?? 0))
            c.column = UInt32(clamping: Int(json["column"]?.doubleValue ?? 0))
            c.message = json["message"]?.stringValue ?? "syntax error"
            c.details = json["details"]?.stringValue ?? ""
            return .compileError(c)
        case "missing_entry": return .missingEntry(json["message"]?.stringValue ?? "entry point not found")
        case "load_error":
            return .loadError(
                traceback: json["error"]?["traceback"]?.stringValue ?? "", stdout: base64(json["stdout"]),
                stderr: base64(json["stderr"]))
        case "spec_error": return .specError(json["message"]?.stringValue ?? "invalid test specification")
        case "done": return .done
        default: return nil
        }
    }

    private static func base64(_ v: JSONValue?) -> [UInt8] {
        guard let s = v?.stringValue, !s.isEmpty, let d = Data(base64Encoded: s) else { return [] }
        return Array(d)
    }
}

/// Splits the result channel's byte stream into frames.
struct FrameReader: Sendable {
    static let maxFrame = 64 << 20
    private var buffer: [UInt8] = []
    private var offset = 0

    enum Failure: Error { case oversized(Int) }

    /// Appends bytes and returns every complete frame body.
    mutating func feed(_ bytes: [UInt8]) throws(Failure) -> [[UInt8]] {
        buffer.append(contentsOf: bytes)
        var frames: [[UInt8]] = []
        while buffer.count - offset >= 4 {
            let n = buffer[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            guard n <= FrameReader.maxFrame else { throw .oversized(n) }
            guard buffer.count - offset - 4 >= n else { break }
            frames.append(Array(buffer[offset + 4..<offset + 4 + n]))
            offset += 4 + n
        }
        if offset > 0, offset == buffer.count || offset > 1 << 20 {
            buffer.removeFirst(offset)
            offset = 0
        }
        return frames
    }
}
