import LoadKitTransport
import LoadKitProtocols

/// Builds a list of thresholds from a closure of `SLA.…` calls (supports `if`, `for`, arrays).
@resultBuilder
public enum SLABuilder {
    public static func buildExpression(_ t: Threshold) -> [Threshold] { [t] }
    public static func buildExpression(_ ts: [Threshold]) -> [Threshold] { ts }
    public static func buildBlock(_ parts: [Threshold]...) -> [Threshold] { parts.flatMap { $0 } }
    public static func buildOptional(_ part: [Threshold]?) -> [Threshold] { part ?? [] }
    public static func buildEither(first: [Threshold]) -> [Threshold] { first }
    public static func buildEither(second: [Threshold]) -> [Threshold] { second }
    public static func buildArray(_ parts: [[Threshold]]) -> [Threshold] { parts.flatMap { $0 } }
    public static func buildLimitedAvailability(_ part: [Threshold]) -> [Threshold] { part }
}

/// Constructors and presets for ``Threshold``s that read like the SLA a person would say:
/// `SLA.p95("message_latency", below: .milliseconds(200))`, `SLA.errorRate(below: 0.001)`.
/// Every constructor that names a metric also takes `tag:` to select a tagged share of it, as k6
/// thresholds do: `SLA.p95("http_req_duration", tag: "name:/items/{id}", below: .milliseconds(150))`.
public enum SLA {
    static func micros(_ d: Duration) -> Double {
        let c = d.components
        return Double(c.seconds) * 1_000_000 + Double(c.attoseconds) / 1e12
    }

    /// `metric{tag}` (`http_req_duration{name:/items/{id}}`): the tagged share of a metric, as k6
    /// thresholds select it; `metric` alone when `tag` is nil.
    static func named(_ metric: String, _ tag: String?) -> String {
        guard let tag, !tag.isEmpty else { return metric }
        return BuiltInMetrics.tagged(metric, tag)
    }

    /// Collects thresholds written with the builder.
    public static func all(@SLABuilder _ build: () -> [Threshold]) -> [Threshold] { build() }

    /// Percentile `p` (0…100) of trend `metric` below a duration.
    public static func percentile(_ p: Double, _ metric: String, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        Threshold(metric: named(metric, tag), statistic: .percentile(p), comparison: .below, limit: micros(limit), unit: .duration, abortOnFail: abortOnFail)
    }

    /// Median of trend `metric` below a duration.
    public static func p50(_ metric: String, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        percentile(50, metric, tag: tag, below: limit, abortOnFail: abortOnFail)
    }

    /// 90th percentile of trend `metric` below a duration.
    public static func p90(_ metric: String, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        percentile(90, metric, tag: tag, below: limit, abortOnFail: abortOnFail)
    }

    /// 95th percentile of trend `metric` below a duration.
    public static func p95(_ metric: String, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        percentile(95, metric, tag: tag, below: limit, abortOnFail: abortOnFail)
    }

    /// 99th percentile of trend `metric` below a duration.
    public static func p99(_ metric: String, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        percentile(99, metric, tag: tag, below: limit, abortOnFail: abortOnFail)
    }

    /// Mean of trend `metric` below a duration.
    public static func avg(_ metric: String, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        Threshold(metric: named(metric, tag), statistic: .avg, comparison: .below, limit: micros(limit), unit: .duration, abortOnFail: abortOnFail)
    }

    /// Median of trend `metric` below a duration.
    public static func med(_ metric: String, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        Threshold(metric: named(metric, tag), statistic: .med, comparison: .below, limit: micros(limit), unit: .duration, abortOnFail: abortOnFail)
    }

    /// Largest value of trend `metric` below a duration.
    public static func max(_ metric: String, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        Threshold(metric: named(metric, tag), statistic: .max, comparison: .below, limit: micros(limit), unit: .duration, abortOnFail: abortOnFail)
    }

    /// Smallest value of trend `metric` at least a duration (e.g. a server-side delay really applied).
    public static func min(_ metric: String, tag: String? = nil, atLeast limit: Duration, abortOnFail: Bool = false) -> Threshold {
        Threshold(metric: named(metric, tag), statistic: .min, comparison: .atLeast, limit: micros(limit), unit: .duration, abortOnFail: abortOnFail)
    }

    /// Error rate below `ratio` (0…1): all counted errors ÷ (successful operations + errors), where
    /// successful operations are the counter `operations` (the runner's `user.succeed()` /
    /// `measure`), or `iterations − iterations_failed` when no `operations` were counted.
    /// See ``MetricsSnapshot/errorRate``.
    public static func errorRate(below ratio: Double, abortOnFail: Bool = false) -> Threshold {
        Threshold(metric: Threshold.errorsMetric, statistic: .rate, comparison: .below, limit: ratio, unit: .ratio, abortOnFail: abortOnFail)
    }

    /// Rate `metric` (hits ÷ samples, from `recorder.rate(metric, hit:)`) at least `ratio`.
    public static func rate(_ metric: String, tag: String? = nil, atLeast ratio: Double, abortOnFail: Bool = false) -> Threshold {
        Threshold(metric: named(metric, tag), statistic: .rate, comparison: .atLeast, limit: ratio, unit: .ratio, abortOnFail: abortOnFail)
    }

    /// Rate `metric` below `ratio` (e.g. k6's `http_req_failed`).
    public static func rate(_ metric: String, tag: String? = nil, below ratio: Double, abortOnFail: Bool = false) -> Threshold {
        Threshold(metric: named(metric, tag), statistic: .rate, comparison: .below, limit: ratio, unit: .ratio, abortOnFail: abortOnFail)
    }

    /// Counter `metric`'s total at least `n`.
    public static func count(_ metric: String, tag: String? = nil, atLeast n: Int64, abortOnFail: Bool = false) -> Threshold {
        Threshold(metric: named(metric, tag), statistic: .count, comparison: .atLeast, limit: Double(n), unit: .plain, abortOnFail: abortOnFail)
    }

    /// Counter `metric`'s total at most `n` (e.g. `reconnects`).
    public static func count(_ metric: String, tag: String? = nil, atMost n: Int64, abortOnFail: Bool = false) -> Threshold {
        Threshold(metric: named(metric, tag), statistic: .count, comparison: .atMost, limit: Double(n), unit: .plain, abortOnFail: abortOnFail)
    }

    /// Counter `metric` per second of run time at least `perSecond` (throughput).
    public static func throughput(_ metric: String, tag: String? = nil, atLeast perSecond: Double, abortOnFail: Bool = false) -> Threshold {
        Threshold(metric: named(metric, tag), statistic: .perSecond, comparison: .atLeast, limit: perSecond, unit: .perSecond, abortOnFail: abortOnFail)
    }

    /// Name of the rate the runner records for held connections: one sample per target
    /// connection at the end of a hold stage, a hit when it stayed open through it.
    public static let connectionsHeldMetric = RunnerMetrics.connectionsHeld

    /// Share of target connections held open through the hold stage at least `ratio`
    /// (rate ``connectionsHeldMetric``, recorded by the runner).
    public static func connectionsHeld(atLeast ratio: Double, abortOnFail: Bool = false) -> Threshold {
        rate(connectionsHeldMetric, atLeast: ratio, abortOnFail: abortOnFail)
    }

    // MARK: Presets

    /// Seed 003 Concert (k6): `http_req_duration` p95 < `p95`, `http_req_failed` < `failed`.
    public static func http(p95 limit: Duration = .milliseconds(500), failedBelow failed: Double = 0.01) -> [Threshold] {
        [p95(BuiltInMetrics.httpReqDuration, below: limit), rate(BuiltInMetrics.httpReqFailed, below: failed)]
    }

    /// Strict / default / relaxed latency-and-errors presets for any trend (p95 and p99 limits,
    /// error rate): 100/250 ms & 0.1 %, 200/500 ms & 0.1 %, 500/1000 ms & 1 %.
    public static func preset(_ level: Level, metric: String) -> [Threshold] {
        switch level {
        case .strict: return [p95(metric, below: .milliseconds(100)), p99(metric, below: .milliseconds(250)), errorRate(below: 0.001)]
        case .default: return [p95(metric, below: .milliseconds(200)), p99(metric, below: .milliseconds(500)), errorRate(below: 0.001)]
        case .relaxed: return [p95(metric, below: .milliseconds(500)), p99(metric, below: .seconds(1)), errorRate(below: 0.01)]
        }
    }

    /// Preset strictness.
    public enum Level: String, Sendable, Codable, CaseIterable {
        case strict, `default`, relaxed
    }
}
