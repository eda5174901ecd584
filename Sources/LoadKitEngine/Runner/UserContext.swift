import Synchronization
import LoadKitTransport
import LoadKitProtocols

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

/// The runner's side of one virtual user: its stop flag, its sleepers, its connected mark, and
/// the ledger that keeps each failure counted once.
final class UserContext: Sendable {
    let index: Int
    /// The built-in metrics' handles of this user's recorder, shared with the users recording
    /// into it (HTTP and WebSocket handles resolved on first use).
    let handles: RecorderHandles
    let engine: RunEngine
    private let stopping = Atomic<Bool>(false)
    private let connected = Atomic<Bool>(false)
    // WebSocket sessions of this user open now: when the last one ends, the user is no longer
    // connected (``webSocketSessionEnded()``).
    private let liveWebSockets = Atomic<Int>(0)
    // Open model: the running iteration's scheduled start, until its first `measure` takes it (0: none).
    private let scheduledStart = Atomic<UInt64>(0)
    private let sleepers = Mutex(Sleepers())
    // The ledger: counts read lock-free (a step marks them before and after, every request adds
    // to one), the last failure's details under the lock only failures take.
    private let errorCount = Atomic<UInt64>(0)
    // Session failures counted on the loop as they happened (``sessionFailed(_:)``): apart from
    // `errorCount`, which tells a step whether it failed itself.
    private let sessionErrorCount = Atomic<UInt64>(0)
    private let operationCount = Atomic<UInt64>(0)
    private let ledger = Mutex(Ledger())
    private let sessions = Mutex(OpenSessions())
    // The running iteration's number, which sessions opened now are filed under.
    private let iterationNumber = Atomic<Int>(0)
    /// Cancels what the user's own task waits for — a request, a sleep, a scenario's connect —
    /// when the runner cancels the task (one scope per user instead of a handler per wait).
    let cancellationScope = TaskCancellationScope()

    /// This user's recorder (shared with a stripe of other users; thread-safe).
    var recorder: MetricsRecorder { handles.recorder }

    /// The HTTP built-ins' handles in this user's recorder, resolved on first use.
    var httpHandles: HTTPMetricHandles { handles.http }

    /// The runner's per-iteration metrics, pre-resolved in this user's recorder (no name lookup
    /// per iteration).
    var runnerHandles: RunnerHandles { handles.runner }

    init(index: Int, recorder: MetricsRecorder, engine: RunEngine, handles: RecorderHandles? = nil) {
        self.index = index; self.engine = engine
        self.handles = handles ?? RecorderHandles(recorder)
    }

    // MARK: Sessions the script leaves open

    /// Sessions the user's clients opened (weakly held, with the handle the script holds each by,
    /// filed under their iteration), so the runner can close those a script drops still open.
    struct OpenSessions {
        struct Entry {
            weak var session: (any AbandonableSession)?
            weak var handle: (any AnyObject & Sendable)?
            let iteration: Int
        }
        var entries: [Entry] = []
        /// Values the script keeps for this user across iterations (``VirtualUser/once(_:_:)``),
        /// under this lock too (no lock of their own: 8 bytes a user, not 16).
        var kept: [String: any Sendable] = [:]
    }

    /// The value kept under `key`, if any — not a session client whose session has ended (a
    /// STOMP client the server closed, or the runner closed for an iteration that failed): that
    /// one is dropped, so the caller makes a new one.
    func keptValue(_ key: String) -> (any Sendable)? {
        let (value, dropped) = sessions.withLock { s -> ((any Sendable)?, (any Sendable)?) in
            guard let v = s.kept[key] else { return (nil, nil) }
            if let session = v as? any EndingSession, session.hasEnded {
                s.kept.removeValue(forKey: key)
                return (nil, v)
            }
            return (v, nil)
        }
        _ = dropped   // released outside the lock (its deinit may take it)
        return value
    }

    /// Keeps `value` under `key` unless a value is kept there already; returns the one kept.
    func keep(_ value: any Sendable, as key: String) -> any Sendable {
        sessions.withLock { s in
            if let first = s.kept[key] { return first }
            s.kept[key] = value
            return value
        }
    }

    /// Drops the value kept under `key` (released outside the lock).
    func forget(_ key: String) {
        let dropped = sessions.withLock { $0.kept.removeValue(forKey: key) }
        _ = dropped
    }

    /// Drops every kept value (the user has ended), outside the lock: a value's deinit may close
    /// a session, which takes it.
    func forgetAll() {
        let dropped = sessions.withLock { s -> [String: any Sendable] in
            let k = s.kept
            s.kept = [:]
            return k
        }
        _ = dropped
    }

    /// An iteration starts: sessions opened from now on belong to it.
    func beginIteration(_ number: Int) { iterationNumber.store(number, ordering: .relaxed) }

    func sessionOpened(_ session: any AbandonableSession, heldBy handle: any AnyObject & Sendable) {
        let iteration = iterationNumber.load(ordering: .relaxed)
        sessions.withLock { s in
            s.entries.removeAll { $0.session == nil }
            s.entries.append(.init(session: session, handle: handle, iteration: iteration))
        }
    }

    /// Closes (1001) the sessions still open whose handle the script no longer holds, among those
    /// `iteration` opened — nil: every one — counting each in `ws_sessions_left_open` unless
    /// `counted` is false (the runner cancelled the user: its script could not close them).
    /// Dropped open, a session would hold a socket on both sides until the process ends and never
    /// record its `ws_session_duration`; a client the script keeps (across iterations, say) is
    /// the script's to close.
    func closeSessionsLeftOpen(iteration: Int?, counted: Bool = true) {
        let left = sessions.withLock { s -> [any AbandonableSession] in
            guard !s.entries.isEmpty else { return [] }
            var taken: [any AbandonableSession] = []
            s.entries.removeAll { e in
                guard let session = e.session else { return true }
                guard e.handle == nil, iteration == nil || e.iteration == iteration else { return false }
                taken.append(session)
                return true
            }
            return taken
        }
        let r = recorder
        for session in left {
            session.closeAbandoned { if counted { r.increment(BuiltInMetrics.wsSessionsLeftOpen) } }
        }
    }

    // MARK: Counting each failure once

    // A thrown error that leaves a step (or the script) right after a recorded failure — nothing
    // succeeded since — is that failure surfacing again, not a second one: an HTTP 500 the client
    // counted, then `requireStatus()` (or the script's own error) throwing.

    /// The user's failures and operations counted so far: compared with a later mark, what a
    /// step did (``recordFailure(_:step:since:)``).
    struct Mark: Sendable, Equatable {
        /// Failures counted in the user's steps and requests.
        var errors: UInt64
        var operations: UInt64
        /// Session failures counted on the loop (a STOMP ERROR): not the step's own failure, but a
        /// script error thrown right after one (nothing succeeded since) is that failure again.
        var sessionErrors: UInt64 = 0
    }

    /// The last counted failure: the operations count then, and its kind.
    private struct Ledger: Sendable {
        var operationsAtLastError: UInt64 = 0
        var lastKind = ""
    }

    /// Kinds that only say "the script gave up" — they never re-classify a counted failure.
    private static let genericKinds: Set<String> = ["assertion", "script_error", "cancelled"]

    /// The ledger now, to compare with later (``recordFailure(_:step:since:)``).
    var mark: Mark {
        Mark(errors: errorCount.load(ordering: .relaxed), operations: operationCount.load(ordering: .relaxed),
             sessionErrors: sessionErrorCount.load(ordering: .relaxed))
    }

    /// Counts one successful operation (the error rate's denominator).
    func recordSuccess(_ n: Int64 = 1) {
        recorder.increment(runnerHandles.operations, by: n)
        countSuccessInLedger(n)
    }

    /// The ledger's half of ``recordSuccess(_:)``, for a caller that counted the operation in
    /// the recorder under a lock it held anyway.
    @inline(__always)
    func countSuccessInLedger(_ n: Int64 = 1) { operationCount.wrappingAdd(UInt64(n), ordering: .relaxed) }

    /// Counts a classified failure of `step`. With `since`, a failure that only surfaces one
    /// already recorded after that mark (with no success in between) is not counted again; if
    /// the script classified it more specifically (its own ``ClassifiedError`` kind, not a
    /// generic `assertion`), the counted failure moves to that kind. A copy of a failure a client
    /// counted as it happened (``CountedFailure``, same occurrence) is never counted again.
    /// Returns whether it was counted.
    @discardableResult
    func recordFailure(_ error: any Error, step: String, since mark: Mark? = nil) -> Bool {
        let kind = error.loadKitKind
        // A copy of a failure a client counted as it happened (its occurrence says so).
        if let copy = error as? any CountedFailure, copy.occurrence != 0 { return false }
        enum Decision { case count, skip, reclassify(from: String) }
        let decision = ledger.withLock { l -> Decision in
            let errors = errorCount.load(ordering: .relaxed), operations = operationCount.load(ordering: .relaxed)
            let failedSince = mark.map { errors > $0.errors || sessionErrorCount.load(ordering: .relaxed) > $0.sessionErrors } ?? false
            if failedSince, operations == l.operationsAtLastError {
                guard error is any ClassifiedError, kind != l.lastKind, !Self.genericKinds.contains(kind) else { return .skip }
                let old = l.lastKind
                l.lastKind = kind
                return .reclassify(from: old)
            }
            errorCount.wrappingAdd(1, ordering: .relaxed)
            l.operationsAtLastError = operations
            l.lastKind = kind
            return .count
        }
        switch decision {
        case .count: recorder.error(error, step: step); return true
        case .skip: return false
        case .reclassify(let old): recorder.reclassifyError(from: old, to: error, step: step); return false
        }
    }

    /// A connected session the server ended (a STOMP ERROR, missed heart-beats, a drop): one
    /// failure, counted now under step `connection`. Its copies the script sees later carry the
    /// occurrence and are never counted again; a script error thrown right after it (nothing
    /// succeeded since) is taken for it, as after any counted failure. Kept out of `errorCount`:
    /// it happened on the loop, not in the step that may be running then (which keeps its sample).
    func sessionFailed(_ error: any CountedFailure) -> Bool {
        ledger.withLock { l in
            sessionErrorCount.wrappingAdd(1, ordering: .relaxed)
            l.operationsAtLastError = operationCount.load(ordering: .relaxed)
            l.lastKind = error.kind
        }
        recorder.error(error, step: "connection")
        return true
    }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// The user's sleeps in progress. Almost always one (the user's own task's), kept inline: the
    /// first sleep registered takes the inline slot, sleeps beside it (the script's child tasks)
    /// go to `others` — no dictionary per user otherwise.
    struct Sleepers {
        var next = 0
        var first: (token: Int, wakeup: Wakeup)?
        var others: [Int: Wakeup] = [:]

        mutating func add(_ w: Wakeup) -> Int {
            next += 1
            if first == nil { first = (next, w) } else { others[next] = w }
            return next
        }

        mutating func remove(_ token: Int) {
            if first?.token == token { first = nil } else if !others.isEmpty { others.removeValue(forKey: token) }
        }

        mutating func takeAll() -> [Wakeup] {
            var all = Array(others.values)
            if let f = first { all.append(f.wakeup) }
            first = nil
            others = [:]
            return all
        }
    }

    /// Sets the stop flag and wakes every sleeper early.
    func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let all = sleepers.withLock { $0.takeAll() }
        for w in all { w.fire(false) }
    }

    /// Updates the connected mark, keeping the engine's count of connected users exact.
    func markConnected(_ value: Bool) {
        let was = connected.exchange(value, ordering: .acquiringAndReleasing)
        if was != value { engine.connectedDelta(value ? 1 : -1) }
    }

    /// A WebSocket session of this user opened.
    func webSocketSessionStarted() { liveWebSockets.add(1, ordering: .relaxed) }

    /// A WebSocket session of this user ended (the server closed or dropped it, or the script
    /// closed it). With none left open, a user marked connected is not any more: a held-out user
    /// whose server died read `connections held 100 %` and a flat `connected` series.
    func webSocketSessionEnded() {
        if liveWebSockets.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { markConnected(false) }
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

    /// Sleeps `nanos`; returns false when woken early by stop, cancellation or `signal`.
    func sleep(nanos: UInt64, unless signal: UserSignal? = nil) async -> Bool {
        if isStopping || Task.isCancelled || signal?.hasFired == true { return false }
        if nanos == 0 {
            // No wait, but a script looping on a zero sleep (a computed pause of 0) gives its loop
            // back once the loop's turn has run for 1 ms: else the plan's timers, the stop
            // included, never fire on that loop.
            if let loop = EventLoop.current, loop.turnHeld(now: monotonicNanos()) { await loop.yieldThread() }
            return !(isStopping || Task.isCancelled || signal?.hasFired == true)
        }
        let w = Wakeup()
        let token = sleepers.withLock { $0.add(w) }
        if isStopping { w.fire(false) } // stop raced with registration
        signal?.attach(w)               // fires `w` at once when the signal came first
        let timer = timerLoop().schedule(atNanos: monotonicNanos() &+ nanos) { w.fire(true) }
        let completed: Bool
        if cancellationScope.isCurrentTask {
            // The user's own task: cancelled through its scope (the runner cancels both), not a
            // cancellation handler — a handler's frames and record sit in every parked user's task
            // (≈ 0.3 KB of the task's deepest stack, which the task keeps for life).
            if !cancellationScope.enter(w) { w.fire(false) }
            completed = await w.wait()
            cancellationScope.leave()
        } else {
            completed = await withTaskCancellationHandler { await w.wait() } onCancel: { w.fire(false) }
        }
        if !completed { timer.cancel() }
        sleepers.withLock { $0.remove(token) }
        return completed
    }
}

/// The built-in metrics' handles of one recorder, shared by every user recording into it: held
/// per user, the HTTP handles alone were ≈ 0.1 KB of each user's context, also in scenarios that
/// make no request (`bench chat`). The HTTP and WebSocket handles are resolved on first use, so
/// a run without requests shows no HTTP metrics; reading them takes no lock.
final class RecorderHandles: Sendable {
    let recorder: MetricsRecorder
    let runner: RunnerHandles
    private let httpRef = OnceReference<HTTPHandlesBox>()
    private let webSocketRef = OnceReference<WebSocketHandlesBox>()
    private let streamRef = OnceReference<StreamTrafficMetrics>()

    // Two non-generic boxes, not one generic: a generic class's metadata is looked up at run time
    // on every load (what `OnceReference` replaced `AtomicLazyReference<Ref<T>>` for).
    private final class HTTPHandlesBox: Sendable {
        let value: HTTPMetricHandles
        init(_ value: HTTPMetricHandles) { self.value = value }
    }

    private final class WebSocketHandlesBox: Sendable {
        let value: WebSocketMetricHandles
        init(_ value: WebSocketMetricHandles) { self.value = value }
    }

    init(_ r: MetricsRecorder) {
        recorder = r
        runner = RunnerHandles(r)
    }

    /// The HTTP built-ins' handles (resolved by the first request; resolving twice is harmless).
    var http: HTTPMetricHandles {
        if let h = httpRef.load() { return h.value }
        return httpRef.storeIfNil(HTTPHandlesBox(HTTPMetricHandles(recorder))).value
    }

    /// The WebSocket built-ins' handles (resolved by the first session).
    var webSocket: WebSocketMetricHandles {
        if let h = webSocketRef.load() { return h.value }
        return webSocketRef.storeIfNil(WebSocketHandlesBox(WebSocketMetricHandles(recorder))).value
    }

    /// The byte counters of plain-stream connections (STOMP over TCP), resolved by the first one
    /// and shared by all: it holds no per-connection state.
    var stream: StreamTrafficMetrics {
        if let s = streamRef.load() { return s }
        return streamRef.storeIfNil(StreamTrafficMetrics(recorder))
    }
}

/// A reference stored once and then read without a lock, as `AtomicLazyReference` — whose `load`
/// instantiated generic metadata through the runtime's hash table on every call (≈ 3.5 % of a
/// request's CPU in `loadkit bench http`): here the retained instance's address sits in an
/// `Atomic<UInt>`, and the code is specialised for the boxed type.
struct OnceReference<Instance: AnyObject & Sendable>: ~Copyable, Sendable {
    private let bits = Atomic<UInt>(0)

    init() {}

    deinit {
        let b = bits.load(ordering: .acquiring)
        if b != 0 { Unmanaged<Instance>.fromOpaque(UnsafeRawPointer(bitPattern: b)!).release() }
    }

    /// The stored instance, or nil before the first ``storeIfNil(_:)``.
    @inline(__always)
    func load() -> Instance? {
        let b = bits.load(ordering: .acquiring)
        return b == 0 ? nil : Unmanaged<Instance>.fromOpaque(UnsafeRawPointer(bitPattern: b)!).takeUnretainedValue()
    }

    /// Stores `instance` unless one is stored already; returns the one that stays.
    func storeIfNil(_ instance: Instance) -> Instance {
        let new = UInt(bitPattern: Unmanaged.passRetained(instance).toOpaque())
        let (exchanged, current) = bits.compareExchange(expected: 0, desired: new, ordering: .acquiringAndReleasing)
        if exchanged { return instance }
        Unmanaged<Instance>.fromOpaque(UnsafeRawPointer(bitPattern: new)!).release()
        return Unmanaged<Instance>.fromOpaque(UnsafeRawPointer(bitPattern: current)!).takeUnretainedValue()
    }
}

/// The runner's metrics recorded on every iteration, resolved once per recorder.
struct RunnerHandles: Sendable {
    let operations, iterations: CounterHandle
    let iterationDuration: TrendHandle

    init(_ r: MetricsRecorder) {
        operations = r.counter(RunnerMetrics.operations)
        iterations = r.counter(RunnerMetrics.iterations)
        iterationDuration = r.trend(RunnerMetrics.iterationDuration)
    }
}

/// A one-shot event a user's sleep also ends on — a connection that closed — so the script
/// reacts when it happens, not at its next tick. One sleep waits on it at a time (the user's own
/// task); a second concurrent sleep would take the first one's place.
package final class UserSignal: Sendable {
    private let state = Mutex<(fired: Bool, waiter: Wakeup?)>((false, nil))

    /// A signal not yet fired.
    package init() {}

    /// True once ``fire()`` was called.
    package var hasFired: Bool { state.withLock { $0.fired } }

    /// Fires the signal: a sleep waiting on it ends now (returning false), later ones at once.
    package func fire() {
        let w: Wakeup? = state.withLock { s in
            s.fired = true
            defer { s.waiter = nil }
            return s.waiter
        }
        w?.fire(false)
    }

    /// The sleep's wake-up to fire with the signal (fired at once when the signal already was).
    fileprivate func attach(_ w: Wakeup) {
        let now = state.withLock { s in
            if s.fired { return true }
            s.waiter = w
            return false
        }
        if now { w.fire(false) }
    }
}
