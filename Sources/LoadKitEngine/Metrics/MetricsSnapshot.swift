import LoadKitTransport
import LoadKitProtocols

/// The pass/fail tally behind a rate metric (error rate, success rate, cache-hit rate).
public struct RateTally: Sendable, Codable, Equatable, CustomStringConvertible {
    /// Samples that counted as "true" (a hit, a success, a failure — per the rate's meaning).
    public var hits: Int64 = 0
    /// All samples.
    public var total: Int64 = 0
    /// `hits / total` (0 when no samples).
    public var value: Double { total == 0 ? 0 : Double(hits) / Double(total) }
    /// Creates a tally.
    public init(hits: Int64 = 0, total: Int64 = 0) { self.hits = hits; self.total = total }
    /// `50 % (7,070 of 14,140)`, as the summaries print a rate.
    public var description: String {
        total == 0 ? "no samples" : "\(Fmt.percent(value)) (\(Fmt.int(hits)) of \(Fmt.int(total)))"
    }
}

/// All errors of one kind (`refused`, `http_503`, `ws_close_1006`, `stomp_error`, …).
public struct ErrorTally: Sendable, Codable, Equatable {
    /// Which side caused these errors.
    public var source: FailureSource
    /// How many occurred.
    public var count: Int64
    /// The first few messages, with the step they happened in, for the report.
    public var examples: [String]
    /// Creates a tally.
    public init(source: FailureSource, count: Int64 = 0, examples: [String] = []) {
        self.source = source; self.count = count; self.examples = examples
    }
}

/// Everything measured in a run (or a shard, or one virtual user): mergeable without loss.
///
/// Conventions: `trends` hold durations in **microseconds** (or plain values when a metric is
/// not a duration); `counters` are monotonic totals; `gauges` are last-known values; `series`
/// are per-second counts aligned to `startedAtMillis`.
public struct MetricsSnapshot: Sendable, Codable, Equatable {
    /// Distributions by metric name (`message_latency`, `websocket_connect`, `http_req_duration`).
    public var trends: [String: Histogram] = [:]
    /// Totals by metric name (`messages_sent`, `messages_received`, `http_reqs`).
    public var counters: [String: Int64] = [:]
    /// Last values by name (`active_connections`).
    public var gauges: [String: Double] = [:]
    /// Rates by name (`http_req_failed`, `cache_hit`).
    public var rates: [String: RateTally] = [:]
    /// Errors by kind.
    public var errors: [String: ErrorTally] = [:]
    /// Per-second counts by name, index 0 = the run's first second.
    public var series: [String: [Int64]] = [:]
    /// Per-second distributions of each trend (same origin as `series`): per-second percentiles.
    public var trendSeries: [String: TrendSeries] = [:]
    /// Per-second error counts by kind (same origin as `series`; the source is in `errors`).
    public var errorSeries: [String: [Int64]] = [:]

    /// Creates an empty snapshot.
    public init() {}

    private enum CodingKeys: String, CodingKey {
        case trends, counters, gauges, rates, errors, series, trendSeries, errorSeries
    }

    /// Decodes a snapshot; results written before per-second trends and error kinds existed
    /// decode with those empty.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        trends = try c.decode([String: Histogram].self, forKey: .trends)
        counters = try c.decode([String: Int64].self, forKey: .counters)
        gauges = try c.decode([String: Double].self, forKey: .gauges)
        rates = try c.decode([String: RateTally].self, forKey: .rates)
        errors = try c.decode([String: ErrorTally].self, forKey: .errors)
        series = try c.decode([String: [Int64]].self, forKey: .series)
        trendSeries = try c.decodeIfPresent([String: TrendSeries].self, forKey: .trendSeries) ?? [:]
        errorSeries = try c.decodeIfPresent([String: [Int64]].self, forKey: .errorSeries) ?? [:]
    }
}
