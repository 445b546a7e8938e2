/// The names languages and statuses go by on command lines, in JSON and in logs.
extension Execd_V1_Language {
    /// "python", "javascript" ("unspecified" otherwise).
    public var name: String {
        switch self {
        case .python: "python"
        case .javascript: "javascript"
        default: "unspecified"
        }
    }

    /// Accepts python/python3/py and javascript/js/node, any case.
    public init?(name: String) {
        switch name.lowercased() {
        case "python", "python3", "py": self = .python
        case "javascript", "js", "node": self = .javascript
        default: return nil
        }
    }
}

extension Execd_V1_Status {
    /// snake_case: "ok", "runtime_error", "signaled", "time_limit", "memory_limit", "output_limit", "internal_error".
    public var name: String {
        switch self {
        case .ok: "ok"
        case .runtimeError: "runtime_error"
        case .signaled: "signaled"
        case .timeLimit: "time_limit"
        case .memoryLimit: "memory_limit"
        case .outputLimit: "output_limit"
        case .internalError: "internal_error"
        default: "unspecified"
        }
    }
}
