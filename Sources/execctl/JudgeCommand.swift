import ArgumentParser
import ExecProtocol
import Foundation
import Harness

/// `execctl judge`: a solution against a test-spec file, judged by execd.
struct JudgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "judge", abstract: "Judge a solution against a JSON test specification (see docs/harness.md).")

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .long, help: "python or javascript.")
    var lang: String

    @Option(help: "The test specification (JSON).")
    var tests: String

    @Flag(help: "Print one JSON object.")
    var json = false

    @Argument(help: "The solution file, or - for standard input.")
    var solution: String

    func run() async throws {
        guard let language = Execd_V1_Language(name: lang) else {
            throw ValidationError("--lang must be python or javascript, not \(lang)")
        }
        let request: Execd_V1_JudgeRequest
        do {
            request = try TestSpecFile.request(spec: try readInput(tests), submission: try readInput(solution), language: language)
        } catch let invalid as TestSpecFile.Invalid {
            throw ValidationError("\(tests): \(invalid.message)")
        }
        let result: Execd_V1_JudgeResult
        do {
            let client = try await ExecClient.connect(socketPath: connection.socketPath, clientName: "execctl")
            let response = try await client.send(.judge(request))
            await client.close()
            guard case .judge(let judged) = response.body else { fail("execd answered a judge request with \(response)") }
            result = judged
        } catch {
            fail("\(error)")
        }
        print(json ? JudgeReport.json(result) : JudgeReport.text(result))
    }
}
