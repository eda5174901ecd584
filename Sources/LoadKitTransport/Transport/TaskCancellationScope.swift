import Synchronization

/// An operation a ``TaskCancellationScope`` can cancel: a request waiting for its answer, a
/// user's sleep, a scenario's connect in flight.
package protocol CancellableOperation: AnyObject, Sendable {
    /// Ends the operation as its cancellation does (a request fails with `CancellationError`, a
    /// sleep wakes early), from any thread.
    func cancelOperation()
}

/// Cancellation for one long-lived task's operations, set up once for the task instead of once
/// per operation: a virtual user makes thousands of requests, and a cancellation handler per
/// request costs a status-record lock to add and another to remove, two executor switches and a
/// closure context each time (`perf` on the README scenario). One operation at a time — a task
/// awaits one thing at a time — registers with ``enter(_:)`` while it waits. The scope does not
/// watch the task: whoever cancels the task calls ``cancel()`` as well (the runner, which alone
/// holds its users' tasks). A cancellation handler around the task's whole body would do it
/// without help, but costs every user a deeper parked frame chain (≈ 0.7 KB per STOMP chat worker,
/// `loadkit bench chat`). Operations of other tasks (a child task of the script) must not use the
/// scope: ``isCurrentTask`` tells them apart.
package final class TaskCancellationScope: Sendable {
    private let owner = Atomic<Int>(0)
    private let state = Mutex<(cancelled: Bool, current: (any CancellableOperation)?)>((false, nil))

    /// A scope for the task that will call ``run(_:)``.
    package init() {}

    /// Makes the calling task the scope's owner (its identity: the task's address).
    package func adopt() { owner.store(Self.currentTaskIdentity, ordering: .relaxed) }

    /// The owner is done: a later task allocated at the same address is not taken for it.
    package func release() { owner.store(0, ordering: .relaxed) }

    /// True when the calling task is the one running the scope (its children are not).
    @inline(__always)
    package var isCurrentTask: Bool {
        let o = owner.load(ordering: .relaxed)
        return o != 0 && Self.currentTaskIdentity == o
    }

    /// The running task's address (0 outside a task). `UnsafeCurrentTask` is one task reference;
    /// read as its bits it costs no hashing on the per-request path (the task's hash, the
    /// fallback, was ≈ 1 % of a request's CPU in `loadkit bench http`).
    @inline(__always)
    private static var currentTaskIdentity: Int {
        withUnsafeCurrentTask { task in
            guard let task else { return 0 }
            if MemoryLayout<UnsafeCurrentTask>.size == MemoryLayout<Int>.size {
                return unsafeBitCast(task, to: Int.self)
            }
            return task.hashValue | 1
        }
    }

    /// Registers the task's current operation; false (nothing registered) when the task is
    /// already cancelled — the caller then fails the operation itself.
    package func enter(_ op: any CancellableOperation) -> Bool {
        state.withLock { s in
            if s.cancelled { return false }
            s.current = op
            return true
        }
    }

    /// The operation finished; it is no longer cancelled with the task.
    package func leave() { state.withLock { $0.current = nil } }

    /// Cancels the registered operation, and every later one at once (call it with the task's
    /// `cancel()`).
    package func cancel() {
        let op = state.withLock { s -> (any CancellableOperation)? in
            s.cancelled = true
            defer { s.current = nil }
            return s.current
        }
        op?.cancelOperation()
    }
}
