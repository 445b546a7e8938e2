import ArgumentParser
import ExecProtocol
import Foundation
import SwiftProtobuf

/// `execctl status`: the pools, their slots, the queue and the totals.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show execd's pools, slots, queue and totals.")

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "Print one JSON object (protobuf JSON mapping of StatusReply).")
    var json = false

    func run() async throws {
        let reply: Execd_V1_StatusReply
        do {
            let client = try await ExecClient.connect(socketPath: connection.socketPath, clientName: "execctl")
            let response = try await client.send(.status(Execd_V1_StatusRequest()))
            await client.close()
            guard case .status(let status) = response.body else { fail("execd answered a status request with \(response)") }
            reply = status
        } catch {
            fail("\(error)")
        }
        if json {
            var options = JSONEncodingOptions()
            options.preserveProtoFieldNames = true
            options.alwaysPrintEnumsAsInts = false
            print((try? reply.jsonString(options: options)) ?? "{}")
        } else {
            print(Self.table(reply))
        }
    }

    static func table(_ r: Execd_V1_StatusReply) -> String {
        var lines = [
            "\(r.serverVersion)  up \(duration(r.uptimeMs))  cgroup \(r.cgroupVersion)",
            "runs: \(r.running) running (max \(r.maxConcurrentRuns); \(r.active) computing, max \(r.maxActiveRuns); \(r.running - min(r.running, r.active)) parked), "
                + "\(r.queued) queued (limit \(r.queueLimit)), \(r.runsTotal) done, \(r.oneShotRuns) one-shot",
            "verdicts: " + (r.verdicts.isEmpty ? "none yet" : r.verdicts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")),
        ]
        for pool in r.pools {
            lines.append("")
            lines.append("pool \(pool.language.name) (\(pool.kind)): target \(pool.target), idle \(pool.idle), busy \(pool.busy), starting \(pool.starting), failed starts \(pool.failedStarts), retired \(pool.retired)\(pool.draining ? ", DRAINING" : "")")
            let zygote = pool.kind == "zygote"
            var rows = [["slot", "state", "pid", "uid", "runs", "age", "last", "peak mem"] + (zygote ? ["copied at fork"] : [])]
            for s in pool.slots.sorted(by: { $0.id < $1.id }) {
                rows.append([s.id, s.state, "\(s.pid)", "\(s.hostUid)", "\(s.runsServed)", duration(s.ageMs),
                             s.lastStatus == .unspecified ? "-" : s.lastStatus.name, mebibytes(s.lastPeakMemoryBytes)]
                            + (zygote ? [mebibytes(s.copiedAtForkBytes)] : []))
            }
            let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max()! + 2 }
            for row in rows {
                let line = zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined()
                lines.append("  " + String(line.reversed().drop { $0 == " " }.reversed()))
            }
        }
        return lines.joined(separator: "\n")
    }

    static func mebibytes(_ bytes: UInt64) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }

    static func duration(_ ms: UInt64) -> String {
        ms < 1000 ? "\(ms)ms" : ms < 120_000 ? String(format: "%.1fs", Double(ms) / 1000) : "\(ms / 60_000)m"
    }
}

/// `execctl pool drain|resume|resize|recycle` and `execctl kill`.
struct PoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool", abstract: "Drain, resume, resize or recycle execd's warm pools.",
        subcommands: [Drain.self, Resume.self, Resize.self, Recycle.self])

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop using warm slots (runs start one-shot sandboxes).")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "python or javascript (default: every pool).") var lang: String?
        func run() async throws { try await admin(connection, .drain(try target(lang))) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Use warm slots again after a drain.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "python or javascript (default: every pool).") var lang: String?
        func run() async throws { try await admin(connection, .resume(try target(lang))) }
    }

    struct Resize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a pool's number of slots.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "python or javascript.") var lang: String
        @Argument(help: "The new number of slots.") var target: UInt32
        func run() async throws {
            try await admin(connection, .resize(Execd_V1_Resize.with { $0.language = try! targetLanguage(lang); $0.target = target }))
        }
        func validate() throws { _ = try targetLanguage(lang) }
    }

    struct Recycle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace every slot with a fresh one.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "python or javascript (default: every pool).") var lang: String?
        func run() async throws { try await admin(connection, .recycle(try target(lang))) }
    }
}

struct KillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Kill a running run by its id.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The run id (RunResult.run_id, e.g. run-42).") var runID: String
    func run() async throws { try await admin(connection, .killRun(runID)) }
}

private func targetLanguage(_ name: String) throws -> Execd_V1_Language {
    guard let language = Execd_V1_Language(name: name) else { throw ValidationError("--lang must be python or javascript") }
    return language
}

private func target(_ name: String?) throws -> Execd_V1_PoolTarget {
    Execd_V1_PoolTarget.with { $0.language = name.flatMap { Execd_V1_Language(name: $0) } ?? .unspecified }
}

private func admin(_ connection: ConnectionOptions, _ action: Execd_V1_AdminRequest.OneOf_Action) async throws {
    do {
        let client = try await ExecClient.connect(socketPath: connection.socketPath, clientName: "execctl")
        let response = try await client.send(.admin(Execd_V1_AdminRequest.with { $0.action = action }))
        await client.close()
        guard case .admin(let reply) = response.body else { fail("execd answered an admin request with \(response)") }
        print(reply.message)
    } catch {
        fail("\(error)")
    }
}
