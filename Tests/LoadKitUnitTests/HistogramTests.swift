import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport


@Suite struct HistogramTests {
    static func exactPercentile(_ sorted: [Int64], _ p: Double) -> Int64 {
        let rank = max(1, Int((p / 100 * Double(sorted.count)).rounded(.up)))
        return sorted[min(sorted.count - 1, rank - 1)]
    }

    @Test(arguments: [1 as Int64, 2_000, 1_000_000, 3_600_000_000])
    func percentilesMatchExactWithinOneTenthPercent(scale: Int64) {
        var rng = SeededRandom(seed: UInt64(scale))
        var h = Histogram()
        var values: [Int64] = []
        for _ in 0..<100_000 {
            // Log-uniform over 1 … scale·1000 (clamped to the range) to cover many magnitudes.
            let e = Double.random(in: 0...log(Double(min(scale * 1000, 3_600_000_000))), using: &rng)
            let v = max(1, min(3_600_000_000, Int64(exp(e))))
            values.append(v)
            h.record(v)
        }
        values.sort()
        #expect(h.count == 100_000)
        #expect(h.min == values.first)
        #expect(h.max == values.last)
        for p in [0.1, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100] {
            let exact = Self.exactPercentile(values, p)
            let got = h.value(atPercentile: p)
            let rel = abs(Double(got - exact)) / Double(exact)
            #expect(rel <= 0.001, "p\(p): got \(got), exact \(exact), rel \(rel)")
        }
        let exactMean = Double(values.reduce(0, +)) / Double(values.count)
        #expect(abs(h.mean - exactMean) < 1e-6 * exactMean)
    }

    @Test func smallValuesAreExact() {
        var h = Histogram()
        for v in 0..<2048 { h.record(Int64(v)) }
        #expect(h.value(atPercentile: 50) == 1023)
        #expect(h.min == 0 && h.max == 2047)
        #expect(h.count(atOrBelow: 99) == 100)
    }

    @Test func emptyAndClamping() {
        var h = Histogram(highestTrackableValue: 10_000)
        #expect(h.value(atPercentile: 99) == 0 && h.mean == 0 && h.min == 0 && h.max == 0 && h.stdDev == 0)
        h.record(-5)
        h.record(50_000)
        #expect(h.min == 0 && h.max == 10_000 && h.clampedCount == 1 && h.count == 2)
    }

    @Test func stdDevIsCloseToExact() {
        var h = Histogram()
        var rng = SeededRandom(seed: 7)
        var xs: [Double] = []
        for _ in 0..<50_000 { let v = Int64.random(in: 1_000...100_000, using: &rng); h.record(v); xs.append(Double(v)) }
        let m = xs.reduce(0, +) / Double(xs.count)
        let sd = (xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(xs.count)).squareRoot()
        #expect(abs(h.stdDev - sd) / sd < 0.001)
    }

    @Test func mergeEqualsCombined() {
        var rng = SeededRandom(seed: 42)
        var a = Histogram(), b = Histogram(), all = Histogram()
        for i in 0..<20_000 {
            let v = Int64.random(in: 0...5_000_000, using: &rng)
            if i % 3 == 0 { a.record(v) } else { b.record(v) }
            all.record(v)
        }
        var m = a
        m.merge(b)
        #expect(m == all)
        #expect(b.merging(a) == all)
        for p in [50.0, 90, 99, 99.9] { #expect(m.value(atPercentile: p) == all.value(atPercentile: p)) }
        var empty = Histogram()
        empty.merge(Histogram())
        #expect(empty == Histogram())
        empty.merge(a)
        #expect(empty == a)
    }

    @Test func codableRoundTripIsLosslessAndCompact() throws {
        var rng = SeededRandom(seed: 3)
        var h = Histogram()
        for _ in 0..<10_000 { h.record(Int64.random(in: 100...2_000_000, using: &rng)) }
        let data = try JSONEncoder().encode(h)
        let back = try JSONDecoder().decode(Histogram.self, from: data)
        #expect(back == h)
        #expect(back.value(atPercentile: 95) == h.value(atPercentile: 95))
        #expect(data.count < 120_000)
        let empty = try JSONDecoder().decode(Histogram.self, from: JSONEncoder().encode(Histogram()))
        #expect(empty == Histogram())
        // Corrupt input is rejected, not crashed on.
        let bad = #"{"highest":3600000000,"digits":3,"count":5,"sum":5,"min":1,"max":1,"buckets":[99999999,5]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Histogram.self, from: Data(bad.utf8)) }
        let mismatch = #"{"highest":3600000000,"digits":3,"count":6,"sum":5,"min":1,"max":1,"buckets":[1,5]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Histogram.self, from: Data(mismatch.utf8)) }
    }

    @Test func correctedRecordingFillsTheStall() {
        var h = Histogram()
        for _ in 0..<99 { h.recordCorrected(1_000, expectedInterval: 10_000) }
        h.recordCorrected(1_000_000, expectedInterval: 10_000)  // one 1 s stall at a 10 ms pace
        // 99 normal + 1 stalled + 99 synthesized values (990 ms, 980 ms … 10 ms).
        #expect(h.count == 199)
        #expect(h.max == 1_000_000)
        #expect(h.value(atPercentile: 50) > 10_000)  // without correction the median would be 1 ms
        var plain = Histogram()
        for _ in 0..<99 { plain.record(1_000) }
        plain.record(1_000_000)
        #expect(plain.value(atPercentile: 50) == 1_000)
    }
}

/// The counts grow with the largest value recorded, not to the whole 1 µs … 1 h range at once:
/// a run's first requests allocate (and page-fault) every trend of every stripe, and 184 KB each
/// stalled the event loop for milliseconds at the start of an open-model run (dropped iterations).
@Suite struct HistogramGrowthTests {
    @Test func countsCoverOnlyTheRangeRecorded() {
        var h = Histogram()
        for v in stride(from: Int64(50), through: 10_000, by: 7) { h.record(v) }  // 50 µs … 10 ms
        #expect(h.footprintBytes > 0)
        #expect(h.footprintBytes <= 48 * 1024, "\(h.footprintBytes) bytes for values up to 10 ms")
        let full = Histogram(highestTrackableValue: 3_600_000_000).footprintBytesWhenFull
        #expect(full == 23_552 * 8)
        h.record(3_600_000_000)
        #expect(h.footprintBytes == full)
        #expect(h.value(atPercentile: 100) == 3_600_000_000)
    }

    @Test func equalityMergeAndCodingIgnoreHowFarEachHasGrown() throws {
        var small = Histogram(), large = Histogram()
        for v: Int64 in [1, 5, 900, 2_100] { small.record(v) }
        large.record(5_000_000)
        var combined = Histogram()
        for v: Int64 in [1, 5, 900, 2_100, 5_000_000] { combined.record(v) }
        // Short into long and long into short give the same histogram.
        #expect(small.merging(large) == combined)
        #expect(large.merging(small) == combined)
        #expect(small.merging(large).footprintBytes == large.merging(small).footprintBytes)
        // A histogram grown and reset equals a fresh one with the same values.
        var grown = large
        grown.reset()
        for v: Int64 in [1, 5, 900, 2_100] { grown.record(v) }
        #expect(grown == small)
        #expect(grown.count(atOrBelow: 1_000_000_000) == 4)
        #expect(small.count(atOrBelow: 1_000_000_000) == 4)
        let decoded = try JSONDecoder().decode(Histogram.self, from: JSONEncoder().encode(combined))
        #expect(decoded == combined)
        #expect(decoded.value(atPercentile: 100) == 5_000_000)
        #expect(decoded.footprintBytes <= combined.footprintBytes)
    }
}
