import ExecProtocol
import Foundation
import Harness
import Testing

/// One solution of one problem in Problems/, with what the judge must say about it.
struct ProblemCase: CustomTestStringConvertible, Sendable {
    var problem: String
    var solution: String
    var expectation: JSONValue
    var testDescription: String { "\(problem)/\(solution)" }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Problems")

    /// Every solution of every problem; sandbox-only expectations (memory limits) are left out.
    static func all(includeSandboxOnly: Bool = false) -> [ProblemCase] {
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

    func request() throws -> Execd_V1_JudgeRequest {
        let dir = ProblemCase.root.appendingPathComponent(problem)
        let spec = try Data(contentsOf: dir.appendingPathComponent("spec.json"))
        let source = try Data(contentsOf: dir.appendingPathComponent(solution))
        let lang: Execd_V1_Language = solution.hasSuffix(".py") ? .python : .javascript
        return try TestSpecFile.request(spec: spec, submission: source, language: lang)
    }
}

@Suite(.serialized)
struct ProblemSetTests {
    @Test func problemSetIsLargeEnough() {
        let cases = ProblemCase.all(includeSandboxOnly: true)
        #expect(Set(cases.map(\.problem)).count >= 20)
        #expect(cases.contains { $0.solution.hasSuffix(".py") } && cases.contains { $0.solution.hasSuffix(".js") })
    }

    @Test(arguments: ProblemCase.all())
    func judgedAsExpected(_ c: ProblemCase) async throws {
        let result = try await Judge(executor: LocalExecutor()).judge(try c.request())
        let detail = JudgeReport.text(result)
        #expect(JudgeReport.name(result.verdict) == c.expectation["verdict"]?.stringValue, "\(detail)")
        if case .array(let statuses) = c.expectation["tests"] {
            #expect(result.tests.map { JudgeReport.name($0.status) } == statuses.compactMap(\.stringValue), "\(detail)")
        }
        if let score = c.expectation["score"]?.doubleValue {
            #expect(result.score == score, "\(detail)")
        }
        if let line = c.expectation["compile_error_line"]?.doubleValue {
            #expect(result.compileError.line == UInt32(line), "\(detail)")
        }
        if let needle = c.expectation["message_contains"]?.stringValue {
            let text = JudgeReport.json(result)
            #expect(text.contains(needle), "\(detail)")
        }
        for t in result.tests where t.hidden {
            #expect(t.actualJson.isEmpty && t.expectedJson.isEmpty && t.stdout.isEmpty && t.message.isEmpty)
        }
        if result.verdict == .accepted { #expect(result.passed == result.total && result.score == result.maxScore) }
    }
}
