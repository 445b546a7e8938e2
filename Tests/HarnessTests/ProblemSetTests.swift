import ExecProtocol
import Foundation
import Harness
import ProblemSet
import Testing

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
