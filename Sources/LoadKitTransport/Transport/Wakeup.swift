import Synchronization

/// A one-shot wake-up: resumed by its timer, by a stop, by cancellation or by a user signal,
/// whichever comes first.
package final class Wakeup: CancellableOperation, Sendable {
    private enum State { case pending, armed(UnsafeContinuation<Bool, Never>), done(Bool) }
    private let state = Mutex(State.pending)

    /// A wake-up not yet fired.
    package init() {}

    /// Suspends until ``fire(_:)``; returns the value fired (immediately if already fired).
    package func wait() async -> Bool {
        await withUnsafeContinuation { (c: UnsafeContinuation<Bool, Never>) in
            let ready: Bool? = state.withLock { s in
                switch s {
                case .pending: s = .armed(c); return nil
                case .done(let v): return v
                case .armed: return false // cannot happen: one waiter
                }
            }
            if let v = ready { c.resume(returning: v) }
        }
    }

    /// Wakes the waiter with `value` (only the first call counts).
    package func fire(_ value: Bool) {
        let c: UnsafeContinuation<Bool, Never>? = state.withLock { s in
            switch s {
            case .pending: s = .done(value); return nil
            case .armed(let c): s = .done(value); return c
            case .done: return nil
            }
        }
        c?.resume(returning: value)
    }

    /// Cancelled with the task's ``TaskCancellationScope``: wakes the waiter with false.
    package func cancelOperation() { fire(false) }
}
