import Synchronization
import LoadKitTransport
import LoadKitProtocols

/// The closed model: ramping virtual users through the stages, and bursts.
extension RunEngine {
    /// Control-loop tick: short enough to follow a 10,000-user ramp, long enough to cost nothing.
    static let tick: UInt64 = 10_000_000

    func runStages(_ plan: StagePlan, cap: UInt64) async {
        var live: [UserContext] = []
        var nextIndex = 0
        let heldAt = plan.heldSampleNanos
        let end = plan.totalNanos // the cap is enforced by mustStop, which also records why
        while !mustStop(cap: cap) {
            let t = elapsed
            if let h = heldAt, t >= h { sampleHeld(target: plan.peakUsers) }
            if t >= end { break }
            let target = plan.target(atNanos: t)
            if target > live.count {
                for _ in live.count..<target {
                    let loop = userLoops.next()
                    let ctx = makeContext(index: nextIndex, on: loop)
                    nextIndex += 1
                    live.append(ctx)
                    spawnUserLoop(ctx, on: loop, once: false)
                }
            } else if target < live.count {
                let grace = test.options.gracefulStop.nanoseconds
                while live.count > target {
                    let ctx = live.removeLast()
                    ctx.stop()
                    timerLoop().schedule(after: .nanoseconds(Int64(grace))) { [self] in
                        self.cancelTasks(of: ctx.index)
                    }
                }
            }
            await pauseUncancellable(nanos: Self.tick)
        }
        if let h = heldAt, elapsed < h { sampleHeld(target: plan.target(atNanos: elapsed)) }
    }

    func runBurst(_ burst: Burst, hold: Duration, cap: UInt64) async {
        let end = burst.window.nanoseconds + hold.nanoseconds // the cap is enforced by mustStop
        for i in 0..<burst.count {
            if mustStop(cap: cap) { break }
            let due = startNanos + burst.offset(of: i)
            let now = monotonicNanos()
            if due > now + 200_000 { await pauseUncancellable(nanos: due - now) }
            let loop = userLoops.next()
            let ctx = makeContext(index: i, on: loop)
            spawnUserLoop(ctx, on: loop, once: true)
        }
        while !mustStop(cap: cap), elapsed < end, active.load(ordering: .relaxed) > 0 {
            await pauseUncancellable(nanos: Self.tick)
        }
        if active.load(ordering: .relaxed) > 0 { sampleHeld(target: burst.count) }
    }

    /// A scenario that holds connections: some user marked one, or the SLA asks for the held
    /// share (then "nobody ever connected" is a truthful 0 %).
    var holdsConnections: Bool {
        marksConnections.load(ordering: .relaxed) || test.options.thresholds.contains { $0.metric == SLA.connectionsHeldMetric }
    }

    func sampleHeld(target: Int) {
        // A figure only for scenarios that hold connections.
        guard holdsConnections else { return }
        let now = connected.load(ordering: .relaxed)
        let first = state.withLock { s in
            if s.heldSampled { return false }
            s.heldSampled = true
            return true
        }
        guard first, target > 0 else { return }
        for i in 0..<target { own.rate(RunnerMetrics.connectionsHeld, hit: i < now) }
        note(["connections_held_at_second": String(Fmt.upTo3(Double(elapsed) / 1e9))])
    }

    /// Cancels the task of user `index` if it is still running (end of its grace period).
    func cancelTasks(of index: Int) {
        let (task, ctx) = state.withLock { s in (s.userTask[index].flatMap { s.tasks[$0] }, s.contexts[index]) }
        task?.cancel()
        ctx?.cancellationScope.cancel()   // what the user waits for: request, sleep (no handler of its own)
    }
}
