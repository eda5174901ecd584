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

    init(_ rate: ArrivalRate, startNanos: UInt64) {
        schedule = rate.startTimes()
        self.startNanos = startNanos
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
/// no task creation or bookkeeping per arrival. Loop-confined except for the list of waiting
/// users, which finished iterations join from their own loops.
final class ArrivalDriver: @unchecked Sendable {
    /// What a waiting user is handed: its next iteration, or nil to end.
    typealias Assignment = (due: UInt64, number: Int)?

    private let engine: RunEngine
    private let loop: EventLoop
    private var planner: ArrivalPlanner
    private let cap: UInt64
    private let maxUsers: Int
    private let lateNanos: UInt64
    private var free: [UnsafeContinuation<Assignment, Never>] = []
    private let waiting = Mutex(Waiting())
    private var created = 0
    private var number = 0
    private var done: UnsafeContinuation<Void, Never>?

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
    }

    /// Drives the plan; returns when it is over or the run must stop (users still in an
    /// iteration finish it; idle ones end).
    func run() async {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            loop.runOrExecute { [self] in
                done = c
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
            if due &- engine.startNanos >= cap {
                engine.interrupt(.deadline(capSeconds: Duration.nanoseconds(Int64(cap)).seconds))
                finish()
                return
            }
            start(due: due)
            started += 1
            if started >= Self.batch {
                loop.executeLocal { [self] in advance() }
                return
            }
        }
        guard let next = planner.nextDue else { finish(); return }
        loop.schedule(atNanos: min(next, now &+ Self.checkEvery)) { [self] in advance() }
    }

    private func finish() {
        // Idle users end now; busy ones end when their iteration does (they find `closed`).
        let idle = free + waiting.withLock { w in
            w.closed = true
            let u = w.users; w.users.removeAll(); return u
        }
        free.removeAll()
        for u in idle { u.resume(returning: nil) }
        let c = done
        done = nil
        c?.resume()
    }

    private func start(due: UInt64) {
        if free.isEmpty { free = waiting.withLock { w in let u = w.users; w.users.removeAll(); return u } }
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
            engine.own.increment(RunnerMetrics.iterationsDropped)
        }
    }

    /// A new pooled user, on the next users' loop, starting with its `first` iteration.
    private func launch(first: (due: UInt64, number: Int)) {
        let loop = engine.userLoops.next()
        let ctx = engine.makeContext(index: created, on: loop)
        created += 1
        let engine = engine, late = lateNanos
        engine.track(ctx, on: loop) { [self] in
            var next: Assignment = first
            while let (due, iteration) = next {
                let lateness = ArrivalPlanner.lateness(due: due, startedAt: monotonicNanos())
                ctx.recorder.recordNanos(RunnerMetrics.iterationLateness, lateness)
                if lateness > late { ctx.recorder.increment(RunnerMetrics.iterationsLate) }
                ctx.beginScheduledIteration(due: due)
                _ = await engine.runIteration(ctx, number: iteration, due: due)
                _ = ctx.takeScheduledStart()  // unused by a script that measured nothing
                ctx.markConnected(false)
                // Free again only once it no longer counts as active: peak ≤ maxUsers.
                engine.becameIdle()
                if ctx.isStopping || Task.isCancelled { break }
                next = await withUnsafeContinuation { (c: UnsafeContinuation<Assignment, Never>) in
                    let closed = waiting.withLock { w in
                        if !w.closed { w.users.append(c) }
                        return w.closed
                    }
                    if closed { c.resume(returning: nil) }
                }
            }
        } ended: {}
    }
}
