import ExecProtocol

/// How one language's interpreter is started inside the sandbox.
public struct LanguageProfile: Sendable, Codable, Equatable {
    /// Absolute path of the interpreter (never a PATH lookup: pyenv shims live under /root).
    public var executable: String
    /// argv before the program path; argv[0] included.
    public var arguments: [String]
    /// Where the program is written inside the sandbox.
    public var programPath: String
    /// The whole environment; nothing is inherited from the daemon (NODE_EXTRA_CA_CERTS alone costs node 40 ms).
    public var environment: [String]

    public static let python = LanguageProfile(
        executable: "/usr/bin/python3", arguments: ["python3", "-I", "-B"], programPath: "/tmp/main.py",
        environment: baseEnvironment)

    public static let javascript = LanguageProfile(
        executable: "/usr/bin/node", arguments: ["node", "--require", stdioPreloadPath], programPath: "/tmp/main.js",
        environment: baseEnvironment)

    /// Written into one-shot JavaScript sandboxes and loaded before the program (Zygote/stdio.js); it removes itself.
    static let stdioPreloadPath = "/tmp/.execd-stdio.js"

    static let baseEnvironment = ["PATH=/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8", "LC_ALL=C.UTF-8"]

    /// argv for a program with its arguments.
    func argv(programArguments: [String]) -> [String] { arguments + [programPath] + programArguments }
}
