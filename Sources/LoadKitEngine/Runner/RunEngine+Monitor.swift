#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import LoadKitTransport
import LoadKitProtocols

/// Once a second during a run: generator samples, live gauges, abort-on-threshold, progress line.
extension RunEngine {
    // MARK: Once a second

    func monitorLoop() async {
        var sampler = GeneratorSampler(loops: userLoops.loops)
        var nextTick = startNanos + 1_000_000_000
        let tty = isatty(2) == 1
        let progressOn = test.options.progress ?? (settings.progressForced() ?? tty)
        let abortThresholds = test.options.thresholds.filter(\.abortOnFail)
        var previous = MetricsSnapshot()
        var printed = false
        while !finished.load(ordering: .acquiring) {
            let now = monotonicNanos()
            if now < nextTick { await pauseUncancellable(nanos: min(nextTick - now, 50_000_000)); continue }
            let due = nextTick
            nextTick += 1_000_000_000
            let second = Double(elapsed) / 1e9
            let vus = active.load(ordering: .relaxed)
            // The second's peak for the series (reset to the users active now).
            let vusPeak = max(vus, peakInSecond.exchange(vus, ordering: .relaxed))
            let conn = connected.load(ordering: .relaxed)
            // A tick due before the plan ended that runs after it (its loop was busy: a user's
            // shutdown work, a busy process) would read the shutdown: the closing sample, taken at
            // the plan's end, covers that second instead. The progress line still shows it.
            let lateForPlanEnd = state.withLock { s in s.atPlanEnd.map { due < $0.generator.wall } ?? false }
            let sample: GeneratorSample
            if lateForPlanEnd {
                var peek = sampler
                sample = peek.sample(second: second)
            } else {
                sample = sampler.sample(second: second)
                state.withLock { s in
                    s.generator.append(sample); s.vusSeries.append(Int64(vusPeak)); s.connectedSeries.append(Int64(conn))
                }
            }
            // Live gauges for the Prometheus endpoint.
            own.gauge(RunnerMetrics.vus, Double(vus))
            own.gauge(RunnerMetrics.vusMax, Double(peakActive.load(ordering: .relaxed)))
            own.gauge(RunnerMetrics.connected, Double(conn))
            if interruption == nil, test.options.abortCheck != nil || !abortThresholds.isEmpty {
                let snap = registry.snapshot(includeTrends: true, perSecond: false)
                if let check = test.options.abortCheck, let reason = check(snap) {
                    interrupt(.abortCheck(reason: reason))
                }
                // Only a metric that exists can breach: early seconds without samples do not abort.
                if let o = abortThresholds.breachesToAbort(snap, elapsedSeconds: second).first {
                    interrupt(.abortOnThreshold(threshold: o.threshold, message: o.message))
                }
            }
            if progressOn {
                let snap = registry.snapshot(includeTrends: false)
                let line = ProgressLine.render(progressState(second: second, vus: vus, snapshot: snap, previous: previous))
                    + " | cpu \(Int(sample.cpuPercent))%\(sample.busiestLoopPercent.map { " (busiest loop \(Int($0))%)" } ?? "") rss \(sample.rssBytes / 1_048_576) MB fds \(sample.openDescriptors)"
                writeStderr(tty ? ProgressLine.overwriting(line) : line + "\n")
                printed = tty
                previous = snap
            }
        }
        appendClosingSample(&sampler)
        if printed { writeStderr("\n") }
    }

    /// A closing sample, so short runs (and the last partial second) are covered too: the
    /// generator, users and connections as they were when the plan ended — not during the
    /// shutdown, whose burst of closes over a few milliseconds read as a CPU peak (70 % at the
    /// end of a run that used 4 %). A plan end within half a second of the last tick adds no
    /// generator sample: CPU % over a sliver of a second says nothing.
    private func appendClosingSample(_ sampler: inout GeneratorSampler) {
        let end = state.withLock { $0.atPlanEnd }
        var closing: GeneratorSample?
        if let end, end.generator.wall > sampler.lastWall {
            if sampler.count == 0 || end.generator.wall - sampler.lastWall >= 500_000_000 {
                closing = sampler.sample(second: end.second, at: end.generator)
            }
        } else {
            closing = sampler.sample(second: Double(elapsed) / 1e9)   // ticks ran past the plan (a long stop)
        }
        state.withLock { s in
            if let closing { s.generator.append(closing) }
            // The last (partial) second's peak: no iteration starts after the plan's end.
            s.vusSeries.append(Int64(max(s.atPlanEnd?.vus ?? 0, peakInSecond.load(ordering: .relaxed))))
            s.connectedSeries.append(Int64(s.atPlanEnd?.connected ?? 0))
        }
    }

    func progressState(second: Double, vus: Int, snapshot: MetricsSnapshot, previous: MetricsSnapshot) -> ProgressLine.State {
        var stage: String?
        var target: Int?
        if case .stages(let stages) = test.model {
            let plan = StagePlan(stages)
            stage = plan.segment(atNanos: elapsed)?.name
            target = plan.target(atNanos: elapsed)
        }
        return ProgressLine.State(
            elapsedSeconds: second, stage: stage, users: vus, targetUsers: target,
            requestsPerSecond: ProgressLine.perSecond(BuiltInMetrics.httpReqs, previous: previous, current: snapshot, interval: 1),
            messagesPerSecond: ProgressLine.perSecond(BuiltInMetrics.messagesReceived, previous: previous, current: snapshot, interval: 1),
            errors: snapshot.totalErrors, errorRate: snapshot.errorRate,
            p95Micros: snapshot.counters[BuiltInMetrics.httpReqs] == nil ? nil
                : registry.trend(BuiltInMetrics.httpReqDuration)?.value(atPercentile: 95))
    }
}
