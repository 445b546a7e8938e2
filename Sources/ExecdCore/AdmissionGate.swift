import Foundation
import Synchronization

/// Bounds how many runs execute at once and how many may wait; past that a request is refused at once (`busy`),
/// never queued without bound. Waiting runs are served round-robin across clients (connections), so one client
/// with a thousand queued runs cannot starve another with one.
///
/// Two bounds apply: `capacity` runs at most in all, and of those at most `activeLimit` *active* ones, which have not
/// been found waiting (`park`). A run starts active; a run that sleeps, waits for input or otherwise leaves the CPU
/// is parked by its monitor and makes room for the next. So runs that use the CPU get a core each instead of taking
/// turns (two runs on one core cost each other their caches: a trivial Python run used 1.5× the CPU time at
/// concurrency 4 on two cores as at concurrency 1, which also skews CPU-time limits), and runs that wait cannot hold
/// the cores.
///
/// Callback-based and lock-protected rather than an actor: a run that finds a free slot is admitted on the calling
/// thread, without a hop to another executor.
final class AdmissionGate: Sendable {
    enum Refusal: Error, Equatable { case full(queued: Int), shuttingDown, deadlineExceeded, cancelled }
    typealias Grant = @Sendable (Result<Void, Refusal>) -> Void

    private struct Waiter {
        let id: UInt64
        let grant: Grant
    }

    private struct State {
        var running = 0
        /// Admitted and not parked.
        var active = 0
        /// Per client, its waiters in arrival order; `turns` lists the clients with waiters, next to be served first.
        var waiting: [UInt64: [Waiter]] = [:]
        var turns: [UInt64] = []
        var queued = 0
        var nextID: UInt64 = 0
        var closed = false
    }

    let capacity: Int
    let activeLimit: Int
    let queueLimit: Int
    private let state = Mutex(State())

    init(capacity: Int, activeLimit: Int? = nil, queueLimit: Int) {
        self.capacity = capacity
        self.activeLimit = min(capacity, max(1, activeLimit ?? capacity))
        self.queueLimit = queueLimit
    }

    var running: Int { state.withLock { $0.running } }
    var active: Int { state.withLock { $0.active } }
    var queued: Int { state.withLock { $0.queued } }

    /// Asks for a slot. `grant` is called exactly once: at once, on this thread, when a slot is free or the request
    /// is refused (queue full, shutting down); later, on the thread that frees a slot or expires the deadline, when
    /// it had to wait. Returns the waiter's id when it waits (for `cancel`).
    @discardableResult
    func enter(client: UInt64 = 0, deadline: ContinuousClock.Instant? = nil, _ grant: @escaping Grant) -> UInt64? {
        enum Decision { case admitted, refused(Refusal), queued(UInt64) }
        let decision = state.withLock { s -> Decision in
            if s.closed { return .refused(.shuttingDown) }
            if s.running < capacity && s.active < activeLimit && s.queued == 0 {
                s.running += 1
                s.active += 1
                return .admitted
            }
            guard s.queued < queueLimit else { return .refused(.full(queued: s.queued)) }
            s.nextID += 1
            if s.waiting[client, default: []].isEmpty { s.turns.append(client) }
            s.waiting[client, default: []].append(Waiter(id: s.nextID, grant: grant))
            s.queued += 1
            return .queued(s.nextID)
        }
        switch decision {
        case .admitted:
            grant(.success(()))
            return nil
        case .refused(let refusal):
            grant(.failure(refusal))
            return nil
        case .queued(let id):
            if let deadline {
                let wait = deadline - .now
                let nanoseconds = max(0, wait.components.seconds * 1_000_000_000 + wait.components.attoseconds / 1_000_000_000)
                DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: nanoseconds))) {
                    self.cancel(id, client: client, with: .deadlineExceeded)
                }
            }
            return id
        }
    }

    /// Frees a run's place (`parked`: the run was parked, its active place is already free): it passes straight to
    /// the next client's oldest waiter, and that client goes to the back of the line.
    func release(parked: Bool = false) {
        let next = state.withLock { s -> Waiter? in
            s.running -= 1
            if !parked { s.active -= 1 }
            return admitNext(&s)
        }
        next?.grant(.success(()))
    }

    /// A running run is waiting rather than computing: its active place goes to the next waiter, if any (it keeps
    /// its place among the `capacity` runs until `release(parked: true)`).
    func park() {
        let next = state.withLock { s -> Waiter? in
            s.active -= 1
            return admitNext(&s)
        }
        next?.grant(.success(()))
    }

    private func admitNext(_ s: inout State) -> Waiter? {
        guard s.running < capacity, s.active < activeLimit, let client = s.turns.first else { return nil }
        s.turns.removeFirst()
        var queue = s.waiting[client] ?? []
        let waiter = queue.removeFirst()
        s.queued -= 1
        s.running += 1
        s.active += 1
        if queue.isEmpty { s.waiting[client] = nil } else { s.waiting[client] = queue; s.turns.append(client) }
        return waiter
    }

    /// Refuses new work and fails everyone waiting.
    func close() {
        let pending: [Waiter] = state.withLock { s in
            s.closed = true
            let pending = s.waiting.values.flatMap { $0 }
            s.waiting.removeAll()
            s.turns.removeAll()
            s.queued = 0
            return pending
        }
        for waiter in pending { waiter.grant(.failure(.shuttingDown)) }
    }

    /// Takes a waiter out of the queue and refuses it; nothing if it already got its slot.
    func cancel(_ id: UInt64, client: UInt64, with refusal: Refusal) {
        let removed: Waiter? = state.withLock { s in
            guard var queue = s.waiting[client], let index = queue.firstIndex(where: { $0.id == id }) else { return nil }
            let waiter = queue.remove(at: index)
            s.queued -= 1
            if queue.isEmpty {
                s.waiting[client] = nil
                s.turns.removeAll { $0 == client }
            } else {
                s.waiting[client] = queue
            }
            return waiter
        }
        removed?.grant(.failure(refusal))
    }
}
