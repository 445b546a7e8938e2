// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "execd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "execd", targets: ["execd"]),
        .executable(name: "execctl", targets: ["execctl"]),
        .library(name: "ExecProtocol", targets: ["ExecProtocol"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // System libraries (module maps only).
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),

        // The only code between clone3 and execve.
        .target(name: "CExecChild", dependencies: ["CCap"]),

        // The only Swift code that talks to the kernel.
        .target(name: "SandboxOS", dependencies: ["CExecChild", "CSeccomp", "CCap"]),

        // Wire format and async client.
        .target(
            name: "ExecProtocol",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),

        // Test-case model, comparators, scoring; in-sandbox runners as resources.
        .target(
            name: "Harness",
            dependencies: ["ExecProtocol"],
            resources: [.copy("Runners")]
        ),

        // Daemon core: runs, verdicts, socket server.
        .target(
            name: "ExecdCore",
            dependencies: [
                "ExecProtocol", "SandboxOS", "Harness", "CSystemd",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["Native"],
            resources: [.copy("Zygote")],
            plugins: ["ZygoteLibrary"]
        ),
        // Builds Sources/ExecdCore/Native (the Python zygote's loop and its children's setup, in C) into a shared
        // object that only needs libc, among ExecdCore's resources: zygote.py loads it inside the sandbox.
        .plugin(name: "ZygoteLibrary", capability: .buildTool()),

        .executableTarget(
            name: "execd",
            dependencies: [
                "ExecdCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "execctl",
            dependencies: [
                "ExecProtocol", "Harness",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),

        .testTarget(name: "ExecProtocolTests", dependencies: ["ExecProtocol"]),
        .testTarget(name: "SandboxOSTests", dependencies: ["SandboxOS"]),
        // The problem set (solutions with expected verdicts) and its loader, shared by two test targets.
        .target(name: "ProblemSet", dependencies: ["Harness", "ExecProtocol"], path: "Tests/ProblemSet", exclude: ["Problems"]),
        .testTarget(name: "ExecdCoreTests", dependencies: ["ExecdCore", "ExecProtocol", "Harness", "ProblemSet", "SandboxOS"]),
        .testTarget(name: "HarnessTests", dependencies: ["Harness", "ExecProtocol", "ProblemSet"]),
    ]
)
