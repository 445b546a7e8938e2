import CSystemd
import ExecProtocol
import Glibc
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The Unix-socket server as a `Service`: binds, serves until graceful shutdown (SIGTERM), then stops
/// accepting, finishes or kills in-flight runs, and removes its socket.
public final class ExecdServer: Service, Sendable {
    public struct Settings: Sendable {
        public var socketPath: String
        /// Permission bits of the socket file; access to the socket is access to the sandboxes.
        public var socketMode: mode_t = 0o660
        public var socketGroup: gid_t?
        public var maxFrameBytes = ExecProtocol.defaultMaxFrameBytes
        public var shutdownGrace: Duration = .seconds(10)

        public init(socketPath: String) { self.socketPath = socketPath }
    }

    let settings: Settings
    let engine: RunEngine
    let logger: Logger

    public init(settings: Settings, engine: RunEngine, logger: Logger) {
        self.settings = settings
        self.engine = engine
        self.logger = logger
    }

    public func run() async throws {
        let path = settings.socketPath
        try await Self.refuseIfServed(path)
        let service = RequestService(engine: engine, maxFrameBytes: settings.maxFrameBytes, logger: logger)
        let maxFrame = settings.maxFrameBytes
        let logger = self.logger
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addExecServerHandlers(maxFrameBytes: maxFrame)
                    try channel.pipeline.syncOperations.addHandler(ConnectionHandler(service: service, logger: logger))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
            .get()
        chmod(path, settings.socketMode)
        if let group = settings.socketGroup { chown(path, 0, group) }
        logger.info("listening", metadata: ["socket": "\(path)", "cgroups": "\(engine.cgroups.version)",
                                            "max_concurrent_runs": "\(engine.config.maxConcurrentRuns)",
                                            "max_active_runs": "\(engine.gate.activeLimit)"])
        _ = sd_notify(0, "READY=1")
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        _ = sd_notify(0, "STOPPING=1")
        logger.info("shutting down", metadata: ["running": "\(engine.activeCount)"])
        await engine.shutdown(grace: settings.shutdownGrace)
        unlink(path)
        logger.info("stopped")
    }

    /// Binding over a socket that another execd still serves would silently steal it; refuse instead.
    static func refuseIfServed(_ path: String) async throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw ExecdError(.internalError, "\(path) exists and is not a socket; refusing to replace it")
        }
        let probe = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(unixDomainSocketPath: path).get()
        if let probe {
            try? await probe.close()
            throw ExecdError(.internalError, "another server is already listening on \(path)")
        }
    }
}
