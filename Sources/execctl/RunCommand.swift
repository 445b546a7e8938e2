import ArgumentParser
import ExecProtocol
import Foundation

/// `execctl run`: one program, one sandbox, one verdict.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a program in a sandbox and print its result.")

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .long, help: "python or javascript.")
    var lang: String

    @Option(help: "File whose contents become the program's stdin.")
    var stdin: String?

    @Option(help: "CPU-time limit, e.g. 2s or 500ms.")
    var timeLimit: String?

    @Option(help: "Wall-clock limit (default: the server's, at least twice the CPU limit).")
    var wallTimeLimit: String?

    @Option(help: "Memory limit, e.g. 256MiB.")
    var memoryLimit: String?

    @Option(help: "Per-stream output limit, e.g. 1MiB.")
    var outputLimit: String?

    @Option(help: "Process (and thread) limit.")
    var processLimit: UInt32?

    @Flag(help: "Print one JSON object.")
    var json = false

    @Argument(help: "The program file, or - for standard input.")
    var file: String

    func run() async throws {
        guard let language = Execd_V1_Language(name: lang) else {
            throw ValidationError("--lang must be python or javascript, not \(lang)")
        }
        var request = Execd_V1_RunRequest()
        request.language = language
        request.code = try readInput(file)
        if let stdin { request.stdin = try readInput(stdin) }
        request.limits = try limits()
        let result: Execd_V1_RunResult
        do {
            let client = try await ExecClient.connect(socketPath: connection.socketPath, clientName: "execctl")
            result = try await client.run(request)
            await client.close()
        } catch {
            fail("\(error)")
        }
        if json {
            print(RunResultJSON(result).encoded())
        } else {
            printHuman(result)
        }
    }

    private func limits() throws -> Execd_V1_Limits {
        var limits = Execd_V1_Limits()
        if let timeLimit {
            guard let d = Units.duration(timeLimit) else { throw ValidationError("--time-limit: cannot read \(timeLimit) (try 2s or 500ms)") }
            limits.cpuTimeMs = UInt64(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
        }
        if let wallTimeLimit {
            guard let d = Units.duration(wallTimeLimit) else { throw ValidationError("--wall-time-limit: cannot read \(wallTimeLimit)") }
            limits.wallTimeMs = UInt64(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
        }
        if let memoryLimit {
            guard let b = Units.bytes(memoryLimit) else { throw ValidationError("--memory-limit: cannot read \(memoryLimit) (try 256MiB)") }
            limits.memoryBytes = b
        }
        if let outputLimit {
            guard let b = Units.bytes(outputLimit) else { throw ValidationError("--output-limit: cannot read \(outputLimit)") }
            limits.outputBytes = b
        }
        if let processLimit { limits.maxProcesses = processLimit }
        return limits
    }

    private func printHuman(_ r: Execd_V1_RunResult) {
        FileHandle.standardOutput.write(r.stdout)
        FileHandle.standardError.write(r.stderr)
        var line = "\(r.status.name)"
        if r.status == .runtimeError { line += " (exit \(r.exitCode))" }
        if r.status == .signaled { line += " (signal \(r.signal))" }
        if r.status == .timeLimit { line += r.timeLimitKind == .cpu ? " (cpu)" : " (wall)" }
        if r.status == .internalError { line += ": \(r.internalError)" }
        line += String(format: "  cpu %.1f ms, wall %.1f ms, peak memory %.1f MiB",
                       Double(r.cpuTimeUs) / 1000, Double(r.wallTimeUs) / 1000, Double(r.memoryPeakBytes) / 1_048_576)
        if r.stdoutTruncated || r.stderrTruncated { line += ", output truncated" }
        FileHandle.standardError.write(Data(("--- " + line + "\n").utf8))
    }
}

extension ConnectionOptions {
    var socketPath: String { socket ?? ExecClient.defaultSocketPath }
}

/// Reads a file, or standard input for "-".
func readInput(_ path: String) throws -> Data {
    if path == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ValidationError("cannot read \(path)")
    }
    return data
}

/// Prints a message to stderr and exits 2: execctl could not get a result from execd.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("execctl: \(message)\n".utf8))
    exit(2)
}
