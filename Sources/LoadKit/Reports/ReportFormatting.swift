import Foundation

/// The usual statistics of one trend, in milliseconds (trends hold microseconds).
public struct TrendSummary: Sendable, Hashable, Codable {
    /// Samples.
    public var count: Int64
    /// Mean, ms.
    public var avg: Double
    /// Smallest, ms.
    public var min: Double
    /// Largest, ms.
    public var max: Double
    /// Median, ms.
    public var med: Double
    /// 90th percentile, ms.
    public var p90: Double
    /// 95th percentile, ms.
    public var p95: Double
    /// 99th percentile, ms.
    public var p99: Double

    /// Summarizes a histogram of microseconds.
    public init(_ h: Histogram) {
        count = h.count
        avg = h.mean / 1000
        min = Double(h.min) / 1000
        max = Double(h.max) / 1000
        med = Double(h.median) / 1000
        p90 = Double(h.value(atPercentile: 90)) / 1000
        p95 = Double(h.value(atPercentile: 95)) / 1000
        p99 = Double(h.value(atPercentile: 99)) / 1000
    }
}

enum Fmt {
    /// Fixed decimals, "." separator, no grouping.
    static func num(_ v: Double, _ decimals: Int = 2) -> String {
        guard v.isFinite else { return "0" }
        return String(format: "%.\(decimals)f", v)
    }

    /// 3 significant-ish decimals trimmed ("12", "12.5", "0.123").
    static func short(_ v: Double) -> String { Threshold.trim(v) }

    /// A duration in ms shown like k6 (`812.5µs`, `45.23ms`, `1.23s`).
    static func k6Duration(_ ms: Double) -> String {
        if ms < 1 { return num(ms * 1000, 2) + "µs" }
        if ms < 1000 { return num(ms, 2) + "ms" }
        if ms < 60_000 { return num(ms / 1000, 2) + "s" }
        return num(ms / 60_000, 2) + "m"
    }

    /// Seconds as `45.234s` or `12m03.5s`.
    static func duration(_ s: Double) -> String {
        if s < 60 { return num(s, 3) + "s" }
        let m = Int(s / 60)
        return "\(m)m" + String(format: "%04.1f", s - Double(m * 60)) + "s"
    }

    static func bytes(_ b: Int64) -> String {
        let mb = Double(b) / 1_048_576
        return mb >= 1024 ? num(mb / 1024, 2) + " GB" : num(mb, 1) + " MB"
    }
}

extension RunResult {
    /// Planned users, or the peak active users when nothing was planned.
    var workers: Int { plannedPeakUsers > 0 ? plannedPeakUsers : peakActiveUsers }

    /// successful operations ÷ (successful operations + errors), 0…1; nil when both are zero.
    public var successRate: Double? { metrics.errorRate.map { 1 - $0 } }
}
