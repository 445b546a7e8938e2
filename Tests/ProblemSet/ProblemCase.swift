import ExecProtocol
import Foundation
import Harness
import Testing

/// The problem set shared by the harness tests (local runner) and the end-to-end tests (real sandboxes).
/// One solution of one problem in Problems/, with what the judge must say about it.
public struct ProblemCase: CustomTestStringConvertible, Sendable {
    public var problem: String
    public var solution: String
    public var expectation: JSONValue
    public var testDescription: String { "\(problem)/\(solution)" }

    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Problems")

    /// Every solution of every problem; sandbox-only expectations (memory limits) are left out.
    public static func all(includeSandboxOnly: Bool = false) -> [ProblemCase] {
        let fm = FileManager.default
        let problems = (try? fm.contentsOfDirectory(atPath: root.path))?.sorted() ?? []
        return problems.flatMap { p -> [ProblemCase] in
            let dir = root.appendingPathComponent(p)
            guard let data = try? Data(contentsOf: dir.appendingPathComponent("expectations.json")),
                case .object(let members) = try? JSONParser.parse(data)
            else { return [] }
            return members.compactMap { m in
                if m.value["sandbox_only"] == .bool(true), !includeSandboxOnly { return nil }
                return ProblemCase(problem: p, solution: m.key, expectation: m.value)
            }
        }
    }

    public func request() throws -> Execd_V1_JudgeRequest {
        let dir = ProblemCase.root.appendingPathComponent(problem)
        let spec = try Data(contentsOf: dir.appendingPathComponent("spec.json"))
        let source = try Data(contentsOf: dir.appendingPathComponent(solution))
        let lang: Execd_V1_Language = solution.hasSuffix(".py") ? .python : .javascript
        return try TestSpecFile.request(spec: spec, submission: source, language: lang)
    }
}

