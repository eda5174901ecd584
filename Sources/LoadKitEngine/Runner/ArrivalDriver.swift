import Synchronization
import LoadKitTransport
import LoadKitProtocols

/// The open model's clock, pure: hands out scheduled iteration starts once they are due, never
/// before. The driver asks it at each wake-up; tests ask it with chosen instants.
struct ArrivalPlanner {
    private var schedule: ArrivalSchedule
    /// The run's start (``monotonicNanos()``); schedule offsets count from here.
    let startNanos: UInt64
    /// The next iteration's due instant, nil once the plan is over.
    private(set) var nextDue: UInt64?

    /// When the plan ends: its duration after the start, whenever its last arrival was (the
    /// graceful stop counts from here, as k6's does).
    let endNanos: UInt64

    init(_ rate: ArrivalRate, startNanos: UInt64) {
        schedule = rate.startTimes()
        self.startNanos = startNanos
        endNanos = startNanos &+ rate.totalNanos
        nextDue = schedule.next().map { startNanos &+ $0 }
    }

    /// The due instant of the next iteration if it is due at `now` (and moves past it); nil when
    /// the next one is still in the future or the plan is over.
    mutating func takeDue(now: UInt64) -> UInt64? {
        guard let due = nextDue, due <= now else { return nil }
        nextDue = schedule.next().map { startNanos &+ $0 }
        return due
    }

    /// How late an iteration due at `due` is when it starts at `startedAt` (0 when on time).
    static func lateness(due: UInt64, startedAt: UInt64) -> UInt64 { startedAt > due ? startedAt - due : 0 }
}

/// Runs an open-model plan on one event loop: a loop timer wakes at each due instant (never
/// earlier) and hands every iteration due by then to a free user, round-robin over the users'
/// loops; with all `maxUsers` busy the iteration is dropped and counted.
///
/// Users are pooled, not started per iteration: each is one long-lived task on its loop that
/// waits for its next iteration (a continuation the driver resumes), runs it and waits again —
/// no task creation or bookkeeping per arrival. A user that finishes an iteration on the driver's
/// loop while the next one is already due takes it itself (the schedule is the same; only the
/// hand-off is skipped), so near the highest rate the users keep up with, an iteration costs what
/// it costs in the closed model. Loop-confined except for the list of waiting
/// users that finish on other loops, which they join under a lock; a user on the driver's own
/// loop goes straight back to the free list (no lock, and the user that finished last — the
/// one whose memory is still in the cache — is the next one handed an iteration).
final class ArrivalDriver: @unchecked Sendable {
    /// What a waiting user is handed: its next iteration, or nil to end.
    typealias Assignment = (due: UInt64, number: Int)?

    private let engine: RunEngine
    private let loop: EventLoop
    private var planner: ArrivalPlanner
    private let cap: UInt64
    private let maxUsers: Int
    private let lateNanos: UInt64
    /// Free users (loop-confined): the most recently freed last.
    private var free: [UnsafeContinuation<Assignment, Never>] = []
    /// True once the plan is over (loop-confined): a user finishing later ends.
    private var over = false
    /// Users freed on other loops, and whether the plan is over for them.
    private let waiting = Mutex(Waiting())
    /// How many users `waiting` holds: the driver takes its lock only when it holds some.
    private let waitingCount = Atomic<Int>(0)
    private var created = 0
    private var number = 0
    private var done: UnsafeContinuation<Void, Never>?
    /// The one timer the driver re-arms at each wake-up (none allocated per wake-up).
    private var timer: LoopTimer?
    private let dropped: CounterHandle

    private struct Waiting {
        var users: [UnsafeContinuation<Assignment, Never>] = []
        var closed = false
    }

    /// Longest sleep between checks of the stop conditions (interrupt, cap) at low rates.
    private static let checkEvery: UInt64 = 10_000_000
    /// Most iterations started in one go before the loop runs other work.
    private static let batch = 256

    init(engine: RunEngine, rate: ArrivalRate, maxUsers: Int, cap: UInt64, loop: EventLoop) {
        self.engine = engine
        self.loop = loop
        self.planner = ArrivalPlanner(rate, startNanos: engine.startNanos)
        self.cap = cap
        self.maxUsers = maxUsers
        self.lateNanos = engine.test.options.lateThreshold.nanoseconds
        self.dropped = engine.own.counter(RunnerMetrics.iterationsDropped)
    }

    /// Drives the plan; returns when it is over or the run must stop (users still in an
    /// iteration finish it; idle ones end).
    func run() async {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            loop.runOrExecute { [self] in
                done = c
                // The timer holds the driver until `finish` cancels it (the run always ends there).
                timer = loop.makeTimer { [self] in advance() }
                advance()
            }
        }
    }

    private func advance() {
        guard done != nil else { return }
        if engine.mustStop(cap: cap) { finish(); return }
        let now = monotonicNanos()
        var started = 0
        while let due = planner.takeDue(now: now) {
            if stopsAtCap(due) { return }
            start(due: due)
            started += 1
            if started >= Self.batch {
                loop.executeLocal { [self] in advance() }
                return
            }
        }
        // After the last arrival the plan still runs to its end (users in an iteration keep
        // going; the graceful stop starts there, not at the last arrival).
        guard let next = planner.nextDue ?? (now < planner.endNanos ? planner.endNanos : nil) else { finish(); return }
        if let timer { loop.arm(timer, atNanos: min(next, now &+ Self.checkEvery)) }
    }

    /// Whether an iteration due at `due` is past the run's cap: then the run is interrupted for
    /// its deadline and the plan finished.
    private func stopsAtCap(_ due: UInt64) -> Bool {
        guard due &- engine.startNanos >= cap else { return false }
        engine.interrupt(.deadline(capSeconds: Duration.nanoseconds(Int64(cap)).seconds))
        finish()
        return true
    }

    private func finish() {
        // Idle users end now; busy ones end when their iteration does (they find `over`/`closed`).
        over = true
        let idle = free + waiting.withLock { w in
            w.closed = true
            let u = w.users; w.users.removeAll(); return u
        }
        free.removeAll()
        for u in idle { u.resume(returning: nil) }
        timer?.cancel()
        timer = nil
        let c = done
        done = nil
        c?.resume()
    }

    private func start(due: UInt64) {
        if free.isEmpty && waitingCount.load(ordering: .acquiring) > 0 {
            waiting.withLock { w in
                swap(&free, &w.users)
                waitingCount.store(0, ordering: .relaxed)
            }
        }
        let iteration = number
        if let user = free.popLast() {
            number += 1
            engine.becameActive()
            user.resume(returning: (due, iteration))
        } else if created < maxUsers {
            number += 1
            engine.becameActive()
            launch(first: (due, iteration))
        } else {
            engine.own.increment(dropped)
        }
    }

    /// A new pooled user, on the next users' loop, starting with its `first` iteration.
    private func launch(first: (due: UInt64, number: Int)) {
        let loop = engine.userLoops.next()
        let ctx = engine.makeContext(index: created, on: loop)
        created += 1
        let handles = LatenessHandles(ctx.recorder)
        engine.track(ctx, on: loop) { [self] in await serve(ctx, first: first, handles: handles) } ended: {}
    }

    /// The open model's metrics of one recorder, resolved once per pooled user.
    private struct LatenessHandles: Sendable {
        let lateness: TrendHandle
        let late: CounterHandle
        init(_ r: MetricsRecorder) {
            lateness = r.trend(RunnerMetrics.iterationLateness)
            late = r.counter(RunnerMetrics.iterationsLate)
        }
    }

    /// The next iteration if one is due already, for a user that has just finished one on the
    /// driver's loop (nil when none is due or the plan is over).
    private func takeDueNow(_ now: UInt64) -> Assignment {
        guard done != nil, let due = planner.takeDue(now: now), !stopsAtCap(due) else { return nil }
        defer { number += 1 }
        return (due, number)
    }

    /// Most iterations a user takes in a row itself (``takeDueNow(_:)``) before it waits in the
    /// free list again: a script that never suspends would otherwise keep the loop to itself
    /// for as long as iterations are due.
    private static let takenInARow = 64

    /// A pooled user's life: runs `first`, then each iteration the driver hands it, until it is
    /// handed nil or must stop.
    // Runs where its caller runs (the user's loop), as the closed model's `userLoop`. Its awaits
    // still call `swift_task_switch` (the fast path: no hop): one per iteration the user takes
    // itself, as `userLoop`, three per iteration handed over through a continuation (uprobes).
    nonisolated(nonsending)
    private func serve(_ ctx: UserContext, first: (due: UInt64, number: Int), handles h: LatenessHandles) async {
        let engine = engine, late = lateNanos
        var next: Assignment = first
        var startedAt: UInt64? = nil   // when the user took its iteration itself: that clock read
        var inARow = 0
        var hold = EventLoop.Hold()
        while let (due, iteration) = next {
            let lateness = ArrivalPlanner.lateness(due: due, startedAt: startedAt ?? monotonicNanos())
            // The lateness trend (with its per-second series) and the late count under one lock.
            ctx.recorder.locked { s, at in
                s.recordNanos(h.lateness, lateness, at: at, perSecond: true)
                if lateness > late { s.increment(h.late, second: at.second) }
            }
            ctx.beginScheduledIteration(due: due)
            let ended = await engine.runIteration(ctx, number: iteration, due: due).end
            _ = ctx.takeScheduledStart()  // unused by a script that measured nothing
            ctx.markConnected(false)
            if ctx.isStopping || Task.isCancelled { engine.becameIdle(); break }
            // Near the rate the users only just keep up with, the next iteration is often due
            // already when one ends: the user takes it at once (it stays active) instead of going
            // to the free list and waiting for the driver's timer — no continuation, no job and
            // no executor switches for that hand-off, and the user's memory is still in the cache.
            // A script that never suspends stops taking them after the loop's turn has run such
            // iterations for 1 ms (`mustYield`): the driver's timer and the loop's I/O come first.
            if inARow < Self.takenInARow, loop.inLoop, !loop.mustYield(&hold, now: ended) {
                // The iteration's end, nanoseconds ago: an earlier instant never starts one early.
                let now = ended
                if let taken = takeDueNow(now) {
                    inARow += 1
                    startedAt = now
                    next = taken
                    continue
                }
            }
            inARow = 0
            startedAt = nil
            // Free again only once it no longer counts as active: peak ≤ maxUsers.
            engine.becameIdle()
            next = await withUnsafeContinuation { (c: UnsafeContinuation<Assignment, Never>) in
                if loop.inLoop {
                    // The driver's own thread: straight back to the free list.
                    if over { c.resume(returning: nil) } else { free.append(c) }
                    return
                }
                let closed = waiting.withLock { w in
                    if !w.closed {
                        w.users.append(c)
                        waitingCount.add(1, ordering: .relaxed)
                    }
                    return w.closed
                }
                if closed { c.resume(returning: nil) }
            }
        }
    }
}
