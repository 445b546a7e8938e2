import Foundation

/// Parses the human units clients accept on command lines: durations like `2s`, `500ms`, `1.5s`, `1m` and sizes
/// like `256MiB`, `64MB`, `1GiB`, `4096`.
public enum Units {
    /// A duration; a bare number means milliseconds.
    public static func duration(_ text: String) -> Duration? {
        let (number, unit) = split(text)
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        let scale: Double? = switch unit.lowercased() {
        case "", "ms": 1e-3
        case "us", "µs": 1e-6
        case "s", "sec": 1
        case "m", "min": 60
        default: nil
        }
        guard let scale else { return nil }
        return .nanoseconds(Int64((value * scale * 1e9).rounded()))
    }

    /// A byte count; `K/M/G` and `KB/MB/GB` are decimal, `KiB/MiB/GiB` binary; a bare number means bytes.
    public static func bytes(_ text: String) -> UInt64? {
        let (number, unit) = split(text)
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        let scale: Double? = switch unit.lowercased() {
        case "", "b": 1
        case "k", "kb": 1e3
        case "m", "mb": 1e6
        case "g", "gb": 1e9
        case "ki", "kib": 1024
        case "mi", "mib": 1_048_576
        case "gi", "gib": 1_073_741_824
        default: nil
        }
        guard let scale, value * scale < 1.8e19 else { return nil }
        return UInt64((value * scale).rounded())
    }

    private static func split(_ text: String) -> (Substring, Substring) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let index = trimmed.firstIndex { !($0.isNumber || $0 == ".") } ?? trimmed.endIndex
        return (trimmed[..<index], trimmed[index...].drop { $0 == " " })
    }
}
