import Foundation
import LoadKitTransport
import LoadKitProtocols

/// The end-of-run summaries: ``render(_:outcomes:)``, the short one printed on the console (k6's
/// end-of-test summary is the bar: verdict, thresholds, key trends, throughput, held connections,
/// errors), and ``full(_:outcomes:)``, seed 000's complete layout written to `summary.txt`
/// (every counter, gauge, trend, rate and error kind, the generator, the environment).
package enum ConsoleSummary {
    /// Prints a summary (and where its reports went) on standard output and flushes it: one
    /// stream, so the two stay together however a harness interleaves stdout and stderr.
    static func printOut(_ text: String) {
        // As few writes as the descriptor takes (one on a terminal or file; a pipe may split past
        // 4 KB), after what stdout holds already: line by line, a test framework's output from
        // another thread landed inside the box.
        fflush(nil)
        var bytes = Array((text + "\n").utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n > 0 else { break }
            bytes = bytes.dropFirst(n)
        }
    }

    /// Trends shown on the console at most (those named by thresholds first, then the busiest).
    static let consoleTrends = 6
    /// Error kinds shown on the console at most.
    static let consoleErrorKinds = 3

    /// The short console summary (about 15–25 lines). `LOADKIT_SUMMARY=full` prints ``full(_:outcomes:)`` instead.
    public static func render(_ r: RunResult, outcomes: [ThresholdOutcome] = []) -> String {
        render(r, outcomes: outcomes, full: Settings.current.wantsFullSummary)
    }

    /// The short summary, or the full one when `full` (a run's own `LOADKIT_SUMMARY`).
    static func render(_ r: RunResult, outcomes: [ThresholdOutcome], full wantsFull: Bool) -> String {
        if wantsFull { return full(r, outcomes: outcomes) }
        let m = r.metrics
        let failed = outcomes.filter { !$0.passed }
        // A run cut short judged its thresholds on part of its plan: not a pass to read at a glance.
        let verdict = !failed.isEmpty ? "✗ FAILED"
            : (r.interruption != nil ? "⚠ INTERRUPTED" : (outcomes.isEmpty ? "no thresholds" : "✓ PASSED"))
        let title = "── LoadKit · \(r.name) "
        let tail = " \(verdict) ──"
        var out = title + String(repeating: "─", count: Swift.max(3, 72 - title.count - tail.count)) + tail + "\n"
        var facts = ["\(Fmt.readableDuration(r.durationSeconds))", Fmt.usersPlanned(r)
            + (r.peakActiveUsers > 0 ? " (\(Fmt.int(Int64(r.peakActiveUsers))) peak)" : "")]
        if let b = r.environment["build"] { facts.append("\(b) build") }
        if let i = r.interruption { facts.append("interrupted: \(i)") }
        out += "  " + facts.joined(separator: " · ") + "\n"

        if !outcomes.isEmpty {
            out += "\n  thresholds   " + (failed.isEmpty ? "all \(outcomes.count) passed" : "\(failed.count) of \(outcomes.count) breached") + "\n"
            let width = Swift.min(48, outcomes.map { $0.head.count }.max() ?? 0)
            for o in outcomes {
                out += "    \(o.mark) " + pad(o.head, width) + "  " + o.detail + "\n"
            }
            if let blame = LatencyBlame(r, outcomes: outcomes) { out += "    \(blame.sentence)\n" }
        }

        out += trendTable(m, outcomes: outcomes)
        let counters = keyCounters(m)
        if !counters.isEmpty {
            out += "\n  throughput   " + counters.map { name in
                let v = m.counters[name] ?? 0
                return "\(name) \(Fmt.int(v))" + (r.durationSeconds > 0 ? " (\(Fmt.short3(Double(v) / r.durationSeconds))/s)" : "")
            }.joined(separator: " · ") + "\n"
        }
        if let held = HeldConnections(r) {
            out += "  connections  held \(held.sentence)\n"
            if let note = held.lateNote { out += "               \(note)\n" }
        }
        if let line = scheduleLine(m) { out += line }
        out += errorLines(m)
        if let w = failureLoopWarning(r) { out += "    \(w)\n" }
        if let c = cutAtStop(m) { out += "    \(c)\n" }
        if let g = GeneratorPeak(r) {
            out += "  generator    CPU \(g.cpuTime.map { "\($0), " } ?? "")max \(Fmt.num(g.cpu, 0)) %\(g.busiestLoop.map { " · busiest loop \(Fmt.num($0, 0)) % busy" } ?? "")"
                + " · RSS max \(Fmt.bytes(g.rss)) · open files max \(g.fds)\n"
        }
        return Secrets.scrub(out, environment: r.environment)
    }

    /// Trends for the console: those thresholds name, then the script's own steps, then k6's
    /// most telling built-ins (duration, waiting, connecting, iteration), then the busiest others.
    static func keyTrends(_ m: MetricsSnapshot, outcomes: [ThresholdOutcome]) -> [String] {
        var names: [String] = []
        for o in outcomes where m.trends[o.metric].map({ $0.count > 0 }) == true && !names.contains(o.metric) {
            names.append(o.metric)
        }
        let priority = [BuiltInMetrics.httpReqDuration, BuiltInMetrics.httpReqWaiting, BuiltInMetrics.httpReqConnecting,
                        BuiltInMetrics.wsConnecting, RunnerMetrics.iterationDuration]
        func rank(_ name: String) -> Int {
            if let i = priority.firstIndex(of: name) { return 1 + i }
            return name.hasPrefix("http_req_") || name.hasPrefix("ws_") || name == RunnerMetrics.iterationLateness ? 100 : 0
        }
        let rest = m.trends.filter { $0.value.count > 0 && !names.contains($0.key) && !$0.key.contains("{") }
            .sorted { a, b in
                let (ra, rb) = (rank(a.key), rank(b.key))
                if ra != rb { return ra < rb }
                return a.value.count > b.value.count || (a.value.count == b.value.count && a.key < b.key)
            }
        names += rest.map(\.key)
        return Array(names.prefix(consoleTrends))
    }

    /// Counts that are not a throughput (how sessions ended): never on the throughput line.
    static let notThroughput: Set<String> = [BuiltInMetrics.wsSessionsLeftOpen, BuiltInMetrics.wsSessionsClosedByServer]

    /// Counters for the throughput line: requests and iterations first, then the busiest others
    /// (not the runner's bookkeeping, not byte counts, not how sessions ended); `limit` at most.
    static func keyCounters(_ m: MetricsSnapshot, limit: Int = 4) -> [String] {
        let first = [BuiltInMetrics.httpReqs, RunnerMetrics.iterations, BuiltInMetrics.messagesSent, BuiltInMetrics.messagesReceived].filter { (m.counters[$0] ?? 0) > 0 }
        let others = m.counters.filter { c in
            c.value > 0 && !first.contains(c.key) && !MetricsSnapshot.bookkeepingCounters.contains(c.key)
                && !notThroughput.contains(c.key)
                && c.key != Threshold.operationsCounter && !c.key.hasPrefix("data_") && !c.key.contains("{")
        }.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }.map(\.key)
        return Array((first + others).prefix(limit))
    }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
    static func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? " " + s : String(repeating: " ", count: n - s.count) + s }

    /// Seed 000's complete layout (`summary.txt`): test summary, message/counter totals, per-trend
    /// avg/min/max/med/p90/p95/p99 in ms, rates, held connections and errors explained, errors by
    /// kind with their source and first example, thresholds, the generator, the environment.
    public static func full(_ r: RunResult, outcomes: [ThresholdOutcome] = []) -> String {
        let bar = String(repeating: "═", count: 62)
        let m = r.metrics
        var out = "\(bar)\n" + center("LoadKit results: \(r.name)", 62) + "\n\(bar)\n\n"
        // Cut short: said first, as the console and HTML headlines do.
        if let i = r.interruption { out += "⚠ INTERRUPTED (\(i)): every figure below covers part of the plan\n\n" }
        out += "Test summary\n"
        // The open model's users are a ceiling (maxUsers), not a plan.
        out += "  \(Fmt.isOpenModel(r) ? "maxUsers" : "Workers"): \(r.workers)"
            + (r.peakActiveUsers > 0 ? " (peak active \(r.peakActiveUsers))" : "") + "\n"
        out += "  Duration: \(Fmt.duration(r.durationSeconds))\n"
        let ok = m.successfulOperations, errs = m.totalErrors
        if let s = r.successRate {
            out += "  Success rate: \(Fmt.num(s * 100))% (\(ok)/\(ok + errs))\n"
        }
        if let i = r.interruption { out += "  Interrupted: \(i)\n" }
        // Right after the success rate, which counts only the arrivals that started.
        if let s = schedule(m) {
            out += "\nSchedule (open model)\n  \(s.facts)\n" + (s.warning.map { "  \($0)\n" } ?? "")
        }

        out += fullMetrics(r)
        if let held = HeldConnections(r) {
            out += "\nConnections held: \(held.sentence)\n"
            if let note = held.lateNote { out += "  \(note)\n" }
        }
        // The rate once, on its own line with its counts (it was also in brackets here).
        out += "\nErrors: \(errs)"
        out += "\n  error rate \(ErrorRateText(m).sentence)\n"
        for (kind, t) in m.errorsByCount {
            out += "  \(kind) [\(t.source.rawValue)]: \(t.count)\n"
            if let first = t.examples.first { out += "    e.g. \(first)\n" }
        }
        if let w = failureLoopWarning(r) { out += "  \(w)\n" }
        if let c = cutAtStop(m) { out += "  \(c)\n" }
        if !outcomes.isEmpty {
            let failed = outcomes.filter { !$0.passed }.count
            out += "\nThresholds: " + (failed == 0 ? "all \(outcomes.count) passed" : "\(failed) of \(outcomes.count) FAILED") + "\n"
            for o in outcomes { out += "  \(o.mark) \(o.message)\n" }
            if let blame = LatencyBlame(r, outcomes: outcomes) { out += "  \(blame.sentence)\n" }
        }
        if let g = GeneratorPeak(r) {
            out += "\nLoad generator: CPU \(g.cpuTime.map { "\($0), " } ?? "")max \(Fmt.num(g.cpu, 0))%\(g.busiestLoop.map { ", busiest event loop \(Fmt.num($0, 0))% busy" } ?? "")"
                + ", RSS max \(Fmt.bytes(g.rss)), open files max \(g.fds)\n"
        }
        let env = Secrets.masked(r.environment)
        if !env.isEmpty {
            out += "\nEnvironment\n"
            for (k, v) in env.sorted(by: { $0.key < $1.key }) { out += "  \(k)=\(v)\n" }
        }
        return Secrets.scrub(out, environment: r.environment)
    }

    /// The console's trend table: key trends with avg/p50/p95/p99/max in ms and their counts.
    static func trendTable(_ m: MetricsSnapshot, outcomes: [ThresholdOutcome]) -> String {
        var out = ""
        let trends = keyTrends(m, outcomes: outcomes)
        if !trends.isEmpty {
            let nameWidth = Swift.max(14, trends.map(\.count).max() ?? 0)
            out += "\n  " + pad("trends (ms)", nameWidth + 2) + ["avg", "p50", "p95", "p99", "max"].map { lpad($0, 9) }.joined()
                + lpad("count", 10) + "\n"
            for name in trends {
                let t = TrendSummary(m.trends[name]!)
                out += "    " + pad(name, nameWidth) + [t.avg, t.med, t.p95, t.p99, t.max].map { lpad(Fmt.short3($0), 9) }.joined()
                    + lpad(Fmt.int(t.count), 10) + "\n"
            }
            let more = m.trends.values.filter { $0.count > 0 }.count - trends.count
            if more > 0 { out += "    + \(more) more in summary.txt and report.html\n" }
        }

        return out
    }

    /// An open-model run's schedule: iterations dropped (no free user) and late, and how late
    /// iterations started after their scheduled instant. Nil for other runs.
    static func scheduleLine(_ m: MetricsSnapshot) -> String? {
        guard let s = schedule(m) else { return nil }
        return "  schedule     \(s.facts)\n" + (s.warning.map { "    \($0)\n" } ?? "")
    }

    /// The open model's schedule as the summaries say it: dropped, late and the start lateness,
    /// and a warning when arrivals were dropped; nil when the run had no schedule (closed model).
    static func schedule(_ m: MetricsSnapshot) -> (facts: String, warning: String?)? {
        guard let h = m.trends[RunnerMetrics.iterationLateness], h.count > 0 else { return nil }
        func ms(_ micros: Int64) -> String { Fmt.short3(Double(micros) / 1000) + " ms" }
        let dropped = m.counter(RunnerMetrics.iterationsDropped)
        let facts = "\(Fmt.int(dropped)) dropped (no free user) · "
            + "\(Fmt.int(m.counter(RunnerMetrics.iterationsLate))) late · start lateness P50 \(ms(h.value(atPercentile: 50))), "
            + "P99 \(ms(h.value(atPercentile: 99))), max \(ms(h.max))"
        guard dropped > 0 else { return (facts, nil) }
        // A dropped arrival sent nothing: no latency sample, no error. Say what that hides.
        let due = dropped + m.counter(RunnerMetrics.iterations)
        return (facts, "⚠ \(Fmt.percent(Double(dropped) / Double(max(1, due)))) of the arrivals due were dropped: they are in no "
            + "latency figure and no error rate (more maxUsers, or SLA.count(\"iterations_dropped\", atMost: 0))")
    }

    /// The console's error line and its most frequent kinds with an example each.
    static func errorLines(_ m: MetricsSnapshot) -> String {
        var out = ""
        out += "  errors       \(ErrorRateText(m).sentence)\n"
        let kinds = m.errorsByCount
        for (kind, t) in kinds.prefix(consoleErrorKinds) {
            var line = "    \(kind) [\(t.source.rawValue)] \(Fmt.int(t.count))"
            // Long enough for a request, its status and the start of what the server said.
            if let e = t.examples.first { line += " — " + (e.count > 150 ? String(e.prefix(149)) + "…" : e) }
            out += line + "\n"
        }
        if kinds.count > consoleErrorKinds { out += "    + \(kinds.count - consoleErrorKinds) more kinds in load_test.log\n" }
        return out
    }

    /// A closed-model run whose users mostly failed and started again at once, at least 100
    /// times a second each — a busy loop against a failing server (a refused port, a 500 at once)
    /// or a script that throws at once, burning the generator's CPU and piling up errors. Nil
    /// otherwise (or with `.pauseAfterError`, which keeps a user below one failure per pause).
    static func failureLoopWarning(_ r: RunResult) -> String? {
        let m = r.metrics
        let failed = m.counters[RunnerMetrics.iterationsFailed] ?? 0
        let iterations = m.counters[RunnerMetrics.iterations] ?? 0
        let users = Swift.max(1, r.peakActiveUsers)
        guard !Fmt.isOpenModel(r), failed >= 1000, 2 * failed >= iterations, r.durationSeconds > 0 else { return nil }
        let perUser = Double(failed) / r.durationSeconds / Double(users)
        guard perUser >= 100 else { return nil }
        let rate = perUser >= 1000 ? Fmt.int(Int64(perUser.rounded())) : Fmt.short3(perUser)
        return "⚠ \(Fmt.int(failed)) iterations failed back to back (\(rate)/s a user): failing at once, a closed "
            + "model's users loop busily — .pauseAfterError(.seconds(1)) paces them"
    }

    /// What the stop cut: iterations still running when the runner ended their users after the
    /// graceful stop (`iterations_interrupted`, not failures) — a receive or request whose
    /// time-out is longer than the stop, against a server gone silent, shows only here, in a run
    /// that may otherwise pass. Requests sent and then cancelled are `http_reqs_cut`.
    static func cutAtStop(_ m: MetricsSnapshot) -> String? {
        let n = m.counters[RunnerMetrics.iterationsInterrupted] ?? 0
        guard n > 0 else { return nil }
        return "\(Fmt.int(n)) iteration\(n == 1 ? " was" : "s were") cut by the stop before ending (iterations_interrupted, "
            + "not failures)" + (m.cutRequestsText.map { "; \($0)" } ?? "")
            + ": a request or receive() waits up to its time-out (an HTTPClient's default is 30 s; a receive() "
            + "without one, as long as the server is silent) — give them one shorter than the graceful stop"
    }

    /// `summary.txt`'s counters, gauges, trends and rates, each sorted by name.
    static func fullMetrics(_ r: RunResult) -> String {
        let m = r.metrics
        var out = ""
        if !m.counters.isEmpty {
            out += "\nCounters\n"
            for (name, v) in m.counters.sorted(by: { $0.key < $1.key }) {
                let rate = r.durationSeconds > 0 ? "  (\(Fmt.num(Double(v) / r.durationSeconds, 1))/s)" : ""
                out += "  \(name): \(v)\(rate)\n"
            }
        }
        if !m.gauges.isEmpty {
            out += "\nGauges\n"
            for (name, v) in m.gauges.sorted(by: { $0.key < $1.key }) { out += "  \(name): \(Fmt.short(v))\n" }
        }
        if !m.trends.isEmpty {
            out += "\nPerformance (ms)\n"
            for (name, h) in m.trends.sorted(by: { $0.key < $1.key }) where h.count > 0 {
                let t = TrendSummary(h)
                out += "\n  \(name)  (\(t.count) samples)\n"
                out += "  Avg: \(Fmt.num(t.avg))ms, Min: \(Fmt.num(t.min))ms, Max: \(Fmt.num(t.max))ms, \n"
                out += "  Med: \(Fmt.num(t.med))ms, P90: \(Fmt.num(t.p90))ms, P95: \(Fmt.num(t.p95))ms, P99: \(Fmt.num(t.p99))ms\n"
            }
        }
        if !m.rates.isEmpty {
            out += "\nRates\n"
            for (name, t) in m.rates.sorted(by: { $0.key < $1.key }) {
                out += "  \(name): \(Fmt.num(t.value * 100))% (\(t.hits)/\(t.total))\n"
            }
        }
        return out
    }

    /// On which side a breached latency threshold's time went, as every error says whose it is:
    /// the load generator's own configuration when the time was spent waiting for a connection in
    /// a capped client pool (``poolWait(_:_:)``, said first: the wait is measured, the rest only
    /// suggests); the load generator's when it was saturated (its CPU, as shown, at ≥ 90 % of the cores it
    /// may use, or one of its event loops busy ≥ 90 % of a second) or lagged (≥ 5 % of iterations
    /// started more than 1 ms late, the 99th percentile of their lateness at least a tenth of the
    /// breached latency), else the server's (or the network's). Nil when no latency threshold
    /// failed on samples (a threshold without samples is not a latency; `iteration_lateness` is the
    /// generator's own lag), or the run kept no generator figures or no core count (merged shards
    /// with different ones). The CPU is this process's, once a second: an in-process server and
    /// tests running beside count in it. The busiest loop's figure is the run's own loops': it
    /// catches one loop saturated among several (hidden under the process's figure) and a script
    /// that blocks its loop without using CPU (a `sleep`, synchronous I/O). One busy second (a
    /// burst of connects) is not saturation: it takes two, or the only one of a short run. A
    /// server in this process listening on the same loops (`generator_loops_shared`) shares their
    /// time, and the sentence says so instead of naming the generator alone.
    struct LatencyBlame {
        /// What the time says, without the summary's mark (a test failure carries it as is).
        let text: String
        /// Whether it points at the generator (marked ⚠ in the summaries) rather than the server.
        let warns: Bool
        /// As the summaries print it.
        var sentence: String { (warns ? "⚠ " : "") + text }
        /// A latency threshold breached on samples: what the sentence speaks of.
        static func isLatencyBreach(_ o: ThresholdOutcome) -> Bool {
            !o.passed && !o.skipped && o.threshold.unit == .duration && o.metric != RunnerMetrics.iterationLateness && o.actual != nil
        }

        init?(_ r: RunResult, outcomes: [ThresholdOutcome]) {
            let breaches = outcomes.filter(Self.isLatencyBreach)
            if let pool = Self.poolWait(r, breaches) {
                text = pool
                warns = true
                return
            }
            guard let smallest = breaches.compactMap(\.actual).min(),
                  let g = GeneratorPeak(r), let cores = r.environment["generator_cpus"].flatMap({ Int($0) }), cores > 0
            else { return nil }
            let iterations = r.metrics.counters[RunnerMetrics.iterations] ?? 0
            let late = r.metrics.counters[RunnerMetrics.iterationsLate] ?? 0
            let lateShare = iterations > 0 ? Double(late) / Double(iterations) : 0
            // Lag explains a breach only when it is of its size: iterations a few ms late do not
            // make a 300 ms P99 (a held-out run blamed a 1 s server freeze on 5.7 % starting late).
            let lag = Double(r.metrics.trends[RunnerMetrics.iterationLateness]?.value(atPercentile: 99) ?? 0)
            let lagged = lateShare >= 0.05 && lag >= smallest / 10
            let cpuShown = g.cpu.rounded()   // the figures the sentence prints decide
            let loopShown = g.busiestLoop?.rounded()
            var cpu = "CPU max \(Fmt.num(cpuShown, 0)) %; saturated at \(90 * cores) % for \(cores) core\(cores == 1 ? "" : "s")"
            if let loopShown { cpu += "; busiest event loop \(Fmt.num(loopShown, 0)) % busy" }
            warns = cpuShown >= 90 * Double(cores) || g.loopSaturated || lagged
            if cpuShown >= 90 * Double(cores) {
                text = "latency breached while the load generator was saturated (\(cpu)): part of the time may "
                    + "be the generator's own — fewer users per process, more cores, or shards"
            } else if g.loopSaturated {
                if r.environment["generator_loops_shared"] != nil {
                    text = "latency breached while an event loop of this process was saturated (\(cpu)): it runs both the "
                        + "users and an in-process server, so part of the time may be either's — give the server its own loops"
                } else {
                    text = "latency breached while an event loop of the load generator was saturated (\(cpu)): its users "
                        + "waited for it — a script that blocks (sleep, synchronous I/O, a lock) or computes on its loop, "
                        + "or too many users per loop"
                }
            } else if lagged {
                text = "latency breached while the load generator lagged (\(Fmt.percent(lateShare)) of iterations "
                    + "started more than 1 ms late; \(cpu)): part of the time may be the generator's own or its host's stalls"
            } else {
                text = "latency breached with the load generator not saturated (\(cpu)): look at the server's side "
                    + "(or the network)"
            }
        }

        /// Metrics that leave out the wait for a connection (k6's phases after `http_req_blocked`,
        /// and `http_req_duration`, tagged variants included): a breach of theirs is not the pool's.
        static let timedAfterThePool: Set<String> = [
            BuiltInMetrics.httpReqDuration, BuiltInMetrics.httpReqConnecting, BuiltInMetrics.httpReqTLSHandshaking,
            BuiltInMetrics.httpReqSending, BuiltInMetrics.httpReqWaiting, BuiltInMetrics.httpReqReceiving,
        ]

        /// The sentence for a breach spent waiting in the client's own capped pool
        /// (``HTTPClient/Configuration/maxConnectionsPerHost``): requests waited for a connection
        /// (`http_reqs_queued` > 0) and, for a breached latency that includes the wait (a script's
        /// step, `iteration_duration`, `http_req_blocked` itself — not ``timedAfterThePool``),
        /// `http_req_blocked` at the threshold's statistic is at least half of it. The server
        /// answered in time; the generator's configuration held the requests back. Nil otherwise.
        static func poolWait(_ r: RunResult, _ breaches: [ThresholdOutcome]) -> String? {
            let m = r.metrics
            guard let queued = m.counters[BuiltInMetrics.httpReqsQueued], queued > 0 else { return nil }
            for o in breaches {
                let base = o.metric.split(separator: "{", maxSplits: 1).first.map(String.init) ?? o.metric
                guard !timedAfterThePool.contains(base), let actual = o.actual, actual > 0 else { continue }
                var wait = o.threshold
                wait.metric = BuiltInMetrics.httpReqBlocked
                guard let blocked = wait.actualValue(in: m, durationSeconds: r.durationSeconds), blocked >= actual / 2
                else { continue }
                let requests = m.counters[BuiltInMetrics.httpReqs] ?? queued
                let cap = r.environment["http_pool_cap"].map { "; HTTPClient maxConnectionsPerHost = \($0)" } ?? ""
                return "latency breached while \(Fmt.int(queued)) of \(Fmt.int(requests)) requests waited for a connection "
                    + "in the client's pool (\(BuiltInMetrics.httpReqBlocked) \(o.threshold.statistic) = "
                    + "\(Threshold.format(blocked, .duration))\(cap)): raise the cap or lower the rate"
            }
            return nil
        }
    }

    /// The load generator's highest CPU, RSS and descriptor count over the run, and its busiest
    /// event loop's highest share (nil when not measured).
    struct GeneratorPeak {
        let cpu: Double, rss: Int64, fds: Int
        let busiestLoop: Double?
        /// A loop busy ≥ 90 % (as printed) in two seconds, or in the only one or two there are.
        let loopSaturated: Bool
        /// The CPU time over the run and its cost a request (or an iteration, when no HTTP request
        /// was made), as wrk users compare it: `4.21 s (18.3 µs a request)`; nil when not measured.
        let cpuTime: String?
        /// The generator's CPU time divided by what the run did: its HTTP requests, when they are
        /// all it did; else its iterations (a WebSocket or STOMP session with a login request
        /// costs its messages, not its one request). Nil when not measured or nothing was done.
        static func cpuCost(_ r: RunResult) -> (micros: Double, unit: String)? {
            guard let seconds = r.generatorCPUSeconds else { return nil }
            let c = r.metrics.counters
            let sessions = [BuiltInMetrics.wsSessions, BuiltInMetrics.messagesSent, BuiltInMetrics.messagesReceived].contains { (c[$0] ?? 0) > 0 }
            let requests = c[BuiltInMetrics.httpReqs] ?? 0
            let (count, unit) = requests > 0 && !sessions ? (requests, "request") : (c[RunnerMetrics.iterations] ?? 0, "iteration")
            return count > 0 ? (seconds * 1e6 / Double(count), unit) : nil
        }

        init?(_ r: RunResult) {
            guard !r.generator.isEmpty else { return nil }
            cpuTime = r.generatorCPUSeconds.map { seconds in
                guard let each = Self.cpuCost(r) else { return "\(Fmt.num(seconds, 2)) s" }
                // The next unit from where the printed figure would read 1000 (short3 keeps one
                // decimal from 100 on): 999.97 µs shows as 1 ms. Rounded once, from the exact value.
                let us = each.micros
                let cost = us < 999.95 ? "\(Fmt.short3(us)) µs" : us < 999_950 ? "\(Fmt.short3(us / 1e3)) ms" : "\(Fmt.short3(us / 1e6)) s"
                return "\(Fmt.num(seconds, 2)) s (\(cost) a\(each.unit == "iteration" ? "n" : "") \(each.unit))"
            }
            cpu = r.generator.map(\.cpuPercent).max() ?? 0
            let loops = r.generator.compactMap(\.busiestLoopPercent)
            busiestLoop = loops.max()
            let saturatedSeconds = loops.filter { $0.rounded() >= 90 }.count
            loopSaturated = saturatedSeconds >= 2 || (saturatedSeconds == 1 && loops.count <= 2)
            rss = r.generator.map(\.rssBytes).max() ?? 0
            fds = r.generator.map(\.openDescriptors).max() ?? 0
        }
    }

    static func center(_ s: String, _ width: Int) -> String {
        let pad = Swift.max(0, (width - s.count) / 2)
        return String(repeating: " ", count: pad) + s
    }
}
