import Synchronization

/// A one-shot wake-up: resumed by its timer, by a stop, or by cancellation, whichever comes first.
final class Wakeup: Sendable {
    private enum State { case pending, armed(CheckedContinuation<Bool, Never>), done(Bool) }
    private let state = Mutex(State.pending)

    /// Suspends until ``fire(_:)``; returns the value fired (immediately if already fired).
    func wait() async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
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
    func fire(_ value: Bool) {
        let c: CheckedContinuation<Bool, Never>? = state.withLock { s in
            switch s {
            case .pending: s = .done(value); return nil
            case .armed(let c): s = .done(value); return c
            case .done: return nil
            }
        }
        c?.resume(returning: value)
    }
}

/// The loop a runner wait uses: the caller's own loop (a virtual user's), else one of the shared group.
func timerLoop() -> EventLoop { EventLoop.current ?? EventLoopGroup.shared.next() }

/// Sleeps `nanos` without reacting to task cancellation (the runner's own bookkeeping waits), on a
/// loop timer: the wake-up does not depend on Swift's shared thread pool.
func pauseUncancellable(nanos: UInt64) async {
    let loop = timerLoop()
    let deadline = monotonicNanos() &+ nanos
    await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
        loop.schedule(atNanos: deadline) { c.resume() }
    }
}

/// The runner's side of one virtual user: its stop flag, its sleepers and its connected mark.
final class UserContext: Sendable {
    let index: Int
    let recorder: MetricsRecorder
    let engine: RunEngine
    private let stopping = Atomic<Bool>(false)
    private let connected = Atomic<Bool>(false)
    // Open model: the running iteration's scheduled start, until its first `measure` takes it (0: none).
    private let scheduledStart = Atomic<UInt64>(0)
    private let sleepers = Mutex<(next: Int, waiting: [Int: Wakeup])>((0, [:]))

    init(index: Int, recorder: MetricsRecorder, engine: RunEngine) {
        self.index = index; self.recorder = recorder; self.engine = engine
    }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// Sets the stop flag and wakes every sleeper early.
    func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let all = sleepers.withLock { s in
            let w = Array(s.waiting.values); s.waiting.removeAll(); return w
        }
        for w in all { w.fire(false) }
    }

    /// Updates the connected mark, keeping the engine's count of connected users exact.
    func markConnected(_ value: Bool) {
        let was = connected.exchange(value, ordering: .acquiringAndReleasing)
        if was != value { engine.connectedDelta(value ? 1 : -1) }
    }

    /// Open model: the first ``VirtualUser/measure(_:since:_:)`` of the iteration starting now is
    /// timed from `due`, its scheduled start.
    func beginScheduledIteration(due: UInt64) { scheduledStart.store(due, ordering: .relaxed) }

    /// The scheduled start, once per iteration (nil in the closed model and after the first take).
    func takeScheduledStart() -> UInt64? {
        let v = scheduledStart.exchange(0, ordering: .relaxed)
        return v == 0 ? nil : v
    }

    /// Called once the user's task has finished: a user still marked connected is no longer.
    func finished() { markConnected(false) }

    /// Sleeps `nanos`; returns false when woken early by stop or cancellation.
    func sleep(nanos: UInt64) async -> Bool {
        if isStopping || Task.isCancelled { return false }
        if nanos == 0 { return true }
        let w = Wakeup()
        let token = sleepers.withLock { s in
            s.next += 1; s.waiting[s.next] = w; return s.next
        }
        if isStopping { w.fire(false) } // stop raced with registration
        let timer = timerLoop().schedule(atNanos: monotonicNanos() &+ nanos) { w.fire(true) }
        let completed = await withTaskCancellationHandler { await w.wait() } onCancel: { w.fire(false) }
        if !completed { timer.cancel() }
        _ = sleepers.withLock { $0.waiting.removeValue(forKey: token) }
        return completed
    }
}
