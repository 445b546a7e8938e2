/// Bounds how many runs execute at once and how many may wait; past that a request is refused at once (`busy`),
/// never queued without bound. Waiters are served first come, first served.
actor AdmissionGate {
    enum Refusal: Error { case full(queued: Int), shuttingDown, deadlineExceeded }

    let capacity: Int
    let queueLimit: Int
    private(set) var running = 0
    private var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    private var nextID: UInt64 = 0
    private var closed = false

    init(capacity: Int, queueLimit: Int) {
        self.capacity = capacity
        self.queueLimit = queueLimit
    }

    var queued: Int { waiters.count }

    /// Waits for a slot. Throws `Refusal.full` when the queue is full, `Refusal.deadlineExceeded` when no slot
    /// came by `deadline`, `CancellationError` if the task is cancelled while waiting.
    func acquire(deadline: ContinuousClock.Instant? = nil) async throws {
        if closed { throw Refusal.shuttingDown }
        if running < capacity && waiters.isEmpty {
            running += 1
            return
        }
        guard waiters.count < queueLimit else { throw Refusal.full(queued: waiters.count) }
        nextID += 1
        let id = nextID
        if let deadline {
            Task { [weak self] in
                try? await Task.sleep(until: deadline, clock: .continuous)
                await self?.expire(id)
            }
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                waiters.append((id, continuation))
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
    }

    func release() {
        if waiters.isEmpty {
            running -= 1
        } else {
            waiters.removeFirst().continuation.resume()  // the slot passes straight to the next waiter
        }
    }

    /// Refuses new work and fails everyone waiting.
    func close() {
        closed = true
        let pending = waiters
        waiters.removeAll()
        for waiter in pending { waiter.continuation.resume(throwing: Refusal.shuttingDown) }
    }

    private func expire(_ id: UInt64) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: Refusal.deadlineExceeded)
    }

    private func cancelWaiter(_ id: UInt64) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: CancellationError())
    }
}
