import LoadKitTransport
import LoadKitProtocols

/// Which number of a metric a ``Threshold`` looks at.
///
/// Codable as the k6-style string: `p(95)`, `avg`, `min`, `max`, `med`, `count`, `rate`,
/// `per_second`.
public enum Statistic: Sendable, Hashable, Codable, CustomStringConvertible {
    /// A percentile (0…100) of a trend.
    case percentile(Double)
    /// Mean of a trend.
    case avg
    /// Smallest value of a trend.
    case min
    /// Largest value of a trend.
    case max
    /// Median of a trend.
    case med
    /// A counter's total (or, for a metric that is only a trend or a rate, its sample count).
    case count
    /// A rate's `hits / total` (for the metric ``Threshold/errorsMetric``: the error rate).
    case rate
    /// A counter's total divided by the run's duration in seconds.
    case perSecond

    /// The k6-style name (`p(95)`, `avg`, …).
    public var description: String {
        switch self {
        case .percentile(let p): return "p(\(Self.format(p)))"
        case .avg: return "avg"
        case .min: return "min"
        case .max: return "max"
        case .med: return "med"
        case .count: return "count"
        case .rate: return "rate"
        case .perSecond: return "per_second"
        }
    }

    static func format(_ p: Double) -> String {
        p == p.rounded() ? String(Int(p)) : String(p)
    }

    /// Parses a k6-style name; nil when unknown.
    public init?(parsing text: String) {
        switch text {
        case "avg": self = .avg
        case "min": self = .min
        case "max": self = .max
        case "med": self = .med
        case "count": self = .count
        case "rate": self = .rate
        case "per_second", "rate_per_second": self = .perSecond
        default:
            guard text.hasPrefix("p("), text.hasSuffix(")"),
                  let p = Double(text.dropFirst(2).dropLast()), p >= 0, p <= 100 else { return nil }
            self = .percentile(p)
        }
    }

    /// Whether this statistic reads a trend (a distribution).
    public var readsTrend: Bool {
        switch self {
        case .percentile, .avg, .min, .max, .med: return true
        default: return false
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let v = Statistic(parsing: s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "unknown statistic '\(s)'")
        }
        self = v
    }
}

/// How the actual value must compare to the limit.
public enum Comparison: String, Sendable, Hashable, Codable {
    /// actual < limit
    case below = "<"
    /// actual ≤ limit
    case atMost = "<="
    /// actual > limit
    case above = ">"
    /// actual ≥ limit
    case atLeast = ">="

    /// Whether `actual` satisfies the comparison with `limit`.
    public func holds(_ actual: Double, _ limit: Double) -> Bool {
        switch self {
        case .below: return actual < limit
        case .atMost: return actual <= limit
        case .above: return actual > limit
        case .atLeast: return actual >= limit
        }
    }
}

/// How a threshold's values are shown (and what unit `limit` is in).
public enum ThresholdUnit: String, Sendable, Hashable, Codable {
    /// Microseconds (trends' convention), shown in ms.
    case duration
    /// A ratio 0…1, shown in percent.
    case ratio
    /// A plain number.
    case plain
    /// Per second.
    case perSecond = "per_second"
}

/// One SLA condition as data: "`metric` `statistic` `comparison` `limit`", for example
/// `message_latency p(95) < 200000 µs`. Codable, so an SLA can be printed, stored, merged across
/// shards and compared with last night's run (in the spirit of package-benchmark's thresholds).
public struct Threshold: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The pseudo-metric whose `rate` is the error rate: errors ÷ (successful operations + errors),
    /// where errors are all counted errors (``MetricsSnapshot/errors``) and successful operations
    /// are the counter ``operationsCounter`` (falling back to ``iterationsCounter`` when absent).
    public static let errorsMetric = "errors"
    /// Counter of successful operations the runner maintains (one per successful request,
    /// round trip or connect — whatever the scenario's unit of work is).
    public static let operationsCounter = "operations"
    /// Counter of completed iterations the runner maintains (fallback denominator).
    public static let iterationsCounter = "iterations"

    /// The metric's name (`message_latency`, `http_req_failed`, `errors`, …).
    public var metric: String
    /// What is measured of it.
    public var statistic: Statistic
    /// How actual must compare with `limit`.
    public var comparison: Comparison
    /// The limit, in ``unit`` (durations in microseconds, ratios 0…1).
    public var limit: Double
    /// How values are shown.
    public var unit: ThresholdUnit
    /// Whether a breach during the run should stop it early.
    public var abortOnFail: Bool
    /// For a relative threshold (``SLA/p95(_:noWorseThan:by:)``): what the value is compared
    /// with and by how much it may be worse; `limit` is then unused. Nil for an absolute one.
    public var relative: RelativeLimit?

    /// Creates a threshold.
    public init(metric: String, statistic: Statistic, comparison: Comparison, limit: Double,
                unit: ThresholdUnit = .plain, abortOnFail: Bool = false) {
        self.metric = metric; self.statistic = statistic; self.comparison = comparison
        self.limit = limit; self.unit = unit; self.abortOnFail = abortOnFail
    }

    /// This threshold with ``abortOnFail`` set.
    public func abortingOnFail(_ abort: Bool = true) -> Threshold {
        var t = self
        t.abortOnFail = abort
        return t
    }

    /// k6-style expression, e.g. `message_latency p(95) < 200 ms`.
    public var description: String { "\(metric) \(statistic) \(comparison.rawValue) \(limitText)" }

    /// The limit as written: `200 ms`, or `baseline + 10 %` for a relative threshold.
    public var limitText: String { relative.map { $0.text(comparison) } ?? Threshold.format(limit, unit) }

    /// Formats a value in a unit for messages (`412.3 ms`, `0.52 %`, `1234`, `56.7/s`).
    public static func format(_ v: Double, _ unit: ThresholdUnit) -> String {
        switch unit {
        case .duration:
            // 412.3 ms / 95.04 ms / 1.234 ms: about four significant digits.
            let ms = v / 1000
            let digits = Swift.abs(ms) >= 100 ? 1 : (Swift.abs(ms) >= 1 ? 2 : 3)
            return "\(trim(ms, decimals: digits)) ms"
        case .ratio: return "\(trim(v * 100)) %"
        case .plain: return trim(v)
        case .perSecond: return "\(trim(v))/s"
        }
    }

    /// Up to 3 decimals, trailing zeros removed.
    static func trim(_ v: Double, decimals: Int = 3) -> String {
        guard v.isFinite else { return String(v) }
        var p = 1.0
        for _ in 0..<decimals { p *= 10 }
        var s = String(format3: (v * p).rounded() / p)
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s
    }
}

extension String {
    /// `String(format: "%.3f", v)` without Foundation.
    init(format3 v: Double) {
        let scaled = (abs(v) * 1000).rounded()
        guard scaled < 9e15 else { self = String(v); return }
        let n = Int64(scaled)
        let frac = n % 1000
        let fs = String(frac)
        self = (v < 0 && n != 0 ? "-" : "") + String(n / 1000) + "." + String(repeating: "0", count: 3 - fs.count) + fs
    }
}
