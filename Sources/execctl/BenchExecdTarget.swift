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
    private let request: Execd_V1_RunRequest

    private init(clients: [ExecClient], request: Execd_V1_RunRequest) {
        self.clients = clients
        self.request = request
    }

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
