/// The verdict of one ``Threshold`` on one run.
public struct ThresholdOutcome: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The threshold evaluated (for the no-work outcome: metric `run`, statistic `count`).
    public var threshold: Threshold
    /// The measured value in the threshold's unit; nil when the metric had no data.
    public var actual: Double?
    /// Whether the threshold held.
    public var passed: Bool
    /// Human sentence: `message_latency p(95) = 412.3 ms, limit < 200 ms`.
    public var message: String

    /// The metric's name.
    public var metric: String { threshold.metric }
    /// The statistic's k6-style name (`p(95)`).
    public var statistic: String { threshold.statistic.description }
    /// The limit in the threshold's unit.
    public var limit: Double { threshold.limit }

    /// Creates an outcome.
    public init(threshold: Threshold, actual: Double?, passed: Bool, message: String) {
        self.threshold = threshold; self.actual = actual; self.passed = passed; self.message = message
    }

    public var description: String { (passed ? "✓ " : "✗ ") + message }

    /// The outcome that fails a run that did no work.
    public static let noWork = ThresholdOutcome(
        threshold: Threshold(metric: "run", statistic: .count, comparison: .atLeast, limit: 1),
        actual: 0, passed: false,
        message: "no work was done: no samples were recorded and no operations were counted")
}

extension MetricsSnapshot {
    /// Counters the runner keeps for its own bookkeeping; they do not count as work done.
    public static let bookkeepingCounters: Set<String> = [
        "connections_held_target", "errors_after_cancel", "ticks_missed", "iterations_dropped",
        "iterations_late", "iterations_failed",
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
        return Swift.max(0, it - (counters["iterations_failed"] ?? 0))
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

    /// Evaluates this threshold against a snapshot. Missing data fails (`no samples`).
    public func evaluate(_ m: MetricsSnapshot, durationSeconds: Double) -> ThresholdOutcome {
        let head = "\(metric) \(statistic)"
        let limitText = "limit \(comparison.rawValue) \(Threshold.format(limit, unit))"
        guard let actual = actualValue(in: m, durationSeconds: durationSeconds) else {
            return ThresholdOutcome(threshold: self, actual: nil, passed: false,
                                    message: "\(head): no samples, \(limitText)")
        }
        let passed = comparison.holds(actual, limit)
        return ThresholdOutcome(threshold: self, actual: actual, passed: passed,
                                message: "\(head) = \(Threshold.format(actual, unit)), \(limitText)")
    }

    /// Evaluates this threshold against a run's result.
    public func evaluate(_ result: RunResult) -> ThresholdOutcome {
        evaluate(result.metrics, durationSeconds: result.durationSeconds)
    }
}

extension Array where Element == Threshold {
    /// Evaluates every threshold; a run that did no work gets one extra failing outcome
    /// (``ThresholdOutcome/noWork``) first, whatever the thresholds say.
    public func evaluate(_ result: RunResult) -> [ThresholdOutcome] {
        var out: [ThresholdOutcome] = []
        if !result.metrics.didWork { out.append(.noWork) }
        out += map { $0.evaluate(result) }
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
