import LoadKitTransport
import LoadKitProtocols

/// The SLA functions over declared metrics (``Metric``): each takes only the kind it can judge, so
/// `SLA.p95(.httpReqs, …)` (a percentile of a counter) does not compile. They build the same
/// ``Threshold`` as the string-named functions.
extension SLA {
    /// P-th percentile of a trend below `limit`.
    public static func percentile(_ p: Double, _ metric: TrendMetric, tag: String? = nil, below limit: Duration,
                                  abortOnFail: Bool = false) -> Threshold {
        percentile(p, metric.name, tag: tag, below: limit, abortOnFail: abortOnFail)
    }
    /// Median of a trend below `limit`.
    public static func p50(_ metric: TrendMetric, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        p50(metric.name, tag: tag, below: limit, abortOnFail: abortOnFail)
    }
    /// P90 of a trend below `limit`.
    public static func p90(_ metric: TrendMetric, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        p90(metric.name, tag: tag, below: limit, abortOnFail: abortOnFail)
    }
    /// P95 of a trend below `limit`.
    public static func p95(_ metric: TrendMetric, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        p95(metric.name, tag: tag, below: limit, abortOnFail: abortOnFail)
    }
    /// P99 of a trend below `limit`.
    public static func p99(_ metric: TrendMetric, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        p99(metric.name, tag: tag, below: limit, abortOnFail: abortOnFail)
    }
    /// Average of a trend below `limit`.
    public static func avg(_ metric: TrendMetric, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        avg(metric.name, tag: tag, below: limit, abortOnFail: abortOnFail)
    }
    /// Maximum of a trend below `limit`.
    public static func max(_ metric: TrendMetric, tag: String? = nil, below limit: Duration, abortOnFail: Bool = false) -> Threshold {
        max(metric.name, tag: tag, below: limit, abortOnFail: abortOnFail)
    }
    /// A rate at least `ratio` (0…1).
    public static func rate(_ metric: RateMetric, tag: String? = nil, atLeast ratio: Double, abortOnFail: Bool = false) -> Threshold {
        rate(metric.name, tag: tag, atLeast: ratio, abortOnFail: abortOnFail)
    }
    /// A rate below `ratio` (0…1).
    public static func rate(_ metric: RateMetric, tag: String? = nil, below ratio: Double, abortOnFail: Bool = false) -> Threshold {
        rate(metric.name, tag: tag, below: ratio, abortOnFail: abortOnFail)
    }
    /// A counter's total at least `n`.
    public static func count(_ metric: CounterMetric, tag: String? = nil, atLeast n: Int64, abortOnFail: Bool = false) -> Threshold {
        count(metric.name, tag: tag, atLeast: n, abortOnFail: abortOnFail)
    }
    /// A counter's total at most `n`.
    public static func count(_ metric: CounterMetric, tag: String? = nil, atMost n: Int64, abortOnFail: Bool = false) -> Threshold {
        count(metric.name, tag: tag, atMost: n, abortOnFail: abortOnFail)
    }
    /// A counter's average per second at least `perSecond`.
    public static func throughput(_ metric: CounterMetric, tag: String? = nil, atLeast perSecond: Double,
                                  abortOnFail: Bool = false) -> Threshold {
        throughput(metric.name, tag: tag, atLeast: perSecond, abortOnFail: abortOnFail)
    }
}
