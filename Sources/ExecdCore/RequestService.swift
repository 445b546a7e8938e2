import ExecProtocol
import Harness
import Logging

/// Answers requests, independent of the transport: hello, run, and (as they arrive) judge and admin.
public final class RequestService: Sendable {
    public static let serverVersion = "execd/0.1.0"

    let engine: RunEngine
    let maxFrameBytes: Int
    let logger: Logger

    public init(engine: RunEngine, maxFrameBytes: Int, logger: Logger) {
        self.engine = engine
        self.maxFrameBytes = maxFrameBytes
        self.logger = logger
    }

    func hello(_ hello: Execd_V1_Hello) -> Execd_V1_Response.OneOf_Body {
        guard hello.protocolVersion == ExecProtocol.protocolVersion else {
            return .error(Execd_V1_Error(
                code: .unsupportedVersion,
                message: "protocol version \(hello.protocolVersion) is not supported; this server speaks version \(ExecProtocol.protocolVersion)"))
        }
        var reply = Execd_V1_HelloReply()
        reply.protocolVersion = ExecProtocol.protocolVersion
        reply.serverVersion = Self.serverVersion
        reply.maxFrameBytes = UInt64(maxFrameBytes)
        reply.languages = [.python, .javascript]
        reply.defaultLimits = engine.config.defaults.wire
        reply.maxLimits = engine.config.maxima.wire
        return .hello(reply)
    }

    func handle(_ body: Execd_V1_Request.OneOf_Body, queueDeadline: ContinuousClock.Instant?, client: UInt64 = 0) async -> Execd_V1_Response.OneOf_Body {
        do {
            switch body {
            case .run(let run):
                let result = try await engine.run(run, queueDeadline: queueDeadline, client: client)
                logRun(result, language: run.language)
                return .run(result)
            case .judge(let judge):
                return try await self.judge(judge, client: client)
            case .status:
                return .status(await engine.status())
            case .admin(let admin):
                let reply = try engine.admin(admin)
                logger.notice("admin", metadata: ["action": "\(String(describing: admin.action))", "result": "\(reply.message)"])
                return .admin(reply)
            case .hello, .cancel:
                preconditionFailure("handled by the connection")
            }
        } catch {
            logger.notice("request refused", metadata: ["code": "\(error.code)", "reason": "\(error.message)"])
            return .error(Execd_V1_Error(code: error.code.wire, message: error.message))
        }
    }
}

extension RequestService {
    /// Starts a run and answers through `reply` (on a pool thread, or at once when refused): the path that costs one
    /// thread hop each way. `handle` cancels it.
    func submitRun(_ run: Execd_V1_RunRequest, handle: RunHandle, queueDeadline: ContinuousClock.Instant?, client: UInt64,
                   reply: @escaping @Sendable (Execd_V1_Response.OneOf_Body) -> Void) {
        engine.submit(run, handle: handle, queueDeadline: queueDeadline, client: client) { [self] outcome in
            switch outcome {
            case .success(let result):
                logRun(result, language: run.language)
                reply(.run(result))
            case .failure(let error):
                logger.notice("request refused", metadata: ["code": "\(error.code)", "reason": "\(error.message)"])
                reply(.error(Execd_V1_Error(code: error.code.wire, message: error.message)))
            }
        }
    }

    /// One line per run at debug level (a busy daemon serves a thousand a second); failures of ours at error level.
    func logRun(_ result: Execd_V1_RunResult, language: Execd_V1_Language) {
        logger.debug("run", metadata: [
            "run": "\(result.runID)", "lang": "\(language.name)", "status": "\(result.status)",
            "wall_us": "\(result.wallTimeUs)", "cpu_us": "\(result.cpuTimeUs)",
        ])
        if result.status == .internalError {
            logger.error("run failed inside execd", metadata: ["run": "\(result.runID)", "error": "\(result.internalError)"])
        }
    }

    /// Judges a submission: all its tests in as few sandboxed runs as possible, compared on this side.
    func judge(_ request: Execd_V1_JudgeRequest, client: UInt64) async throws(ExecdError) -> Execd_V1_Response.OneOf_Body {
        var configuration = Judge.Configuration()
        configuration.maxRunTime = min(engine.config.maxima.cpuTime, engine.config.maxima.wallTime)
        let judge = Judge(executor: EngineExecutor(engine: engine, client: client), configuration: configuration)
        do {
            let result = try await judge.judge(request)
            logger.info("judge", metadata: [
                "verdict": "\(JudgeReport.name(result.verdict))", "passed": "\(result.passed)/\(result.total)",
                "wall_us": "\(result.wallTimeUs)",
            ])
            return .judge(result)
        } catch let error as ExecdError {
            throw error
        } catch JudgeError.badRequest(let message) {
            throw ExecdError(.badRequest, message)
        } catch {
            throw ExecdError(.internalError, "\(error)")
        }
    }
}

extension ExecdError.Code {
    var wire: Execd_V1_ErrorCode {
        switch self {
        case .badRequest: .badRequest
        case .unsupportedLanguage: .unsupportedLanguage
        case .busy: .busy
        case .internalError: .internal
        case .cancelled: .cancelled
        case .shuttingDown: .shuttingDown
        case .deadlineExceeded: .deadlineExceeded
        case .notFound: .notFound
        }
    }
}
