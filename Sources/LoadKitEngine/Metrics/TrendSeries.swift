import LoadKitTransport
import LoadKitProtocols

/// One trend's distribution **per second** of a run, compact enough to keep for every second of a
/// 30-minute (or 7-day) run and mergeable across recorders and shards: the data behind the
/// per-second P50/P95/P99 lines of `report.html` and `timeseries.csv`.
///
/// Each second is a *sparse* log-linear histogram (HdrHistogram's layout with 64 sub-buckets per
/// power of two instead of 1,024): only the buckets that received a sample are stored, as a
/// 2-byte bucket index and a 4-byte count, plus the second's exact count, sum, min and max.
///
/// **Precision.** Values below 128 are exact; above, a bucket spans at most 1/64 of its lower
/// bound. A per-second percentile is reported, like ``Histogram``'s, as the highest value of the
/// bucket holding the nearest-rank sample, clamped to that second's exact min and max, so it is
/// never below the exact percentile of the second's samples and exceeds it by less than 1/64
/// (1.6 %) of it. Values above ``highestTrackableValue`` (2³⁶ − 1 µs ≈ 19 h) are clamped.
///
/// **Memory.** A second costs 36 bytes plus 6 bytes per distinct bucket hit: latencies spread
/// over one decade occupy at most ≈ 215 buckets (≈ 1.3 KB), usually far fewer, so ten trends over
/// 30 minutes stay in the low megabytes whatever the request rate — against 184 KB per second
/// per trend for a full ``Histogram``.
public struct TrendSeries: Sendable, Equatable {
    /// Sub-buckets per power of two: 2^6 = 64 (relative bucket width ≤ 1/64).
    static let subBucketHalfCountMagnitude = 6
    static let subBucketHalfCount = 1 << subBucketHalfCountMagnitude
    static let subBucketCount = Int64(2 << subBucketHalfCountMagnitude)
    static let subBucketMask = subBucketCount - 1
    static let leadingZeroCountBase = 64 - subBucketHalfCountMagnitude - 1
    /// Largest value kept exactly enough; larger values are clamped to it.
    public static let highestTrackableValue: Int64 = (1 << 36) - 1
    /// Number of buckets covering 0…``highestTrackableValue``.
    static let bucketCount: Int = index(for: highestTrackableValue) + 1
    /// Relative precision of a per-second percentile (see the type's documentation).
    public static let relativePrecision = 1.0 / Double(subBucketHalfCount)

    // Per second (all the same length = `seconds`).
    private var counts: [Int64] = []
    private var sums: [Int64] = []
    private var mins: [Int64] = []
    private var maxs: [Int64] = []
    /// Start of each second's buckets in `bucketIndex`/`bucketCounts` (`seconds + 1` entries).
    private var offsets: [Int32] = [0]
    private var bucketIndex: [UInt16] = []
    private var bucketCounts: [UInt32] = []

    /// Creates an empty series.
    public init() {}

    // MARK: Bucket geometry (HdrHistogram's, unit 1)

    @inline(__always)
    static func index(for value: Int64) -> Int {
        let bucket = leadingZeroCountBase - (value | subBucketMask).leadingZeroBitCount
        let sub = Int(truncatingIfNeeded: value >> bucket)
        return ((bucket + 1) << subBucketHalfCountMagnitude) + sub - subBucketHalfCount
    }

    /// Lowest value and width of bucket `index`.
    static func range(of index: Int) -> (lowest: Int64, width: Int64) {
        var bucket = (index >> subBucketHalfCountMagnitude) - 1
        var sub = Int64(index & (subBucketHalfCount - 1)) + Int64(subBucketHalfCount)
        if bucket < 0 {
            sub -= Int64(subBucketHalfCount)
            bucket = 0
        }
        return (sub << bucket, Int64(1) << bucket)
    }

    // MARK: Reading

    /// Number of seconds covered (second 0 … `seconds − 1`); seconds without samples are empty.
    public var seconds: Int { counts.count }

    /// Samples recorded in `second` (0 outside the series).
    public func count(second: Int) -> Int64 { counts.indices.contains(second) ? counts[second] : 0 }

    /// Mean of `second`'s samples, nil when it has none.
    public func mean(second: Int) -> Double? {
        count(second: second) > 0 ? Double(sums[second]) / Double(counts[second]) : nil
    }

    /// Smallest sample of `second`, nil when it has none.
    public func min(second: Int) -> Int64? { count(second: second) > 0 ? mins[second] : nil }

    /// Largest sample of `second`, nil when it has none.
    public func max(second: Int) -> Int64? { count(second: second) > 0 ? maxs[second] : nil }

    /// The value at percentile `p` (0…100) of `second`'s samples (nearest rank, reported as the
    /// highest value of its bucket clamped to the second's min and max); nil when it has none.
    public func value(atPercentile p: Double, second: Int) -> Int64? {
        guard count(second: second) > 0 else { return nil }
        let n = counts[second]
        let q = Swift.min(100, Swift.max(0, p.isNaN ? 0 : p))
        if q >= 100 { return maxs[second] }
        let exact = q / 100 * Double(n)
        var rank = Int64(exact.rounded(.up))
        if Double(rank) - exact > 0.999_999 { rank -= 1 }
        rank = Swift.max(1, Swift.min(n, rank))
        var running: Int64 = 0
        for k in Int(offsets[second])..<Int(offsets[second + 1]) {
            running += Int64(bucketCounts[k])
            if running >= rank {
                let (lo, w) = Self.range(of: Int(bucketIndex[k]))
                return Swift.max(mins[second], Swift.min(maxs[second], lo + w - 1))
            }
        }
        return maxs[second]
    }

    /// `second`'s samples as (bucket lowest value, bucket width, count), ascending.
    public func buckets(second: Int) -> [(lowest: Int64, width: Int64, count: Int64)] {
        guard count(second: second) > 0 else { return [] }
        return (Int(offsets[second])..<Int(offsets[second + 1])).map { k in
            let (lo, w) = Self.range(of: Int(bucketIndex[k]))
            return (lo, w, Int64(bucketCounts[k]))
        }
    }

    /// Bytes held by the arrays (for memory checks).
    public var footprintBytes: Int {
        counts.count * 32 + offsets.count * 4 + bucketIndex.count * 2 + bucketCounts.count * 4
    }

    // MARK: Building

    /// Appends `second` built from dense bucket `dense` counts (only indices `lo...hi` are read
    /// and are zeroed afterwards); seconds skipped since the last one are added empty. A second
    /// at or before the last one is merged into it.
    mutating func append(second: Int, dense: inout [UInt32], lo: Int, hi: Int,
                         count n: Int64, sum: Int64, min: Int64, max: Int64) {
        guard n > 0 else { return }
        var single = TrendSeries()
        single.padTo(second)
        single.counts.append(n); single.sums.append(sum); single.mins.append(min); single.maxs.append(max)
        for i in lo...hi where dense[i] != 0 {
            single.bucketIndex.append(UInt16(i)); single.bucketCounts.append(dense[i]); dense[i] = 0
        }
        single.offsets.append(Int32(single.bucketIndex.count))
        if second >= seconds {
            padTo(second)
            counts.append(n); sums.append(sum); mins.append(min); maxs.append(max)
            bucketIndex.append(contentsOf: single.bucketIndex); bucketCounts.append(contentsOf: single.bucketCounts)
            offsets.append(Int32(bucketIndex.count))
        } else if second == seconds - 1 {
            // The last second again (the common case for `record(_:second:)`): merge its tail in place.
            let last = second
            let start = Int(offsets[last])
            var tail = TrendSeries()
            tail.counts = [counts[last]]; tail.sums = [sums[last]]; tail.mins = [mins[last]]; tail.maxs = [maxs[last]]
            tail.bucketIndex = Array(bucketIndex[start...]); tail.bucketCounts = Array(bucketCounts[start...])
            tail.offsets = [0, Int32(tail.bucketIndex.count)]
            single.counts = [n]; single.sums = [sum]; single.mins = [min]; single.maxs = [max]
            single.offsets = [0, Int32(single.bucketIndex.count)]
            tail.merge(single)
            counts[last] = tail.counts[0]; sums[last] = tail.sums[0]; mins[last] = tail.mins[0]; maxs[last] = tail.maxs[0]
            bucketIndex.replaceSubrange(start..., with: tail.bucketIndex)
            bucketCounts.replaceSubrange(start..., with: tail.bucketCounts)
            offsets[last + 1] = Int32(bucketIndex.count)
        } else {
            merge(single)
        }
    }

    private mutating func padTo(_ second: Int) {
        while counts.count < second {
            counts.append(0); sums.append(0); mins.append(0); maxs.append(0)
            offsets.append(Int32(bucketIndex.count))
        }
    }

    /// Records one value into `second` (tests and tools; recorders build seconds densely).
    public mutating func record(_ value: Int64, second: Int) {
        let v = Swift.min(Swift.max(0, value), Self.highestTrackableValue)
        let i = Self.index(for: v)
        var one = [UInt32](repeating: 0, count: i + 1)
        one[i] = 1
        append(second: second, dense: &one, lo: i, hi: i, count: 1, sum: v, min: v, max: v)
    }

    /// Adds every sample of `other`, second by second (same time origin assumed): exact.
    public mutating func merge(_ other: TrendSeries) {
        guard other.seconds > 0 else { return }
        if seconds == 0 { self = other; return }
        var out = TrendSeries()
        let n = Swift.max(seconds, other.seconds)
        out.counts.reserveCapacity(n)
        out.bucketIndex.reserveCapacity(bucketIndex.count + other.bucketIndex.count)
        out.bucketCounts.reserveCapacity(bucketIndex.count + other.bucketIndex.count)
        for s in 0..<n {
            let a = count(second: s), b = other.count(second: s)
            out.counts.append(a + b)
            out.sums.append((a > 0 ? sums[s] : 0) + (b > 0 ? other.sums[s] : 0))
            out.mins.append(a == 0 ? (b == 0 ? 0 : other.mins[s]) : (b == 0 ? mins[s] : Swift.min(mins[s], other.mins[s])))
            out.maxs.append(a == 0 ? (b == 0 ? 0 : other.maxs[s]) : (b == 0 ? maxs[s] : Swift.max(maxs[s], other.maxs[s])))
            var i = a > 0 ? Int(offsets[s]) : 0
            let iEnd = a > 0 ? Int(offsets[s + 1]) : 0
            var j = b > 0 ? Int(other.offsets[s]) : 0
            let jEnd = b > 0 ? Int(other.offsets[s + 1]) : 0
            while i < iEnd || j < jEnd {
                if j >= jEnd || (i < iEnd && bucketIndex[i] < other.bucketIndex[j]) {
                    out.bucketIndex.append(bucketIndex[i]); out.bucketCounts.append(bucketCounts[i]); i += 1
                } else if i >= iEnd || other.bucketIndex[j] < bucketIndex[i] {
                    out.bucketIndex.append(other.bucketIndex[j]); out.bucketCounts.append(other.bucketCounts[j]); j += 1
                } else {
                    out.bucketIndex.append(bucketIndex[i])
                    out.bucketCounts.append(bucketCounts[i] &+ other.bucketCounts[j])
                    i += 1; j += 1
                }
            }
            out.offsets.append(Int32(out.bucketIndex.count))
        }
        self = out
    }

    /// This series moved `by` seconds later (empty seconds in front), for aligning shards.
    public func shifted(by n: Int) -> TrendSeries {
        guard n > 0, seconds > 0 else { return self }
        var out = TrendSeries()
        out.padTo(n)
        out.counts += counts; out.sums += sums; out.mins += mins; out.maxs += maxs
        out.bucketIndex = bucketIndex; out.bucketCounts = bucketCounts
        out.offsets += offsets.dropFirst()
        return out
    }
}

// MARK: Codable (per second: [count, sum, min, max, gap, count, gap, count, …]; [] when empty)

extension TrendSeries: Codable {
    private enum CodingKeys: String, CodingKey { case precision, seconds }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.subBucketHalfCountMagnitude, forKey: .precision)
        var rows: [[Int64]] = []
        rows.reserveCapacity(seconds)
        for s in 0..<seconds {
            guard counts[s] > 0 else { rows.append([]); continue }
            var row: [Int64] = [counts[s], sums[s], mins[s], maxs[s]]
            var previous = -1
            for k in Int(offsets[s])..<Int(offsets[s + 1]) {
                row.append(Int64(Int(bucketIndex[k]) - previous - 1)); row.append(Int64(bucketCounts[k]))
                previous = Int(bucketIndex[k])
            }
            rows.append(row)
        }
        try c.encode(rows, forKey: .seconds)
    }

    /// Decodes the form written by `encode(to:)`; rejects other precisions and inconsistent data.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let precision = try c.decode(Int.self, forKey: .precision)
        guard precision == Self.subBucketHalfCountMagnitude else {
            throw DecodingError.dataCorruptedError(forKey: .precision, in: c,
                                                   debugDescription: "per-second histograms of precision \(precision) are not supported")
        }
        let rows = try c.decode([[Int64]].self, forKey: .seconds)
        self.init()
        func bad(_ why: String) -> DecodingError {
            DecodingError.dataCorruptedError(forKey: .seconds, in: c, debugDescription: why)
        }
        for row in rows {
            guard !row.isEmpty else {
                counts.append(0); sums.append(0); mins.append(0); maxs.append(0)
                offsets.append(Int32(bucketIndex.count))
                continue
            }
            guard row.count >= 6, row.count % 2 == 0, row[0] > 0 else { throw bad("malformed second") }
            var index = -1
            var total: Int64 = 0
            for k in stride(from: 4, to: row.count, by: 2) {
                let gap = row[k], n = row[k + 1]
                guard gap >= 0, n > 0, n <= Int64(UInt32.max) else { throw bad("bad bucket entry") }
                index += Int(gap) + 1
                guard index < Self.bucketCount else { throw bad("bucket beyond range") }
                bucketIndex.append(UInt16(index)); bucketCounts.append(UInt32(n))
                total += n
            }
            guard total == row[0] else { throw bad("count does not match buckets") }
            counts.append(row[0]); sums.append(row[1]); mins.append(row[2]); maxs.append(row[3])
            offsets.append(Int32(bucketIndex.count))
        }
    }
}

/// One trend's per-second histograms in one recorder: the finished seconds (`series`) and the
/// current one, counted densely (O(1) per sample) and folded into `series` when the second
/// changes or a snapshot is taken.
struct TrendSecondWindow {
    /// The finished seconds.
    var series = TrendSeries()
    var second = -1
    // The current second's span on the monotonic clock: inside it, no division is needed.
    var spanStart: UInt64 = 0, spanEnd: UInt64 = 0
    var dense: [UInt32] = []
    var lo = Int.max, hi = -1
    var count: Int64 = 0, sum: Int64 = 0, min: Int64 = .max, max: Int64 = 0

    /// Records `value` at monotonic time `now` of a run started at `runStart` (the recorder's
    /// hot path: one comparison decides the second, a division only when it changes).
    @inline(__always)
    mutating func record(_ value: Int64, atNanos now: UInt64, runStart: UInt64) {
        if _slowPath(now >= spanEnd || now < spanStart) {
            let s = now > runStart ? Swift.min(Int((now - runStart) / 1_000_000_000), MetricsRecorder.maxSeriesSeconds - 1) : 0
            // A sample stamped just before the current second began (its clock read before
            // another's that was recorded first) stays in the current second: a window only
            // moves forward, so recorders can take instants their callers already read.
            if s < second { add(value); return }
            move(to: s)
            spanStart = runStart &+ UInt64(s) &* 1_000_000_000
            spanEnd = s == MetricsRecorder.maxSeriesSeconds - 1 ? .max : spanStart &+ 1_000_000_000
            if now < spanStart { spanStart = 0 }   // before the run's start: all of it is second 0
        }
        add(value)
    }

    /// Records `value` into second `s` (tests and tools).
    mutating func record(_ value: Int64, second s: Int) {
        move(to: s)
        spanStart = 0; spanEnd = 0
        add(value)
    }

    @inline(__always)
    private mutating func move(to s: Int) {
        if s != second {
            flush()
            second = s
        }
    }

    @inline(__always)
    private mutating func add(_ value: Int64) {
        if _slowPath(dense.isEmpty) { dense = [UInt32](repeating: 0, count: TrendSeries.bucketCount) }
        let v = value < 0 ? 0 : (value > TrendSeries.highestTrackableValue ? TrendSeries.highestTrackableValue : value)
        let i = TrendSeries.index(for: v)
        dense[i] &+= 1
        if i < lo { lo = i }
        if i > hi { hi = i }
        count &+= 1; sum &+= v
        if v < min { min = v }
        if v > max { max = v }
    }

    /// Moves the current second's samples into `series` and empties it.
    mutating func flush() {
        guard count > 0 else { return }
        series.append(second: second, dense: &dense, lo: lo, hi: hi, count: count, sum: sum, min: min, max: max)
        lo = .max; hi = -1; count = 0; sum = 0; min = .max; max = 0
    }

    /// Every second so far, the current one included, leaving the window unchanged.
    var snapshot: TrendSeries {
        guard count > 0 else { return series }
        var s = series, d = dense
        s.append(second: second, dense: &d, lo: lo, hi: hi, count: count, sum: sum, min: min, max: max)
        return s
    }
}
