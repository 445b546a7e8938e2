import NIOCore
import ExecProtocol

/// Runs the program through execd: one `RunRequest` per run, over one connection per worker or one shared by all.
struct BenchExecdTarget: BenchTarget {
    /// How the workers reach execd.
    enum Connections: String, CaseIterable, Sendable {
        /// Each worker has its own connection (one request in flight on each).
        case perWorker = "per-worker"
        /// All workers multiplex their requests over one connection.
        case shared
    }

    private let clients: [ExecClient]
    private let executors: [EventLoopTaskExecutor]
    private let request: Execd_V1_RunRequest

    private init(clients: [ExecClient], request: Execd_V1_RunRequest) {
        self.clients = clients
        self.executors = clients.map { EventLoopTaskExecutor($0.eventLoop) }
        self.request = request
    }

    func executor(worker: Int) -> (any TaskExecutor)? { executors[worker % executors.count] }

    /// Connects (once, or once per worker) and says hello; throws `ExecClientError.connectFailed` and friends.
    static func connect(
        socketPath: String,
        connections: Connections,
        workers: Int,
        request: Execd_V1_RunRequest
    ) async throws -> BenchExecdTarget {
        var clients: [ExecClient] = []
        for _ in 0..<(connections == .shared ? 1 : workers) {
            clients.append(try await ExecClient.connect(socketPath: socketPath, clientName: "execctl-bench"))
        }
        return BenchExecdTarget(clients: clients, request: request)
    }

    func runOnce(worker: Int) async -> BenchSample {
        do {
            let result = try await clients[worker % clients.count].run(request)
            guard result.status == .ok else { return .error(result.status.name) }
            return .ok(wallMicros: result.wallTimeUs, cpuMicros: result.cpuTimeUs)
        } catch let error as ExecClientError {
            return Self.sample(for: error)
        } catch {
            return .error("client_error")
        }
    }

    func close() async {
        for client in clients { await client.close() }
    }

    private static func sample(for error: ExecClientError) -> BenchSample {
        switch error {
        case .server(let code, _): .error("server_" + snakeCase("\(code)"))
        case .connectionClosed: .error("connection_closed", endsWorker: true)
        case .connectFailed: .error("connect_failed", endsWorker: true)
        case .timeout: .error("timeout")
        case .requestTooLarge: .error("request_too_large", endsWorker: true)
        case .protocolViolation: .error("protocol_violation", endsWorker: true)
        }
    }

    /// `deadlineExceeded` → `deadline_exceeded`.
    private static func snakeCase(_ name: String) -> String {
        var out = ""
        for character in name {
            if character.isUppercase {
                out += "_" + character.lowercased()
            } else {
                out.append(character)
            }
        }
        return out
    }
}

/// Runs a task's jobs on an event loop (a job enqueued from the loop itself only joins its queue: no wake-up).
final class EventLoopTaskExecutor: TaskExecutor {
    let loop: any EventLoop

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
