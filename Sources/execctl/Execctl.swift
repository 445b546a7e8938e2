import ArgumentParser

/// execctl: the admin and benchmark CLI for execd.
@main
struct Execctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "execctl",
        abstract: "Talk to execd over its Unix socket: run programs, judge solutions, inspect and benchmark the pool.",
        subcommands: [RunCommand.self, JudgeCommand.self, StatusCommand.self, PoolCommand.self, KillCommand.self, BenchCommand.self])
}

/// Options every subcommand shares.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "execd's socket (default: $EXECD_SOCKET or /run/execd/execd.sock).")
    var socket: String?
}
