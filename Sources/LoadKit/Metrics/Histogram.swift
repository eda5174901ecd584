/// A log-linear bucketed histogram in the spirit of HdrHistogram: fixed memory, at least three
/// significant digits at any magnitude, mergeable by adding counts, Codable so shard results merge
/// exactly. Values are integers in the caller's unit (LoadKit records durations in microseconds).
///
/// INTERFACE FILE: the implementation is being written (issue 3); keep the API.
public struct Histogram: Sendable, Codable, Equatable {
    /// Largest value that can be recorded exactly; larger values are clamped (and counted).
    public let highestTrackableValue: Int64
    /// Significant decimal digits kept (3 means ≤ 0.1 % relative error).
    public let significantDigits: Int
    /// Number of recorded values.
    public private(set) var count: Int64 = 0
    // Placeholder storage until the bucketed implementation lands.
    private var values: [Int64] = []

    /// Creates an empty histogram for values in 0...`highestTrackableValue`.
    public init(highestTrackableValue: Int64 = 3_600_000_000, significantDigits: Int = 3) {
        self.highestTrackableValue = highestTrackableValue
        self.significantDigits = significantDigits
    }

    /// Records one value (negative values are recorded as 0, too-large ones are clamped).
    public mutating func record(_ value: Int64) {
        values.append(Swift.min(Swift.max(0, value), highestTrackableValue))
        count += 1
    }

    /// Adds every count of `other` (same configuration) into this histogram.
    public mutating func merge(_ other: Histogram) {
        values += other.values
        count += other.count
    }

    /// The value at percentile `p` (0...100).
    public func value(atPercentile p: Double) -> Int64 {
        guard !values.isEmpty else { return 0 }
        let s = values.sorted()
        let i = Int((p / 100 * Double(s.count)).rounded(.up)) - 1
        return s[Swift.max(0, Swift.min(s.count - 1, i))]
    }

    /// Smallest recorded value (0 when empty).
    public var min: Int64 { values.min() ?? 0 }
    /// Largest recorded value (0 when empty).
    public var max: Int64 { values.max() ?? 0 }
    /// Mean of recorded values (0 when empty).
    public var mean: Double { values.isEmpty ? 0 : Double(values.reduce(0, +)) / Double(values.count) }
}
