#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LoadKitTransport
import LoadKitProtocols

/// A log-linear bucketed histogram in the spirit of HdrHistogram: fixed memory, at least three
/// significant digits at any magnitude, mergeable by adding counts, Codable so shard results merge
/// exactly. Values are integers in the caller's unit (LoadKit records durations in microseconds).
///
/// Layout (as in HdrHistogram): values below `subBucketCount` (2048 for 3 digits) are counted
/// exactly; above that, every power-of-two range is split into `subBucketCount / 2` equal
/// sub-buckets, so a bucket's width is at most 1/1024 of its lower bound (≤ 0.1 % error).
/// The counts live in one flat `[Int64]` that grows, a power-of-two range at a time, only as far
/// as the largest value recorded (an unused histogram costs a few words; latencies up to 10 ms
/// in µs ≈ 40 KB); with the default range (1 µs … 1 h in µs) a full one holds 23,552 counters
/// (184 KB), which is why recorders are shared per event loop / stripe rather than per virtual
/// user. Growing on demand matters at a run's start, when every trend of every stripe allocates
/// at once: page-faulting 184 KB each stalled the event loop for milliseconds.
/// `min`, `max`, `count` and the sum (hence `mean`) are exact; percentiles and `stdDev` come
/// from the buckets.
public struct Histogram: Sendable, Codable, Equatable {
    /// Largest value that can be recorded exactly; larger values are clamped (and counted).
    public let highestTrackableValue: Int64
    /// Significant decimal digits kept (3 means ≤ 0.1 % relative error).
    public let significantDigits: Int
    /// Number of recorded values.
    public private(set) var count: Int64 = 0
    /// Number of recorded values that were above `highestTrackableValue` and were clamped to it.
    public private(set) var clampedCount: Int64 = 0
    /// Exact sum of recorded (clamped) values.
    public private(set) var sum: Int64 = 0

    // Derived layout constants.
    private let subBucketHalfCountMagnitude: Int
    private let subBucketCount: Int64
    private let subBucketMask: Int64
    private let leadingZeroCountBase: Int
    private let countsLength: Int

    // Flat counts, grown on demand to cover the largest index recorded (a multiple of a half
    // bucket, at most `countsLength`); indices beyond `counts.count` hold 0.
    private var counts: [Int64] = []
    private var minValue: Int64 = .max
    private var maxValue: Int64 = 0

    /// Creates an empty histogram for values in 0...`highestTrackableValue`.
    /// `significantDigits` is clamped to 1...5; `highestTrackableValue` to at least 2.
    public init(highestTrackableValue: Int64 = 3_600_000_000, significantDigits: Int = 3) {
        let digits = Swift.min(5, Swift.max(1, significantDigits))
        let highest = Swift.max(2, highestTrackableValue)
        self.highestTrackableValue = highest
        self.significantDigits = digits
        var pow10: Int64 = 1
        for _ in 0..<digits { pow10 *= 10 }
        let largestSingleUnitResolution = 2 * pow10
        // ceil(log2(largestSingleUnitResolution))
        let subBucketCountMagnitude = 64 - (largestSingleUnitResolution - 1).leadingZeroBitCount
        let halfMagnitude = Swift.max(subBucketCountMagnitude, 1) - 1
        let subCount = Int64(1) << (halfMagnitude + 1)
        self.subBucketHalfCountMagnitude = halfMagnitude
        self.subBucketCount = subCount
        self.subBucketMask = subCount - 1
        self.leadingZeroCountBase = 64 - halfMagnitude - 1
        // Buckets needed to cover `highest`.
        var smallestUntrackable = subCount
        var bucketsNeeded = 1
        while smallestUntrackable <= highest {
            if smallestUntrackable > Int64.max / 2 { bucketsNeeded += 1; break }
            smallestUntrackable <<= 1
            bucketsNeeded += 1
        }
        self.countsLength = (bucketsNeeded + 1) * Int(subCount / 2)
    }

    // MARK: Recording

    @inline(__always)
    private func countsIndex(for value: Int64) -> Int {
        let bucketIndex = leadingZeroCountBase - (value | subBucketMask).leadingZeroBitCount
        let subBucketIndex = Int(truncatingIfNeeded: value >> bucketIndex)
        return ((bucketIndex + 1) << subBucketHalfCountMagnitude) + subBucketIndex - Int(subBucketCount >> 1)
    }

    /// Records one value (negative values are recorded as 0, too-large ones are clamped).
    @inline(__always)
    public mutating func record(_ value: Int64) {
        var v = value < 0 ? 0 : value
        if _slowPath(v > highestTrackableValue) { v = highestTrackableValue; clampedCount &+= 1 }
        let i = countsIndex(for: v)
        if _slowPath(i >= counts.count) { grow(toInclude: i) }
        counts[i] &+= 1
        count &+= 1
        sum &+= v
        if v < minValue { minValue = v }
        if v > maxValue { maxValue = v }
    }

    /// Records `value` `n` times (n ≥ 1; smaller `n` is ignored).
    public mutating func record(_ value: Int64, count n: Int64) {
        guard n > 0 else { return }
        var v = value < 0 ? 0 : value
        if v > highestTrackableValue { v = highestTrackableValue; clampedCount &+= n }
        let i = countsIndex(for: v)
        if i >= counts.count { grow(toInclude: i) }
        counts[i] &+= n
        count &+= n
        sum &+= v &* n
        if v < minValue { minValue = v }
        if v > maxValue { maxValue = v }
    }

    /// Records `value` and, for coordinated omission, the values a stalled sender would have
    /// measured had it kept sending every `expectedInterval`: `value - k·interval` for k = 1, 2, …
    /// while that stays ≥ `expectedInterval` (HdrHistogram's `recordCorrectedValue`).
    /// Do not use this when latency is already timed from the scheduled start (open model).
    public mutating func recordCorrected(_ value: Int64, expectedInterval: Int64) {
        record(value)
        guard expectedInterval > 0, value > expectedInterval else { return }
        var missing = value - expectedInterval
        while missing >= expectedInterval {
            record(missing)
            missing -= expectedInterval
        }
    }

    /// Adds every count of `other` into this histogram. Exact when both have the same
    /// configuration; otherwise each bucket of `other` is re-recorded at its median value.
    public mutating func merge(_ other: Histogram) {
        guard other.count > 0 else { return }
        if other.highestTrackableValue == highestTrackableValue && other.significantDigits == significantDigits {
            if other.counts.count > counts.count { grow(toInclude: other.counts.count - 1) }
            other.counts.withUnsafeBufferPointer { src in
                counts.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<src.count where src[i] != 0 { dst[i] &+= src[i] }
                }
            }
            count &+= other.count
            sum &+= other.sum
            clampedCount &+= other.clampedCount
            if other.minValue < minValue { minValue = other.minValue }
            if other.maxValue > maxValue { maxValue = other.maxValue }
        } else {
            let savedSum = sum, savedMin = minValue, savedMax = maxValue
            for (i, c) in other.counts.enumerated() where c != 0 {
                record(other.medianEquivalentValue(atIndex: i), count: c)
            }
            // Keep exact aggregates where they are known.
            sum = savedSum &+ other.sum
            minValue = Swift.min(savedMin, other.minValue)
            maxValue = Swift.max(savedMax, Swift.min(other.maxValue, highestTrackableValue))
        }
    }

    /// Returns a histogram holding every value of both.
    public func merging(_ other: Histogram) -> Histogram {
        var h = self
        h.merge(other)
        return h
    }

    /// Extends `counts` with zeros to the end of the half bucket holding `index`.
    @inline(never)
    private mutating func grow(toInclude index: Int) {
        Self.grow(&counts, toInclude: index, step: Int(subBucketCount >> 1), limit: countsLength)
    }

    // Zero-filled in one go: appending `repeatElement(0, …)` ran an element at a time through
    // unspecialised generic code in a debug build — 9.5 ms on a user's loop to reach the full
    // range, during which no other user on that loop was served (and timed as the server's).
    private static func grow(_ counts: inout [Int64], toInclude index: Int, step: Int, limit: Int) {
        let target = Swift.min(limit, (index / step + 1) * step)
        let old = counts.count
        guard target > old else { return }
        counts = [Int64](unsafeUninitializedCapacity: target) { buffer, initialized in
            let base = buffer.baseAddress!
            counts.withUnsafeBufferPointer { src in
                if let s = src.baseAddress { base.initialize(from: s, count: old) }
            }
            memset(base + old, 0, (target - old) * MemoryLayout<Int64>.stride)
            initialized = target
        }
    }

    /// Bytes the counts take once every value up to `highestTrackableValue` has been recorded.
    var footprintBytesWhenFull: Int { countsLength * MemoryLayout<Int64>.stride }

    /// Removes every recorded value (keeps the storage).
    public mutating func reset() {
        for i in counts.indices { counts[i] = 0 }
        count = 0; sum = 0; clampedCount = 0; minValue = .max; maxValue = 0
    }

    // MARK: Bucket geometry

    private func valueFromIndex(_ index: Int) -> (lowest: Int64, width: Int64) {
        var bucketIndex = (index >> subBucketHalfCountMagnitude) - 1
        var subBucketIndex = Int64(index & ((1 << subBucketHalfCountMagnitude) - 1)) + (subBucketCount >> 1)
        if bucketIndex < 0 {
            subBucketIndex -= subBucketCount >> 1
            bucketIndex = 0
        }
        return (subBucketIndex << bucketIndex, Int64(1) << bucketIndex)
    }

    private func highestEquivalentValue(atIndex i: Int) -> Int64 {
        let (lowest, width) = valueFromIndex(i)
        return lowest + width - 1
    }

    private func medianEquivalentValue(atIndex i: Int) -> Int64 {
        let (lowest, width) = valueFromIndex(i)
        return lowest + width / 2
    }

    // MARK: Statistics

    /// The value at percentile `p` (0...100): the smallest recorded value such that at least
    /// `p` % of values are ≤ it (nearest rank), reported as the highest value equivalent to its
    /// bucket and clamped to the exact `min`/`max`. 0 when empty.
    public func value(atPercentile p: Double) -> Int64 {
        guard count > 0 else { return 0 }
        let q = Swift.min(100, Swift.max(0, p.isNaN ? 0 : p))
        if q >= 100 { return max }
        var rank = Int64((q / 100 * Double(count)).rounded(.up))
        // Guard against floating error turning an exact rank (e.g. 95 % of 1000) into rank+1.
        let exact = q / 100 * Double(count)
        if Double(rank) - exact > 0.999_999 { rank -= 1 }
        rank = Swift.max(1, Swift.min(count, rank))
        var running: Int64 = 0
        for i in 0..<counts.count where counts[i] != 0 {
            running &+= counts[i]
            if running >= rank {
                return Swift.max(min, Swift.min(max, highestEquivalentValue(atIndex: i)))
            }
        }
        return max
    }

    /// The median (50th percentile).
    public var median: Int64 { value(atPercentile: 50) }

    /// Smallest recorded value (0 when empty).
    public var min: Int64 { count == 0 ? 0 : minValue }
    /// Largest recorded value (0 when empty).
    public var max: Int64 { count == 0 ? 0 : maxValue }
    /// Mean of recorded values (0 when empty); exact (from the exact sum).
    public var mean: Double { count == 0 ? 0 : Double(sum) / Double(count) }

    /// Population standard deviation, from bucket median values (0 when empty).
    public var stdDev: Double {
        guard count > 0 else { return 0 }
        let m = mean
        var acc = 0.0
        for i in 0..<counts.count where counts[i] != 0 {
            let d = Double(medianEquivalentValue(atIndex: i)) - m
            acc += d * d * Double(counts[i])
        }
        return (acc / Double(count)).squareRoot()
    }

    /// Number of recorded values ≤ `value` (bucket resolution), for cumulative exports.
    public func count(atOrBelow value: Int64) -> Int64 {
        guard count > 0, value >= 0 else { return 0 }
        if value >= highestTrackableValue { return count }
        let limit = countsIndex(for: value)
        var running: Int64 = 0
        for i in 0...Swift.min(limit, counts.count - 1) { running &+= counts[i] }
        return running
    }

    /// Memory held by the counts array, in bytes (0 until the first record; grows with the
    /// largest value recorded).
    public var footprintBytes: Int { counts.count * MemoryLayout<Int64>.stride }

    // MARK: Equatable (by content, independent of how far the counts have grown)

    public static func == (a: Histogram, b: Histogram) -> Bool {
        guard a.highestTrackableValue == b.highestTrackableValue, a.significantDigits == b.significantDigits,
              a.count == b.count, a.sum == b.sum, a.clampedCount == b.clampedCount,
              a.min == b.min, a.max == b.max else { return false }
        let common = Swift.min(a.counts.count, b.counts.count)
        return a.counts[..<common] == b.counts[..<common]
            && !a.counts[common...].contains { $0 != 0 } && !b.counts[common...].contains { $0 != 0 }
    }

    // MARK: Codable (compact: sparse run-length of non-zero buckets)

    private enum CodingKeys: String, CodingKey {
        case highest, digits, count, sum, min, max, clamped, buckets
    }

    /// Encodes as `{highest, digits, count, sum, min, max, clamped, buckets}` where `buckets` is a
    /// flat list of `[gap, count, …]` pairs: `gap` = number of zero buckets skipped since the
    /// previous non-zero one. Lossless: decoding gives an equal histogram.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(highestTrackableValue, forKey: .highest)
        try c.encode(significantDigits, forKey: .digits)
        try c.encode(count, forKey: .count)
        try c.encode(sum, forKey: .sum)
        try c.encode(min, forKey: .min)
        try c.encode(max, forKey: .max)
        if clampedCount != 0 { try c.encode(clampedCount, forKey: .clamped) }
        var flat: [Int64] = []
        var gap: Int64 = 0
        for v in counts {
            if v == 0 { gap += 1; continue }
            flat.append(gap); flat.append(v); gap = 0
        }
        try c.encode(flat, forKey: .buckets)
    }

    /// Decodes the compact form written by `encode(to:)`; rejects inconsistent data.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let highest = try c.decode(Int64.self, forKey: .highest)
        let digits = try c.decode(Int.self, forKey: .digits)
        self.init(highestTrackableValue: highest, significantDigits: digits)
        let n = try c.decode(Int64.self, forKey: .count)
        let flat = try c.decodeIfPresent([Int64].self, forKey: .buckets) ?? []
        guard flat.count % 2 == 0 else {
            throw DecodingError.dataCorruptedError(forKey: .buckets, in: c, debugDescription: "odd bucket list")
        }
        if !flat.isEmpty {
            var arr: [Int64] = []
            var pos = -1
            var total: Int64 = 0
            var k = 0
            while k < flat.count {
                let gap = flat[k], v = flat[k + 1]
                guard gap >= 0, v > 0, gap < Int64(countsLength) else {
                    throw DecodingError.dataCorruptedError(forKey: .buckets, in: c, debugDescription: "bad bucket entry")
                }
                pos += Int(gap) + 1
                guard pos < countsLength else {
                    throw DecodingError.dataCorruptedError(forKey: .buckets, in: c, debugDescription: "bucket beyond range")
                }
                if pos >= arr.count { Self.grow(&arr, toInclude: pos, step: Int(subBucketCount >> 1), limit: countsLength) }
                arr[pos] = v
                total &+= v
                k += 2
            }
            guard total == n else {
                throw DecodingError.dataCorruptedError(forKey: .count, in: c, debugDescription: "count does not match buckets")
            }
            counts = arr
        } else if n != 0 {
            throw DecodingError.dataCorruptedError(forKey: .count, in: c, debugDescription: "count without buckets")
        }
        count = n
        sum = try c.decode(Int64.self, forKey: .sum)
        clampedCount = try c.decodeIfPresent(Int64.self, forKey: .clamped) ?? 0
        if n > 0 {
            minValue = try c.decode(Int64.self, forKey: .min)
            maxValue = try c.decode(Int64.self, forKey: .max)
        }
    }
}
