import ExecProtocol
import Harness
import SandboxOS

/// Lets the judge run its sandboxed programs on the engine: same sandboxes, same limits, plus the side channel.
struct EngineExecutor: RunExecutor {
    let engine: RunEngine
    /// The connection the judge request came on (admission is fair across connections).
    let client: UInt64

    func execute(_ request: Execd_V1_RunRequest, sideChannel: (any SideChannelObserver)?) async throws -> Execd_V1_RunResult {
        try await engine.run(request, sideChannel: sideChannel.map(ObserverSink.init), client: client)
    }
}

/// Adapts the harness's observer to the run monitor's sink (SandboxOS cannot know Harness).
private final class ObserverSink: SideChannelSink {
    let observer: any SideChannelObserver

    init(_ observer: any SideChannelObserver) { self.observer = observer }

    func consume(_ bytes: [UInt8]) { observer.consume(bytes) }
    var killDeadline: ContinuousClock.Instant? { observer.killDeadline }
}
