import Synchronization

/// An operation a ``TaskCancellationScope`` can cancel (a request waiting for its answer).
package protocol CancellableOperation: AnyObject, Sendable {
    /// Ends the operation with `CancellationError`, from any thread.
    func cancelOperation()
}

/// Cancellation for one long-lived task's operations, installed once around the task instead of
/// once per operation: a virtual user makes thousands of requests, and a cancellation handler per
/// request costs a status-record lock to add and another to remove, two executor switches and a
/// closure context each time (`perf` on the README scenario). One operation at a time — a task
/// awaits one thing at a time — registers with ``enter(_:)`` while it waits; cancelling the task
/// cancels it. Operations of other tasks (a child task of the script) must not use the scope:
/// ``isCurrentTask`` tells them apart.
package final class TaskCancellationScope: Sendable {
    private let owner = Atomic<Int>(0)
    private let state = Mutex<(cancelled: Bool, current: (any CancellableOperation)?)>((false, nil))

    /// A scope for the task that will call ``run(_:)``.
    package init() {}

    /// Runs `body` in the calling task with the scope installed: cancelling the task cancels the
    /// registered operation (and every later one, at once).
    package func run(_ body: () async -> Void) async {
        // The task's identity: its hash (from its address). Cleared when the task leaves, so a
        // later task allocated at the same address is not taken for it.
        owner.store(withUnsafeCurrentTask { $0?.hashValue } ?? 0, ordering: .relaxed)
        defer { owner.store(0, ordering: .relaxed) }
        await withTaskCancellationHandler { await body() } onCancel: { cancel() }
    }

    /// True when the calling task is the one running the scope (its children are not).
    @inline(__always)
    package var isCurrentTask: Bool {
        let o = owner.load(ordering: .relaxed)
        return o != 0 && withUnsafeCurrentTask { $0?.hashValue } == o
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

    private func cancel() {
        let op = state.withLock { s -> (any CancellableOperation)? in
            s.cancelled = true
            defer { s.current = nil }
            return s.current
        }
        op?.cancelOperation()
    }
}
