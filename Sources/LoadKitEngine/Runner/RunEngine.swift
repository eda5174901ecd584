#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import LoadKitTransport
import LoadKitProtocols

/// Drives one run: starts and stops user tasks per the model, samples the generator, watches the
/// deadline, signals and abort checks, and assembles the ``RunResult``. The decisions (how many
/// users now, when is an iteration due) come from the pure schedules; this class only acts.
final class RunEngine: Sendable {
    let name: String
    let settings: Settings
    let test: LoadTest
    let script: nonisolated(nonsending) @Sendable (VirtualUser) async throws -> Void
    let registry: MetricsRegistry
    /// The runner's own counters (dropped/late iterations, vus gauges).
    let own: MetricsRecorder
    let startNanos: UInt64
    /// The loops virtual users run on (round-robin); the run's control loop is the first.
    let userLoops: EventLoopGroup

    struct State {
        var contexts: [Int: UserContext] = [:]
        var tasks: [Int: Task<Void, Never>] = [:]
        var userTask: [Int: Int] = [:]
        var nextTask = 0
        var interruption: Interruption?
        var facts: [String: String] = [:]
        var vusSeries: [Int64] = []
        var connectedSeries: [Int64] = []
        var generator: [GeneratorSample] = []
        var heldSampled = false
        var atPlanEnd: (vus: Int, connected: Int, generator: GeneratorSampler.Reading, second: Double)?
    }
    let state = Mutex(State())
    let recorderHandles = Mutex<[ObjectIdentifier: RecorderHandles]>([:])
    let active = Atomic<Int>(0)
    let peakActive = Atomic<Int>(0)
    /// The most users active at once since the monitor's last tick: the users series holds each
    /// second's peak, so users busy between two ticks (a stall) show.
    let peakInSecond = Atomic<Int>(0)
    let connected = Atomic<Int>(0)
    let created = Atomic<Int>(0)
    let finished = Atomic<Bool>(false)
    /// Whether any user marked a connection (`markConnected`): `connections_held` is a figure of
    /// the run only then, or when its SLA asks for it (an HTTP test whose users hold nothing gets
    /// no 0 % to alarm anyone).
    let marksConnections = Atomic<Bool>(false)
    /// The smallest cap of the client pools requests waited in (`Int.max`: none waited), the
    /// run's `http_pool_cap` fact.
    let smallestPoolCap = Atomic<Int>(.max)

    init(test: LoadTest, script: nonisolated(nonsending) @escaping @Sendable (VirtualUser) async throws -> Void) {
        self.name = test.name
        self.settings = test.settings
        self.test = test
        self.script = script
        self.userLoops = test.options.userLoops ?? EventLoopGroup.shared
        let start = monotonicNanos()
        self.startNanos = start
        self.registry = MetricsRegistry(startNanos: start)
        self.own = registry.makeRecorder()
    }

    // MARK: Bookkeeping used by users

    func connectedDelta(_ d: Int) {
        if d > 0 { marksConnections.store(true, ordering: .relaxed) }
        connected.add(d, ordering: .relaxed)
    }
    func note(_ facts: [String: String]) { state.withLock { $0.facts.merge(facts) { _, n in n } } }

    /// A request waited for a connection in a client pool capped at `cap` (lock-free: a load
    /// when the cap is known already).
    func notePoolCap(_ cap: Int) {
        var seen = smallestPoolCap.load(ordering: .relaxed)
        while cap < seen {
            let (ok, current) = smallestPoolCap.compareExchange(expected: seen, desired: cap, ordering: .relaxed)
            if ok { break }
            seen = current
        }
    }

    /// Asks the run to stop early; the first reason wins.
    func interrupt(_ reason: Interruption) {
        state.withLock { s in if s.interruption == nil { s.interruption = reason } }
    }
    var interruption: Interruption? { state.withLock { $0.interruption } }
    var elapsed: UInt64 { let n = monotonicNanos(); return n > startNanos ? n - startNanos : 0 }

    /// A user's context. Its metrics go to the stripe of the loop it will run on: the loop's
    /// users fill one recorder, whose histograms stay in that core's cache and whose lock no
    /// other loop takes (striping by user spread every loop's requests over all the stripes).
    func makeContext(index local: Int, on loop: EventLoop) -> UserContext {
        let index = test.options.shard.globalIndex(local: local)
        let loops = userLoops.loops
        let recorder = registry.recorder(forUser: loops.firstIndex { $0 === loop } ?? index)
        let c = UserContext(index: index, recorder: recorder, engine: self,
                            handles: recorderHandles.withLock { h in
                                if let found = h[ObjectIdentifier(recorder)] { return found }
                                let made = RecorderHandles(recorder)
                                h[ObjectIdentifier(recorder)] = made
                                return made
                            })
        created.add(1, ordering: .relaxed)
        return c
    }

    /// One more user counts as active (running the script); keeps the peak.
    func becameActive() {
        let now = active.add(1, ordering: .relaxed).newValue
        Self.raise(peakActive, to: now)
        Self.raise(peakInSecond, to: now)
    }

    /// Raises `peak` to `value` unless it is already at least that.
    private static func raise(_ peak: borrowing Atomic<Int>, to value: Int) {
        var seen = peak.load(ordering: .relaxed)
        while value > seen {
            let (ok, current) = peak.compareExchange(expected: seen, desired: value, ordering: .relaxed)
            if ok { break }
            seen = current
        }
    }

    /// One user fewer counts as active.
    func becameIdle() { active.subtract(1, ordering: .relaxed) }

    /// Starts `body` as a tracked task on `loop` (cancelled at the end of the grace period if it
    /// is still running) without counting it as active: the open model's pooled users count as
    /// active only while they run an iteration.
    func track(_ ctx: UserContext, on loop: EventLoop, _ body: @escaping @Sendable () async -> Void,
               ended: @escaping @Sendable () -> Void) {
        registerUserTask(ctx) { id in
            Task(executorPreference: loop) { [self] in
                // The clients record their built-in metrics (http_reqs, ws_sessions, …) for this
                // user. One cancellation scope for the user's whole life, not a handler per request;
                // the runner cancels it with the task (`cancelUser`).
                ctx.cancellationScope.adopt()
                defer { ctx.cancellationScope.release() }
                await ClientObservation.$current.withValue(ctx) { await body() }
                userTaskEnded(ctx, id: id)
                ended()
            }
        }
    }

    /// Starts the closed-model or burst user `ctx` — ``userLoop(_:once:)`` — as a tracked task on
    /// `loop` (a task executor preference: the user's awaits resume on that loop's thread, not on
    /// Swift's shared pool); `active` counts it until it ends. The task is `track`'s, written out
    /// so that it captures four values rather than a `body` and an `ended` closure (two
    /// allocations, ≈ 0.1 KB per user with the larger task context; `bench chat`).
    func spawnUserLoop(_ ctx: UserContext, on loop: EventLoop, once: Bool) {
        becameActive()
        registerUserTask(ctx) { id in
            Task(executorPreference: loop) { [self] in
                // As in `track` (written out: a shared async helper would deepen every user's
                // parked chain, whose task-allocator slabs are the bulk of a chat worker's memory).
                ctx.cancellationScope.adopt()
                defer { ctx.cancellationScope.release() }
                await ClientObservation.$current.withValue(ctx) { await self.userLoop(ctx, once: once) }
                userTaskEnded(ctx, id: id)
                active.subtract(1, ordering: .relaxed)
            }
        }
    }

    /// Files a user's task under a new id; `make` creates it under the lock, so the task's own
    /// removal (also under the lock) always comes after. Non-escaping: nothing allocated per user.
    private func registerUserTask(_ ctx: UserContext, _ make: (Int) -> Task<Void, Never>) {
        state.withLock { s in
            let id = s.nextTask
            s.nextTask += 1
            s.contexts[ctx.index] = ctx
            s.userTask[ctx.index] = id
            s.tasks[id] = make(id)
        }
    }

    /// A user's task is over: the values it kept (``VirtualUser/once(_:_:)``) are dropped, and
    /// the sessions its script left open — a client kept there among them — are closed.
    private func userTaskEnded(_ ctx: UserContext, id: Int) {
        ctx.forgetAll()
        ctx.closeSessionsLeftOpen(iteration: nil, counted: !Task.isCancelled)
        state.withLock { s in _ = s.tasks.removeValue(forKey: id) }
    }

    private func retire(_ ctx: UserContext) {
        ctx.finished()
        state.withLock { s in _ = s.contexts.removeValue(forKey: ctx.index) }
    }

    /// The closed-model and burst user: runs the script (again, unless `once`) until stopped.
    // Runs where its caller runs (the user's loop): no executor hop around each iteration.
    nonisolated(nonsending) func userLoop(_ ctx: UserContext, once: Bool) async {
        var iteration = 0
        // Back to back, an iteration starts when the one before it ended (one clock read less).
        var due = monotonicNanos()
        // A script that never suspends gives the loop back now and then (the next iteration
        // then starts when it has the thread again). The loop outlives its users: unretained,
        // no reference counting each iteration.
        let loop = EventLoop.current.map { Unmanaged.passUnretained($0) }
        var hold = EventLoop.Hold()
        while !ctx.isStopping && !Task.isCancelled {
            let (ok, end) = await runIteration(ctx, number: iteration, due: due)
            due = end
            if once { break }
            if let loop, loop._withUnsafeGuaranteedRef({ $0.mustYield(&hold, now: end) }) {
                await loop.takeUnretainedValue().yieldThread()
                due = monotonicNanos()
            }
            if !ok {
                _ = await ctx.sleep(nanos: test.options.pauseAfterError.nanoseconds)
                due = monotonicNanos()
            }
            iteration += 1
        }
        retire(ctx)
    }

    /// One run of the script, the path every model shares: counts the iteration, its duration
    /// (from `due`) and — once — its failure. A script that throws right after a failure a step or
    /// client already counted (an HTTP 500, then `requireStatus()` or the script's own error)
    /// fails the iteration without a second error. Returns false when the script threw, and the
    /// instant it ended.
    nonisolated(nonsending)
    func runIteration(_ ctx: UserContext, number: Int, due: UInt64) async -> (ok: Bool, end: UInt64) {
        let mark = ctx.mark
        var ok = true
        ctx.beginIteration(number)
        do {
            try await script(VirtualUser(context: ctx, iteration: number, scheduledStartNanos: due))
        } catch {
            ok = false
            let cancelled = Task.isCancelled || (error is CancellationError && ctx.isStopping)
            ctx.closeSessionsLeftOpen(iteration: number, counted: !cancelled)
            if cancelled {
                ctx.recorder.increment(RunnerMetrics.errorsAfterCancel)
            } else {
                ctx.recorder.increment(RunnerMetrics.iterationsFailed)
                ctx.recordFailure(error, step: "iteration", since: mark)
            }
        }
        let end = monotonicNanos()
        // Cut by the runner (its task cancelled after the graceful stop), whether the script threw
        // or caught the cancellation and returned — not a user leaving at `checkStop()`: not a
        // whole iteration, so neither counted in `iterations` nor timed (as k6 does).
        if Task.isCancelled {
            ctx.recorder.increment(RunnerMetrics.iterationsInterrupted)
            return (ok, end)
        }
        let h = ctx.runnerHandles
        // One lock for the iteration's count and duration (every iteration pays it).
        ctx.recorder.locked(at: end) { s, at in
            s.increment(h.iterations, second: at.second)
            s.recordNanos(h.iterationDuration, end > due ? end - due : 0, at: at, perSecond: true)
        }
        return (ok, end)
    }

    // MARK: The run

    func run() async -> RunResult {
        let startedAt = wallClockMillis()
        let cpuAtStart = GeneratorSampler.cpuSeconds()
        SignalTrap.shared.register(self)
        var endpoint: MetricsEndpoint?
        if let port = try? settings.prometheusPort() {
            do {
                let labeled = test.options.prometheus.labeled(
                    test: name, runID: settings.runID ?? RunHistory.folderName(startedAtMillis: startedAt))
                endpoint = try MetricsEndpoint(registry: registry, options: labeled, port: port)
                note(["prometheus": "127.0.0.1:\(port)/metrics"])
            } catch {
                writeStderr("loadkit: warning: cannot serve /metrics on port \(port): \(error)\n")
            }
        }
        // On the last loop, like the control loop below: its ticks and the final wait for it must
        // not depend on Swift's shared pool, which a busy process (parallel tests) can hold.
        let monitor = Task(executorPreference: userLoops.loops[userLoops.loops.count - 1]) { [self] in
            await self.monitorLoop()
        }
        let hardCap = test.deadline.nanoseconds
        // The control loop runs on an event loop too, so a process busy with other work (tests
        // running in parallel on Swift's shared pool) cannot delay ramps and stops.
        // The run's length is taken on the loop, before hopping back to the caller's executor
        // (Swift's shared pool, which a busy process can hold for a while).
        let (ranFor, cpuUsed) = await withTaskExecutorPreference(userLoops.loops[0]) { () async -> (UInt64, Double) in
            await withTaskCancellationHandler {
                switch test.model {
                case .stages(let stages): await runStages(StagePlan(stages), cap: hardCap)
                case .arrivals(let rate, let maxUsers):
                    await ArrivalDriver(engine: self, rate: rate, maxUsers: maxUsers, cap: hardCap, loop: userLoops.loops[0]).run()
                case .burst(let burst, let hold): await runBurst(burst, hold: hold, cap: hardCap)
                }
            } onCancel: {
                self.interrupt(.cancelled)
            }
            let vusNow = active.load(ordering: .relaxed), connectedNow = connected.load(ordering: .relaxed)
            let reading = GeneratorSampler.Reading.now(userLoops.loops), second = Double(elapsed) / 1e9
            state.withLock { $0.atPlanEnd = (vusNow, connectedNow, reading, second) }
            await shutdown(cap: hardCap)
            // The monitor stops with the run, not when the caller's executor takes it back
            // (seconds later in a busy process: those samples were idle loops and other work).
            finished.store(true, ordering: .releasing)
            return (elapsed, max(0, GeneratorSampler.cpuSeconds() - cpuAtStart))
        }
        _ = await monitor.value
        endpoint?.close()
        SignalTrap.shared.unregister(self)
        var result = assemble(startedAt: startedAt, ranFor: ranFor)
        result.generatorCPUSeconds = cpuUsed
        return result
    }

    /// Whether the control loop must stop now (interrupted, cancelled, or past the hard cap).
    func mustStop(cap: UInt64) -> Bool {
        if Task.isCancelled { interrupt(.cancelled) }
        if interruption != nil { return true }
        if elapsed >= cap {
            interrupt(.deadline(capSeconds: Duration.nanoseconds(Int64(cap)).seconds))
            return true
        }
        return false
    }

    /// Stop flags for everyone, a grace period, then cancellation; bounded in time.
    private func shutdown(cap: UInt64) async {
        let ctxs = state.withLock { Array($0.contexts.values) }
        ctxs.forEach { $0.stop() }
        let interrupted = interruption != nil
        var grace = test.options.gracefulStop.nanoseconds
        if interrupted { grace = min(grace, 1_000_000_000) }
        let graceEnd = monotonicNanos() + grace
        while active.load(ordering: .relaxed) > 0, monotonicNanos() < graceEnd {
            state.withLock { $0.contexts.values.forEach { $0.stop() } } // users started meanwhile
            await pauseUncancellable(nanos: 5_000_000)
        }
        if active.load(ordering: .relaxed) > 0 {
            let (tasks, ctxs) = state.withLock { (Array($0.tasks.values), Array($0.contexts.values)) }
            tasks.forEach { $0.cancel() }
            ctxs.forEach { $0.cancellationScope.cancel() }   // what each one waits for (request, sleep)
            let end = monotonicNanos() + 1_000_000_000
            while active.load(ordering: .relaxed) > 0, monotonicNanos() < end {
                await pauseUncancellable(nanos: 5_000_000)
            }
            let left = active.load(ordering: .relaxed)
            if left > 0 { note(["users_abandoned": String(left)]) }
        }
    }

    // MARK: Result

    private func assemble(startedAt: Int64, ranFor: UInt64) -> RunResult {
        let s = state.withLock { $0 }
        // Users and connections as the plan ended (as the series' closing sample), not the zero
        // the shutdown leaves: reports showed `vus,0` for a run that ended with 20 users.
        own.gauge(RunnerMetrics.vus, Double(s.atPlanEnd?.vus ?? active.load(ordering: .relaxed)))
        own.gauge(RunnerMetrics.vusMax, Double(peakActive.load(ordering: .relaxed)))
        own.gauge(RunnerMetrics.connected, Double(s.atPlanEnd?.connected ?? connected.load(ordering: .relaxed)))
        var metrics = registry.snapshot(includeTrends: true)
        metrics.series[RunnerMetrics.vus] = s.vusSeries
        if holdsConnections {
            metrics.series[RunnerMetrics.connected] = s.connectedSeries
        } else {
            // No user ever marked a connection (an HTTP test): no `connected: 0` row in the
            // summaries and no flat line in the report's users chart.
            metrics.gauges[RunnerMetrics.connected] = nil
        }
        var env = test.options.environment.merging(s.facts) { _, n in n }
        env["build"] = BuildMode.name
        env["model"] = modelDescription
        env["users_created"] = String(created.load(ordering: .relaxed))
        env["generator_cpus"] = String(availableCores())  // what its CPU figure is judged against
        if userLoops.loops.contains(where: \.servesListeners) {
            env["generator_loops_shared"] = "an in-process server listens on the run's event loops: their busy time is partly the server's"
        }
        if let queued = metrics.counters[BuiltInMetrics.httpReqsQueued], queued > 0 {
            env["http_pool"] = "capped by maxConnectionsPerHost: \(queued) requests waited for a connection (http_req_blocked)"
            let cap = smallestPoolCap.load(ordering: .relaxed)
            if cap != .max { env["http_pool_cap"] = String(cap) }
        }
        if let retried = metrics.counters[BuiltInMetrics.httpReqsRetried], retried > 0 {
            env["http_retries"] = "\(retried) requests sent again on a fresh connection: a reused keep-alive connection closed "
                + "without answering (your server counted them twice; http_reqs_retried)"
        }
        var result = RunResult(name: name, startedAtMillis: startedAt, durationSeconds: Double(ranFor) / 1e9,
                               metrics: metrics, plannedPeakUsers: test.plannedPeakUsers,
                               peakActiveUsers: peakActive.load(ordering: .relaxed),
                               generator: s.generator, environment: env)
        result.interruptedBy = s.interruption
        return result
    }

    /// How the run's facts (`model`) begin for the open model; the reports' headers read it.
    static let openModelTag = "arrival-rate"

    private var modelDescription: String {
        switch test.model {
        case .stages(let st):
            return StagePlan(st).segments.map { "\($0.name):\($0.to)/\(Fmt.upTo3(Double($0.durationNanos) / 1e9))s" }
                .joined(separator: ",")
        case .arrivals(let r, let m): return "\(Self.openModelTag) peak \(Fmt.upTo3(r.peakRate))/s maxUsers \(m)"
        case .burst(let b, let h): return "burst \(b.count) over \(Fmt.upTo3(b.window.seconds))s hold \(Fmt.upTo3(h.seconds))s"
        }
    }
}
