import LoadKitTransport
import LoadKitProtocols

/// One virtual user, handed to the scenario script. Records into its own (striped) recorder,
/// knows when it must stop, and offers the pacing helpers a script needs.
///
/// Closed model (stages) and bursts: the script is the user's life and is run again after it
/// returns (k6 semantics) until the user must stop; a long-lived user loops inside with ``every(_:_:)``.
/// Open model (arrival rate): the script is one iteration, started at ``scheduledStartNanos``.
public struct VirtualUser: Sendable {
    let context: UserContext
    /// 0-based number of this user in the run (pooled users keep theirs across iterations).
    public let index: Int
    /// Closed model and bursts: how many times this user has run the script before this call (0 on
    /// the first). Open model: the iteration's number in the run's schedule.
    public let iteration: Int
    /// When this run of the script was *due* (``monotonicNanos()``). In the open model the
    /// iteration starts at or after this instant (never before) and its first ``measure(_:since:_:)``
    /// is timed from here, not from when it actually started, so a stalled server cannot hide its
    /// stall (coordinated omission, as wrk2 does). In the closed model: when the script started.
    public let scheduledStartNanos: UInt64

    init(context: UserContext, iteration: Int, scheduledStartNanos: UInt64) {
        self.context = context; self.index = context.index
        self.iteration = iteration; self.scheduledStartNanos = scheduledStartNanos
    }

    /// 1-based user id (`memberId` in seed 002).
    public var id: Int { index + 1 }
    /// This user's recorder (shared with a stripe of other users; thread-safe).
    package var recorder: MetricsRecorder { context.recorder }
    /// The run's settings (environment + `.env`).
    public var settings: Settings { context.engine.settings }
    /// The run's name.
    public var testName: String { context.engine.name }
    /// True once the user must wind down: ramp-down, end of plan, deadline, abort, signal or cancellation.
    public var isStopping: Bool { context.isStopping || Task.isCancelled }

    /// Times `body` into the trend `step` (microseconds) and counts a successful operation; when
    /// `body` throws, records the classified error with `step` and rethrows (a failed step is not
    /// added to the latency trend). Pass `since:` to time from an earlier instant.
    ///
    /// Open model (arrival rate): the *first* `measure` of an iteration that is not given `since:`
    /// is timed from the iteration's scheduled start (``scheduledStartNanos``), not from the call,
    /// as wrk2 times requests: an iteration that started late because the generator or a stalled
    /// server held it back shows that delay in its latency (no coordinated omission). Later
    /// `measure` calls in the same iteration, and every call in the closed model, time from the call.
    ///
    /// Each failure is counted once: when a client used inside the step already counted it (an
    /// HTTP status outside the expected ones, a refused connection), the error the step throws
    /// for it is not counted again — neither here nor when it leaves the script. Requests the
    /// step makes are its operations (one each); a step that makes none is one operation.
    @discardableResult
    nonisolated(nonsending)
    public func measure<T>(_ step: String, since start: UInt64? = nil,
                           _ body: nonisolated(nonsending) () async throws -> T) async throws -> T {
        try await timed(step, since: start, body)
    }

    // Runs where the caller runs (the user's loop): no executor hop around each step.
    nonisolated(nonsending)
    private func timed<T>(_ step: String, since start: UInt64?,
                          _ body: nonisolated(nonsending) () async throws -> T) async throws -> T {
        let mark = context.mark
        let t0 = start ?? context.takeScheduledStart() ?? monotonicNanos()
        do {
            let value = try await body()
            let now = monotonicNanos()
            let after = context.mark
            // A failure recorded inside the step (an HTTP 500 the client counted although the
            // body did not throw) makes the step failed: no latency sample, no success.
            if after.errors == mark.errors {
                context.recorder.recordNanos(step, now > t0 ? now - t0 : 0, endedAt: now)
                // Operations the clients counted inside (each request) are the step's work;
                // a step without any is one operation itself.
                if after.operations == mark.operations { context.recordSuccess() }
            } else {
                stepFailed(step)
            }
            return value
        } catch {
            if !(Task.isCancelled && (error is CancellationError || context.isStopping)) { stepFailed(step) }
            fail(error, step: step, since: mark)
            throw error
        }
    }

    /// Counts a failed `measure` of `step` (`steps_failed{step:…}`): its trend has no sample of
    /// it, and its failures may be counted under its requests' names, so a threshold on a step
    /// that never succeeded can say so instead of calling the step's trend unknown.
    private func stepFailed(_ step: String) {
        context.recorder.increment(BuiltInMetrics.tagged(RunnerMetrics.stepsFailed, "step:\(step)"))
    }

    /// Times a step whose result is not needed (see ``measure(_:since:_:)-generic``). This overload
    /// lets a one-line step such as `{ try await client.get(url).requireStatus() }` be measured
    /// where the script expects no value.
    nonisolated(nonsending)
    public func measure(_ step: String, since start: UInt64? = nil, _ body: nonisolated(nonsending) () async throws -> Void) async throws {
        try await timed(step, since: start, body)
    }

    /// Times `body` into the declared trend `metric`, as the string-named `measure` does.
    nonisolated(nonsending)
    public func measure<T>(_ metric: TrendMetric, since start: UInt64? = nil,
                           _ body: nonisolated(nonsending) () async throws -> T) async throws -> T {
        try await timed(metric.name, since: start, body)
    }

    /// Times `body` into the declared trend `metric`.
    nonisolated(nonsending)
    public func measure(_ metric: TrendMetric, since start: UInt64? = nil,
                        _ body: nonisolated(nonsending) () async throws -> Void) async throws {
        try await timed(metric.name, since: start, body)
    }

    /// Records a duration into the declared trend `metric`.
    public func record(_ metric: TrendMetric, _ duration: Duration) { context.recorder.record(metric.name, duration) }
    /// Adds `by` to the declared counter `counter`.
    public func count(_ counter: CounterMetric, by: Int64 = 1) { context.recorder.increment(counter.name, by: by) }

    /// Records a duration into the trend `metric`.
    public func record(_ metric: String, _ duration: Duration) { context.recorder.record(metric, duration) }
    /// Records a value (microseconds for durations) into the trend `metric`.
    public func record(_ metric: String, micros: Int64) { context.recorder.record(metric, micros: micros) }
    /// Adds `by` to the counter `counter`.
    public func count(_ counter: String, by: Int64 = 1) { context.recorder.increment(counter, by: by) }
    /// Counts `n` successful operations (the error rate's denominator) outside ``measure(_:since:_:)``,
    /// e.g. messages received.
    public func succeed(_ n: Int64 = 1) { context.recordSuccess(n) }
    /// Counts one sample of the rate `metric` (`cache_hit`, `reservation_conflict`).
    public func rate(_ metric: String, hit: Bool) { context.recorder.rate(metric, hit: hit) }

    /// Records a classified failure of `step` (counted in the error rate). Errors caused by the
    /// runner cancelling the user after its grace period are counted in `errors_after_cancel` only.
    public func fail(_ error: any Error, step: String) { fail(error, step: step, since: nil) }

    func fail(_ error: any Error, step: String, since mark: UserContext.Mark?) {
        if Task.isCancelled && (error is CancellationError || context.isStopping) {
            context.recorder.increment(RunnerMetrics.errorsAfterCancel)
            return
        }
        context.recordFailure(error, step: step, since: mark)
    }

    /// Records a script failure with a message (`ScriptFailure`, kind `assertion`).
    public func fail(_ message: String, step: String) { fail(ScriptFailure(message), step: step) }

    /// Marks this user's connection as open (or closed): the run's `connections_held` rate and
    /// `connected` series count users marked connected. A finished user counts as disconnected,
    /// and so does one whose last open WebSocket session ended (the server closed or dropped it,
    /// or the script closed it). Only WebSocket sessions are followed: mark right after the
    /// connect (a session that ended before the mark leaves it set), and a user holding another
    /// kind of connection (STOMP straight over TCP) should not also open WebSockets of its own.
    public func markConnected(_ connected: Bool = true) { context.markConnected(connected) }

    /// Sleeps, ending early when the user must stop. Returns false when it ended early.
    @discardableResult
    public func sleep(for duration: Duration) async -> Bool { await context.sleep(nanos: duration.nanoseconds) }

    /// Runs `body` every `interval` (first run at once) until the user must stop. Fixed-rate:
    /// ticks are due at start + k·interval; when `body` overruns, the missed ticks are skipped —
    /// not run back to back — and counted in counter `ticks_missed`. An error thrown by `body`
    /// ends the loop and propagates.
    nonisolated(nonsending)
    public func every(_ interval: Duration, _ body: nonisolated(nonsending) () async throws -> Void) async throws {
        try await every(interval, until: nil, body)
    }

    /// ``every(_:_:)`` that also ends, between ticks, as soon as `signal` fires (a connection
    /// closed): the caller learns of it when it happens, not at the next tick.
    nonisolated(nonsending)
    package func every(_ interval: Duration, until signal: UserSignal?,
                       _ body: nonisolated(nonsending) () async throws -> Void) async rethrows {
        var ticks = Ticks(every: interval)
        while !isStopping && signal?.hasFired != true {
            try await body()
            if !(await nextTick(&ticks, unless: signal)) { break }
        }
    }

    /// Sleeps until the next tick of `ticks` (``every(_:_:)``'s schedule, missed ticks skipped and
    /// counted in `ticks_missed`); false when woken early by stop, cancellation or `signal`.
    /// For a loop written out in the caller's own frame: a long-lived scenario (the chat worker)
    /// parks here one frame shallower than inside ``every(_:until:_:)`` and its closure, which
    /// keeps its task's allocator within two slabs (1 KB less per parked user, `bench chat`).
    package func nextTick(_ ticks: inout Ticks, unless signal: UserSignal?) async -> Bool {
        let missed = ticks.advance(now: monotonicNanos())
        if missed > 0 { context.recorder.increment(RunnerMetrics.ticksMissed, by: Int64(missed)) }
        return await context.sleep(nanos: ticks.due - monotonicNanos().clamped(below: ticks.due), unless: signal)
    }

    /// Runs `body` (given the attempt number, 0 first) and, when it throws an error `retryIf`
    /// accepts, retries after the policy's jittered back-off until it succeeds, the attempts are
    /// exhausted or the user must stop (then the last error is rethrown). Every failed attempt is
    /// recorded as an error of `step` (once, even when a client inside already counted it); each retry counts in `connection_retries`, and the time
    /// from the first failure to the success is recorded in the trend `reconnection_time`.
    public func retrying<T>(_ policy: Backoff, step: String,
                            retryIf: (any Error) -> Bool = { !($0 is CancellationError) },
                            _ body: (_ attempt: Int) async throws -> T) async throws -> T {
        var attempt = 0
        var firstFailure: UInt64?
        var rng = SystemRandomNumberGenerator()
        while true {
            let mark = context.mark
            do {
                let value = try await body(attempt)
                if let f = firstFailure { context.recorder.recordNanos(RunnerMetrics.reconnectionTime, monotonicNanos() - f) }
                return value
            } catch {
                fail(error, step: step, since: mark)
                attempt += 1
                guard retryIf(error), !isStopping, let delay = policy.delay(attempt: attempt, using: &rng) else { throw error }
                if firstFailure == nil { firstFailure = monotonicNanos() }
                context.recorder.increment(RunnerMetrics.connectionRetries)
                guard await sleep(for: delay) else { throw error }
            }
        }
    }

    /// The value this user keeps under `key`, made by `make` the first time it is asked for and
    /// kept for the user's life — across iterations, as a k6 script's per-VU variables or a
    /// Locust user's `on_start` state: log in once per user, reuse the token every iteration.
    ///
    /// ```swift
    /// let token = try await user.once("token") { try await login(as: row["user"]) }
    /// ```
    /// When `make` throws, nothing is kept (the next call tries again) and the error propagates;
    /// ``forget(_:)`` drops a value (an expired token). A kept ``StompClient`` whose session has
    /// ended (the server closed it; the runner closed it because the iteration that opened it
    /// failed) is made again; the user's end drops every value. Asked as another type than it was kept
    /// as, it throws a ``ScriptFailure`` naming both. Each user has its own values; in the open
    /// model they belong to the pooled user, which runs many iterations of the schedule.
    nonisolated(nonsending)
    public func once<T: Sendable>(_ key: String, _ make: nonisolated(nonsending) () async throws -> T) async throws -> T {
        // Another task of the same user may have kept one meanwhile: the first kept wins.
        let value: any Sendable
        if let kept = context.keptValue(key) { value = kept } else { value = context.keep(try await make(), as: key) }
        guard let typed = value as? T else {
            throw ScriptFailure("user \(index)'s value '\(key)' is a \(type(of: value)), asked for as \(T.self)")
        }
        return typed
    }

    /// Drops the value kept under `key` (``once(_:_:)`` makes it again on its next call).
    public func forget(_ key: String) {
        context.forget(key)
    }

    /// Throws `CancellationError` when the user must stop (for scripts with long straight-line steps).
    public func checkStop() throws {
        if isStopping { throw CancellationError() }
    }
}

extension UInt64 {
    func clamped(below limit: UInt64) -> UInt64 { self > limit ? limit : self }
}

/// Names of the metrics the runner maintains (see the SLA's error-rate definition: errors ÷
/// (`operations` + errors)).
public enum RunnerMetrics {
    /// Successful operations (one per successful ``VirtualUser/measure(_:since:_:)``).
    public static let operations = "operations"
    /// Completed script runs (iterations), successful or not.
    public static let iterations = "iterations"
    /// Script runs that threw.
    public static let iterationsFailed = "iterations_failed"
    /// Open model: iterations not started because every one of `maxUsers` was busy.
    public static let iterationsDropped = "iterations_dropped"
    /// Open model: iterations that started more than the late threshold (default 1 ms) after they
    /// were due (an iteration never starts before it is due).
    public static let iterationsLate = "iterations_late"
    /// Open model: how long after its scheduled start each iteration actually started (trend, µs).
    public static let iterationLateness = "iteration_lateness"
    /// Time from each iteration's start (open model: its scheduled start) to its end (trend, µs).
    public static let iterationDuration = "iteration_duration"
    /// Ticks of ``VirtualUser/every(_:_:)`` skipped because the body overran.
    public static let ticksMissed = "ticks_missed"
    /// Retries made by ``VirtualUser/retrying(_:step:retryIf:_:)``.
    public static let connectionRetries = "connection_retries"
    /// Time from a first failure to the success after retries (trend, µs).
    public static let reconnectionTime = "reconnection_time"
    /// Errors thrown after the runner cancelled a user (not counted as failures): one for each
    /// layer a cut operation crosses (the request, its step, the iteration).
    public static let errorsAfterCancel = "errors_after_cancel"
    /// Iterations the runner cut at the stop (after the graceful stop) before they ended — k6's
    /// interrupted iterations; not failures, and neither in `iterations` nor in
    /// `iteration_duration`.
    public static let iterationsInterrupted = "iterations_interrupted"
    /// Counter, tagged `step:<name>`: `measure` steps that failed (thrown, or a failure counted
    /// inside) — they record no sample in the step's trend.
    public static let stepsFailed = "steps_failed"
    /// Gauge / series: active virtual users.
    public static let vus = "vus"
    /// Gauge: most virtual users active at once.
    public static let vusMax = "vus_max"
    /// Series: users marked connected, per second.
    public static let connected = "connected"
    /// Rate: users connected at the end of the last hold/peak stage ÷ the target then.
    public static let connectionsHeld = "connections_held"
}

/// The fixed-rate schedule of ``VirtualUser/every(_:_:)``: ticks due at start + k·interval; a
/// tick already past when the body ends is skipped, not run back to back.
package struct Ticks: Sendable {
    private let step: UInt64
    /// The next tick's due instant (``monotonicNanos()``).
    package private(set) var due: UInt64

    /// Ticks every `interval` from `start` (the first body runs at once).
    package init(every interval: Duration, from start: UInt64 = monotonicNanos()) {
        step = max(1, interval.nanoseconds)
        due = start
    }

    /// Moves to the next tick after a body ended at `now`, skipping the ticks already past; returns
    /// how many were skipped when the body overran by more than a tenth of the interval (a
    /// scheduling wobble below that is not an overrun), else 0.
    package mutating func advance(now: UInt64) -> UInt64 {
        due += step
        guard now >= due else { return 0 }
        let late = now - due
        let missed = late / step + 1
        due += missed * step
        return late > step / 10 ? missed : 0
    }
}
