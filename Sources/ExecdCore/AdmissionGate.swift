/// Bounds how many runs execute at once and how many may wait; past that a request is refused at once (`busy`),
/// never queued without bound. Waiting runs are served round-robin across clients (connections), so one client
/// with a thousand queued runs cannot starve another with one.
actor AdmissionGate {
    enum Refusal: Error { case full(queued: Int), shuttingDown, deadlineExceeded }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    let capacity: Int
    let queueLimit: Int
    private(set) var running = 0
    /// Per client, its waiters in arrival order; `turns` lists the clients with waiters, next to be served first.
    private var waiting: [UInt64: [Waiter]] = [:]
    private var turns: [UInt64] = []
    private(set) var queued = 0
    private var nextID: UInt64 = 0
    private var closed = false

    init(capacity: Int, queueLimit: Int) {
        self.capacity = capacity
        self.queueLimit = queueLimit
    }

    /// Waits for a slot. Throws `Refusal.full` when the queue is full, `Refusal.deadlineExceeded` when no slot
    /// came by `deadline`, `CancellationError` if the task is cancelled while waiting.
    func acquire(client: UInt64 = 0, deadline: ContinuousClock.Instant? = nil) async throws {
        if closed { throw Refusal.shuttingDown }
        if running < capacity && queued == 0 {
            running += 1
            return
        }
        guard queued < queueLimit else { throw Refusal.full(queued: queued) }
        nextID += 1
        let id = nextID
        if let deadline {
            Task { [weak self] in
                try? await Task.sleep(until: deadline, clock: .continuous)
                await self?.remove(id, client: client, with: Refusal.deadlineExceeded)
            }
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                if waiting[client, default: []].isEmpty { turns.append(client) }
                waiting[client, default: []].append(Waiter(id: id, continuation: continuation))
                queued += 1
            }
        } onCancel: {
            Task { await self.remove(id, client: client, with: CancellationError()) }
        }
    }

    func release() {
        guard let client = turns.first else {
            running -= 1
            return
        }
        // The slot passes straight to the next client's oldest waiter; that client goes to the back of the line.
        turns.removeFirst()
        var queue = waiting[client] ?? []
        let waiter = queue.removeFirst()
        queued -= 1
        if queue.isEmpty { waiting[client] = nil } else { waiting[client] = queue; turns.append(client) }
        waiter.continuation.resume()
    }

    /// Refuses new work and fails everyone waiting.
    func close() {
        closed = true
        let pending = waiting.values.flatMap { $0 }
        waiting.removeAll()
        turns.removeAll()
        queued = 0
        for waiter in pending { waiter.continuation.resume(throwing: Refusal.shuttingDown) }
    }

    private func remove(_ id: UInt64, client: UInt64, with error: any Error) {
        guard var queue = waiting[client], let index = queue.firstIndex(where: { $0.id == id }) else { return }
        let waiter = queue.remove(at: index)
        queued -= 1
        if queue.isEmpty {
            waiting[client] = nil
            turns.removeAll { $0 == client }
        } else {
            waiting[client] = queue
        }
        waiter.continuation.resume(throwing: error)
    }
}
