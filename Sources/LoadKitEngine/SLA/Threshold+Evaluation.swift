import LoadKitTransport
import LoadKitProtocols

/// The verdict of one ``Threshold`` on one run.
public struct ThresholdOutcome: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The threshold evaluated (for the no-work outcome: metric `run`, statistic `count`).
    public var threshold: Threshold
    /// The measured value in the threshold's unit; nil when the metric had no data.
    public var actual: Double?
    /// Whether the threshold held.
    public var passed: Bool
    /// Whether it was not judged (a relative threshold without a baseline); `passed` is then true.
    public var skipped: Bool = false
    /// Human sentence: `message_latency p(95) = 412.3 ms, limit < 200 ms`.
    public var message: String

    /// The metric's name.
    public var metric: String { threshold.metric }
    /// The statistic's k6-style name (`p(95)`).
    public var statistic: String { threshold.statistic.description }
    /// The limit in the threshold's unit.
    public var limit: Double { threshold.limit }

    /// Creates an outcome.
    public init(threshold: Threshold, actual: Double?, passed: Bool, skipped: Bool = false, message: String) {
        self.threshold = threshold; self.actual = actual; self.passed = passed; self.skipped = skipped
        self.message = message
    }

    private enum CodingKeys: String, CodingKey { case threshold, actual, passed, skipped, message }

    /// Decodes an outcome (`skipped` defaults to false).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        threshold = try c.decode(Threshold.self, forKey: .threshold)
        actual = try c.decodeIfPresent(Double.self, forKey: .actual)
        passed = try c.decode(Bool.self, forKey: .passed)
        skipped = try c.decodeIfPresent(Bool.self, forKey: .skipped) ?? false
        message = try c.decode(String.self, forKey: .message)
    }

    public var description: String { (skipped ? "– " : (passed ? "✓ " : "✗ ")) + message }

    /// `✓`, `✗`, or `–` for a skipped threshold.
    var mark: String { skipped ? "–" : (passed ? "✓" : "✗") }

    /// The message's subject and actual value (`message_latency p(95) = 11.6 ms`).
    var head: String {
        guard let r = message.range(of: ", limit ") else { return message }
        return String(message[..<r.lowerBound])
    }

    /// The message's limit part (`limit < 250 ms`), or empty.
    var detail: String {
        guard let r = message.range(of: ", limit ") else { return "" }
        return "limit " + message[r.upperBound...]
    }

    /// The outcome that fails a run that did no work.
    public static let noWork = ThresholdOutcome(
        threshold: Threshold(metric: "run", statistic: .count, comparison: .atLeast, limit: 1),
        actual: 0, passed: false,
        message: "no work was done: no samples were recorded and no operations were counted")
}

extension MetricsSnapshot {
    /// `3 requests sent and left unanswered (http_reqs_cut)`, nil when none was: the console's
    /// cut-iterations line and a threshold's cut hint say it alike.
    var cutRequestsText: String? {
        guard let n = counters[BuiltInMetrics.httpReqsCut], n > 0 else { return nil }
        return "\(Fmt.int(n)) request\(n == 1 ? "" : "s") sent and left unanswered (http_reqs_cut)"
    }

    /// Counters the runner keeps for its own bookkeeping; they do not count as work done.
    public static let bookkeepingCounters: Set<String> = [
        RunnerMetrics.errorsAfterCancel, RunnerMetrics.ticksMissed, RunnerMetrics.iterationsDropped,
        RunnerMetrics.iterationsLate, RunnerMetrics.iterationsFailed, RunnerMetrics.iterationsInterrupted,
    ]

    /// Whether anything was measured: a trend sample, a counter (other than
    /// ``bookkeepingCounters``) above zero, a rate sample, or an error.
    public var didWork: Bool {
        trends.values.contains { $0.count > 0 }
            || counters.contains { $0.value > 0 && !MetricsSnapshot.bookkeepingCounters.contains($0.key) }
            || rates.values.contains { $0.total > 0 } || !errors.isEmpty
    }

    /// Successful operations, the error rate's other term: counter `operations` when present,
    /// else `iterations − iterations_failed` (completed script runs that did not throw).
    public var successfulOperations: Int64 {
        if let ops = counters[Threshold.operationsCounter] { return ops }
        let it = counters[Threshold.iterationsCounter] ?? 0
        return Swift.max(0, it - (counters[RunnerMetrics.iterationsFailed] ?? 0))
    }

    /// errors ÷ (successful operations + errors); nil when both are zero.
    public var errorRate: Double? {
        let e = totalErrors
        let d = successfulOperations &+ e
        return d == 0 ? nil : Double(e) / Double(d)
    }
}

extension Threshold {
    /// The metric's value for this threshold's statistic, in this threshold's unit; nil when
    /// the metric has no data.
    public func actualValue(in m: MetricsSnapshot, durationSeconds: Double) -> Double? {
        if metric == Threshold.errorsMetric {
            switch statistic {
            case .rate: return m.errorRate
            case .count: return Double(m.totalErrors)
            case .perSecond: return durationSeconds > 0 ? Double(m.totalErrors) / durationSeconds : nil
            default: break
            }
        }
        switch statistic {
        case .percentile(let p):
            guard let h = m.trends[metric], h.count > 0 else { return nil }
            return Double(h.value(atPercentile: p))
        case .avg:
            guard let h = m.trends[metric], h.count > 0 else { return nil }
            return h.mean
        case .min:
            guard let h = m.trends[metric], h.count > 0 else { return nil }
            return Double(h.min)
        case .max:
            guard let h = m.trends[metric], h.count > 0 else { return nil }
            return Double(h.max)
        case .med:
            guard let h = m.trends[metric], h.count > 0 else { return nil }
            return Double(h.median)
        case .count:
            if let c = m.counters[metric] { return Double(c) }
            if let h = m.trends[metric] { return Double(h.count) }
            if let r = m.rates[metric] { return Double(r.total) }
            return 0  // a counter never incremented counts 0
        case .rate:
            guard let r = m.rates[metric], r.total > 0 else { return nil }
            return r.value
        case .perSecond:
            guard durationSeconds > 0 else { return nil }
            let c = m.counters[metric] ?? m.trends[metric]?.count ?? 0
            return Double(c) / durationSeconds
        }
    }

    /// Evaluates this threshold against a snapshot. Missing data fails (`no samples`). A relative
    /// threshold has no verdict here (actual nil): it needs the run and its baseline.
    public func evaluate(_ m: MetricsSnapshot, durationSeconds: Double) -> ThresholdOutcome {
        let head = "\(metric) \(statistic)"
        if let rel = relative {
            return ThresholdOutcome(threshold: self, actual: nil, passed: false,
                                    message: "\(head): compared with the \(rel.reference.rawValue) at the end of the run")
        }
        let limitText = "limit \(comparison.rawValue) \(Threshold.format(limit, unit))"
        guard let actual = actualValue(in: m, durationSeconds: durationSeconds) else {
            if let failed = failedRequestsHint(m) ?? failedStepHint(m) {
                return ThresholdOutcome(threshold: self, actual: nil, passed: false,
                                        message: "\(head): no samples — \(failed), \(limitText)")
            }
            // Any metric may lack samples when every iteration was cut, a misspelt one too: both said.
            if let cut = cutIterationsHint(m) {
                return ThresholdOutcome(threshold: self, actual: nil, passed: false,
                                        message: "\(head): no samples — \(cut), \(limitText)" + unknownMetricHint(m))
            }
            return ThresholdOutcome(threshold: self, actual: nil, passed: false,
                                    message: "\(head): no samples, \(limitText)" + unknownMetricHint(m))
        }
        let passed = comparison.holds(actual, limit)
        return ThresholdOutcome(threshold: self, actual: actual, passed: passed,
                                message: "\(head) = \(Threshold.format(actual, unit)), \(limitText)" + (passed ? "" : unknownMetricHint(m)))
    }

    /// The built-in HTTP trends that time answered requests only: a request that got no answer
    /// (a time-out, a refusal) records none of them.
    static let answeredOnlyTrends: Set<String> = [
        BuiltInMetrics.httpReqDuration, BuiltInMetrics.httpReqBlocked, BuiltInMetrics.httpReqConnecting,
        BuiltInMetrics.httpReqTLSHandshaking, BuiltInMetrics.httpReqSending, BuiltInMetrics.httpReqWaiting,
        BuiltInMetrics.httpReqReceiving,
    ]

    /// For a built-in HTTP trend without samples although requests were made — every one failed
    /// before an answer (or, for `http_req_duration{expected_response:true}`, with an unexpected
    /// status): says so, with the failures' kinds, instead of calling the metric unknown (a
    /// held-out user's 60 time-outs read like a misspelt `http_req_duration`). A `name` tag's
    /// variant counts that name's requests. Nil for any other metric, or when no request was made.
    func failedRequestsHint(_ m: MetricsSnapshot) -> String? {
        let parts = metric.split(separator: "{", maxSplits: 1)
        guard let base = parts.first.map(String.init) else { return nil }
        let expectedOnly = metric == BuiltInMetrics.httpReqDurationExpected
        let tag = expectedOnly || parts.count < 2 ? nil : String(parts[1].dropLast())   // `name:hang`
        guard expectedOnly || (Threshold.answeredOnlyTrends.contains(base) && (tag == nil || base == BuiltInMetrics.httpReqDuration))
        else { return nil }
        let reqs = tag.map { BuiltInMetrics.tagged(BuiltInMetrics.httpReqs, $0) } ?? BuiltInMetrics.httpReqs
        let failedName = tag.map { BuiltInMetrics.tagged(BuiltInMetrics.httpReqFailed, $0) } ?? BuiltInMetrics.httpReqFailed
        guard let requests = m.counters[reqs], requests > 0 else { return nil }
        let failed = m.rates[failedName]?.hits ?? requests
        var text = failed >= requests ? "all \(Fmt.int(requests)) requests" : "\(Fmt.int(failed)) of \(Fmt.int(requests)) requests"
        if let tag, tag.hasPrefix("name:") { text += " named '\(tag.dropFirst(5))'" }
        text += " failed"
        // The run's failure kinds, when they are the requests' (a tag's requests are some of them).
        if tag == nil, let kinds = FailureCause.kinds(m) { text += " (\(kinds))" }
        return text + ", and \(metric) times " + (expectedOnly ? "answers with an expected status only" : "answered requests only")
    }

    /// For a step's trend without samples because the step never succeeded (a failed `measure`
    /// records no sample; `steps_failed{step:…}` counts them): says so, with the run's failure
    /// kinds, instead of calling the metric unknown (a held-out user's every `read_order` timed
    /// out — its failures counted under the request's name, not the step's). Nil otherwise.
    func failedStepHint(_ m: MetricsSnapshot) -> String? {
        guard m.trends[metric] == nil, !metric.contains("{"),
              let failed = m.counters[BuiltInMetrics.tagged(RunnerMetrics.stepsFailed, "step:\(metric)")], failed > 0
        else { return nil }
        return "no '\(metric)' step succeeded: all \(Fmt.int(failed)) failed (a failed step records no sample"
            + (FailureCause.kinds(m).map { "; the run's failures: \($0)" } ?? "") + ")"
    }

    /// For any threshold without samples in a run whose every iteration the stop cut (none
    /// ended: each still waited when the graceful stop ran out) — a held-out user's run showed a
    /// bare `no samples`. Nil when an iteration ended, or none was cut.
    func cutIterationsHint(_ m: MetricsSnapshot) -> String? {
        guard let cut = m.counters[RunnerMetrics.iterationsInterrupted], cut > 0, (m.counters[RunnerMetrics.iterations] ?? 0) == 0
        else { return nil }
        let requests = m.cutRequestsText.map { "; \($0)" } ?? ""
        return (cut == 1 ? "its one iteration was cut by the stop before it ended" : "all \(Fmt.int(cut)) iterations were cut by the stop before they ended")
            + " (iterations_interrupted, not failures)\(requests): give requests and receives a time-out shorter than the graceful stop"
    }

    /// For a metric the run never recorded (a typo, a tag never used): says so, with the names
    /// that were recorded — "count = 0" alone would not tell a misspelt name from a quiet run.
    func unknownMetricHint(_ m: MetricsSnapshot) -> String {
        guard metric != Threshold.errorsMetric, m.trends[metric] == nil, m.counters[metric] == nil, m.rates[metric] == nil
        else { return "" }
        let base = metric.split(separator: "{").first.map(String.init) ?? metric
        let names = Set(m.trends.keys).union(m.counters.keys).union(m.rates.keys)
        let near = names.filter { $0.hasPrefix(base) && $0 != metric }.sorted()
        let shown = (near.isEmpty ? names.filter { !$0.contains("{") }.sorted() : near).prefix(8)
        // A misspelt name (`http_req_durration`): the recorded name it is closest to.
        let guess = near.isEmpty ? Self.closest(to: metric, in: names) : nil
        return " (no metric named '\(metric)' was recorded" + (guess.map { "; did you mean '\($0)'?" } ?? "")
            + (shown.isEmpty ? ")" : "; recorded: \(shown.joined(separator: ", ")))")
    }

    /// The name within a few edits of `name` — one per four characters, one to three — the
    /// fewest (ties by name); nil when none is.
    static func closest(to name: String, in names: Set<String>) -> String? {
        let a = Array(name.utf8)
        let limit = min(3, max(1, a.count / 4))
        var best: (distance: Int, name: String)?
        for candidate in names.sorted() {
            let b = Array(candidate.utf8)
            guard abs(a.count - b.count) <= limit else { continue }
            // Levenshtein distance, one row at a time.
            var row = Array(0...b.count)
            for i in a.indices {
                var previous = row[0]
                row[0] = i + 1
                for j in b.indices {
                    let substitution = previous + (a[i] == b[j] ? 0 : 1)
                    previous = row[j + 1]
                    row[j + 1] = min(substitution, row[j + 1] + 1, row[j] + 1)
                }
            }
            let d = row[b.count]
            if d <= limit, d < (best?.distance ?? .max) { best = (d, candidate) }
        }
        return best?.name
    }

    /// Evaluates this threshold against a run's result (a relative one against the run's
    /// baseline, see ``Baseline``).
    public func evaluate(_ result: RunResult) -> ThresholdOutcome {
        if relative != nil { return evaluateRelative(result, Baseline.lookup(for: result)) }
        return evaluate(result.metrics, durationSeconds: result.durationSeconds)
    }
}

extension Array where Element == Threshold {
    /// Evaluates every threshold; a run that did no work gets one extra failing outcome
    /// (``ThresholdOutcome/noWork``) first, whatever the thresholds say.
    public func evaluate(_ result: RunResult) -> [ThresholdOutcome] {
        evaluate(result, baseline: contains { $0.relative != nil } ? Baseline.lookup(for: result) : .unset)
    }

    /// Evaluates every threshold, relative ones against `baseline` (see ``Baseline``).
    public func evaluate(_ result: RunResult, baseline: Baseline.Lookup) -> [ThresholdOutcome] {
        var out: [ThresholdOutcome] = []
        if !result.metrics.didWork { out.append(.noWork) }
        out += map { $0.relative == nil ? $0.evaluate(result) : $0.evaluateRelative(result, baseline) }
        return out
    }

    /// For abort-on-fail during a run: the outcomes of thresholds marked `abortOnFail` that are
    /// breached now. Thresholds without data yet are not breaches here.
    public func breachesToAbort(_ snapshot: MetricsSnapshot, elapsedSeconds: Double) -> [ThresholdOutcome] {
        filter(\.abortOnFail).compactMap { t in
            let o = t.evaluate(snapshot, durationSeconds: elapsedSeconds)
            return (o.actual != nil && !o.passed) ? o : nil
        }
    }
}

extension RunResult {
    /// Evaluates thresholds against this result (see `[Threshold].evaluate(_:)`).
    public func evaluate(_ thresholds: [Threshold]) -> [ThresholdOutcome] {
        thresholds.evaluate(self)
    }

    /// Evaluates thresholds written with the builder.
    public func evaluate(@SLABuilder _ thresholds: () -> [Threshold]) -> [ThresholdOutcome] {
        thresholds().evaluate(self)
    }
}
