import Foundation
import NIOCore
import NIOPosix

/// An async client for execd's Unix socket.
///
/// One connection, many requests in flight: each gets a fresh id and its response is matched by id, in any order.
/// When the connection drops, every pending call throws `ExecClientError.connectionClosed` (or the server's
/// connection-level error). Safe to share between tasks.
///
/// ```swift
/// let client = try await ExecClient.connect()
/// var run = Execd_V1_RunRequest()
/// run.language = .python
/// run.code = Data("print('hi')".utf8)
/// let result = try await client.run(run)
/// await client.close()
/// ```
public final class ExecClient: Sendable {
    /// `$EXECD_SOCKET` if set and not empty, else `/run/execd/execd.sock`.
    public static var defaultSocketPath: String {
        Self.socketPath(environment: ProcessInfo.processInfo.environment)
    }

    static func socketPath(environment: [String: String]) -> String {
        let fromEnvironment = environment["EXECD_SOCKET"] ?? ""
        return fromEnvironment.isEmpty ? "/run/execd/execd.sock" : fromEnvironment
    }

    /// What the server said in reply to hello: its version, limits, languages and frame size.
    public let serverHello: Execd_V1_HelloReply

    private let channel: any Channel
    private let ids: RequestIDs

    /// The event loop the connection lives on (responses complete there).
    public var eventLoop: any EventLoop { channel.eventLoop }

    private init(channel: any Channel, serverHello: Execd_V1_HelloReply, nextID: UInt64) {
        self.channel = channel
        self.serverHello = serverHello
        self.ids = RequestIDs(first: nextID)
    }

    deinit {
        self.channel.close(promise: nil)
    }

    /// Connects to execd and says hello; throws if the server does not speak `ExecProtocol.protocolVersion`.
    ///
    /// - Parameters:
    ///   - clientName: free text for the server's logs, e.g. "execctl/0.1".
    ///   - maxFrameBytes: the largest response accepted and request sent.
    ///   - timeout: how long connecting plus hello may take.
    public static func connect(
        socketPath: String = ExecClient.defaultSocketPath,
        clientName: String = "ExecClient",
        maxFrameBytes: Int = ExecProtocol.defaultMaxFrameBytes,
        timeout: Duration = .seconds(10),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> ExecClient {
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(TimeAmount(timeout))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addExecClientHandlers(maxFrameBytes: maxFrameBytes)
                        try channel.pipeline.syncOperations.addHandler(ClientMultiplexer())
                    }
                }
                .connect(unixDomainSocketPath: socketPath)
                .get()
        } catch {
            throw ExecClientError.connectFailed(socketPath: socketPath, reason: "\(error)")
        }
        do {
            var hello = Execd_V1_Hello()
            hello.protocolVersion = ExecProtocol.protocolVersion
            hello.clientName = clientName
            var request = Execd_V1_Request()
            request.id = 1
            request.body = .hello(hello)
            let response = try await Self.exchange(request, on: channel, timeout: timeout)
            if case .error(let error) = response.body {
                throw ExecClientError.server(code: error.code, message: error.message)
            }
            guard case .hello(let reply) = response.body else {
                throw ExecClientError.protocolViolation("expected a hello reply, got \(Self.kind(of: response))")
            }
            guard reply.protocolVersion == ExecProtocol.protocolVersion else {
                throw ExecClientError.protocolViolation(
                    "execd speaks protocol version \(reply.protocolVersion), this client speaks "
                        + "\(ExecProtocol.protocolVersion); use a matching client"
                )
            }
            return ExecClient(channel: channel, serverHello: reply, nextID: 2)
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// Runs one program and returns its result (a verdict such as a time limit is a result, not an error).
    ///
    /// - Parameters:
    ///   - deadline: the server fails the request with `ERROR_CODE_DEADLINE_EXCEEDED` if it cannot start the run
    ///     within this time (queueing); `nil` waits as long as needed.
    ///   - timeout: client-side limit on the whole call; on expiry the run is cancelled on the server and
    ///     `ExecClientError.timeout` is thrown.
    public func run(
        _ request: Execd_V1_RunRequest,
        deadline: Duration? = nil,
        timeout: Duration? = nil
    ) async throws -> Execd_V1_RunResult {
        let deadlineMs = deadline.map(Self.milliseconds) ?? 0
        let response = try await self.send(.run(request), deadlineMs: deadlineMs, timeout: timeout)
        guard case .run(let result) = response.body else {
            throw ExecClientError.protocolViolation("expected a run result, got \(Self.kind(of: response))")
        }
        return result
    }

    /// Sends any request and returns its response; new request kinds need no client changes.
    ///
    /// An error response is thrown as `ExecClientError.server`, so the returned response never carries an error.
    /// Cancelling the calling task, or `timeout` expiring, abandons the request and asks the server to cancel it.
    ///
    /// - Parameter deadlineMs: `Request.deadline_ms`: 0, or how long the server may take to start the request.
    public func send(
        _ body: Execd_V1_Request.OneOf_Body,
        deadlineMs: UInt64 = 0,
        timeout: Duration? = nil
    ) async throws -> Execd_V1_Response {
        var request = Execd_V1_Request()
        request.id = self.makeID()
        request.body = body
        request.deadlineMs = deadlineMs
        let response: Execd_V1_Response
        do {
            response = try await Self.exchange(request, on: self.channel, timeout: timeout)
        } catch let error where error is CancellationError || Self.isTimeout(error) {
            self.cancelOnServer(request.id)
            throw error
        }
        if case .error(let error) = response.body {
            throw ExecClientError.server(code: error.code, message: error.message)
        }
        return response
    }

    /// Closes the connection; calls still in flight fail with `ExecClientError.connectionClosed`.
    public func close() async {
        try? await self.channel.close()
    }

    private func makeID() -> UInt64 {
        self.ids.next()
    }

    /// Best effort: tells the server to stop working on an abandoned request. The reply is not awaited.
    private func cancelOnServer(_ targetID: UInt64) {
        var cancel = Execd_V1_CancelRequest()
        cancel.targetID = targetID
        var request = Execd_V1_Request()
        request.id = self.makeID()
        request.body = .cancel(cancel)
        let promise = self.channel.eventLoop.makePromise(of: Execd_V1_Response.self)
        let pending = ClientMultiplexer.Pending(request: request, promise: promise, timeout: nil)
        self.channel.writeAndFlush(pending).cascadeFailure(to: promise)
    }

    /// Writes `request` and waits for the response with its id.
    private static func exchange(
        _ request: Execd_V1_Request,
        on channel: any Channel,
        timeout: Duration?
    ) async throws -> Execd_V1_Response {
        let id = request.id
        let promise = channel.eventLoop.makePromise(of: Execd_V1_Response.self)
        let pending = ClientMultiplexer.Pending(request: request, promise: promise, timeout: timeout)
        // If the pipeline is already gone the multiplexer never sees the write; fail the promise here instead.
        channel.writeAndFlush(pending).whenFailure { error in
            promise.fail(ClientMultiplexer.clientError(forWriteFailure: error))
        }
        // onCancel can only run after the write was handed to the event loop, whose queue is FIFO: an abandon
        // event therefore always reaches the multiplexer after the request was registered.
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            channel.triggerUserOutboundEvent(
                ClientMultiplexer.Abandon(id: id, error: CancellationError()),
                promise: nil
            )
        }
    }

    private static func isTimeout(_ error: any Error) -> Bool {
        if case .timeout = error as? ExecClientError { return true }
        return false
    }

    /// Whole milliseconds, rounded up and at least 1 (0 would mean "no deadline" on the wire).
    static func milliseconds(_ duration: Duration) -> UInt64 {
        let milliseconds = (duration / .milliseconds(1)).rounded(.up)
        return milliseconds < 1 ? 1 : UInt64(min(milliseconds, Double(UInt64.max / 2)))
    }

    static func kind(of response: Execd_V1_Response) -> String {
        switch response.body {
        case .hello: "a hello reply"
        case .run: "a run result"
        case .judge: "a judge result"
        case .status: "a status reply"
        case .admin: "an admin reply"
        case .cancel: "a cancel reply"
        case .error(let error): "error \(error.code): \(error.message)"
        case nil: "a response without a body"
        }
    }
}

/// Hands out increasing request ids from any thread. (A lock from Foundation: NIOConcurrencyHelpers is not a
/// declared dependency of this target, and `Synchronization` needs macOS 15 while the package declares 14.)
private final class RequestIDs: @unchecked Sendable {
    private let lock = NSLock()
    private var nextID: UInt64

    init(first: UInt64) {
        self.nextID = first
    }

    func next() -> UInt64 {
        self.lock.lock()
        defer { self.lock.unlock() }
        let id = self.nextID
        self.nextID &+= 1
        return id
    }
}
