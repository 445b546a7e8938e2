import ExecProtocol
import Foundation
import Harness
import ProblemSet
import Testing

extension EndToEnd {
    /// The shared problem set judged through the socket by real sandboxes, memory-limit cases included.
    @Suite(.serialized)
    struct JudgeEndToEndTests {
        @Test(arguments: ProblemCase.all(includeSandboxOnly: true))
        func judgedAsExpectedInTheSandbox(_ c: ProblemCase) async throws {
            let client = try await TestDaemon.shared.value.client()
            defer { Task { await client.close() } }
            let response = try await client.send(.judge(try c.request()))
            guard case .judge(let result) = response.body else {
                Issue.record("not a judge result: \(response)")
                return
            }
            let detail = JudgeReport.text(result)
            #expect(JudgeReport.name(result.verdict) == c.expectation["verdict"]?.stringValue, "\(detail)")
            if case .array(let statuses) = c.expectation["tests"] {
                #expect(result.tests.map { JudgeReport.name($0.status) } == statuses.compactMap(\.stringValue), "\(detail)")
            }
            if let score = c.expectation["score"]?.doubleValue { #expect(result.score == score, "\(detail)") }
            for t in result.tests where t.hidden {
                #expect(t.actualJson.isEmpty && t.expectedJson.isEmpty && t.stdout.isEmpty && t.message.isEmpty)
            }
        }

        @Test func badSpecIsABadRequest() async throws {
            let client = try await TestDaemon.shared.value.client()
            defer { Task { await client.close() } }
            var request = Execd_V1_JudgeRequest()
            request.language = 1
            await #expect { _ = try await client.send(.judge(request)) } throws: { error in
                guard case ExecClientError.server(let code, _) = error else { return false }
                return code == .badRequest
            }
        }
    }
}
