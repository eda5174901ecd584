import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

@Suite struct TrendSeriesTests {
    /// Exact nearest-rank percentile of raw samples (the definition ``Histogram`` uses), in
    /// integer arithmetic: rank = ⌈p·n/100⌉ for p given to 0.1.
    static func exact(_ sorted: [Int64], _ p: Double) -> Int64 {
        let tenths = Int((p * 10).rounded())
        let rank = max(1, (tenths * sorted.count + 999) / 1000)
        return sorted[min(sorted.count, rank) - 1]
    }

    /// Latency-like samples: log-uniform 1 µs … ~2 s, with a few seconds empty.
    static func samples(seconds: Int, seed: UInt64) -> [[Int64]] {
        var rng = SeededRandom(seed: seed)
        return (0..<seconds).map { s in
            if s % 7 == 3 { return [] }
            let n = [1, 2, 3, 17, 250, 4_000][Int(rng.next() % 6)]
            return (0..<n).map { _ in
                let magnitude = Int(rng.next() % 21)
                return Int64(1 << magnitude) + Int64(rng.next() % UInt64(1 << magnitude))
            }
        }
    }

    static func build(_ perSecond: [[Int64]]) -> TrendSeries {
        var window = TrendSecondWindow()
        for (s, values) in perSecond.enumerated() {
            for v in values { window.record(v, second: s) }
        }
        window.flush()
        return window.series
    }

    @Test func perSecondPercentilesMatchTheExactOnesWithinThePrecision() throws {
        let raw = Self.samples(seconds: 40, seed: 12)
        let series = Self.build(raw)
        #expect(series.seconds == 40 || raw.last!.isEmpty)
        var checked = 0
        for (s, values) in raw.enumerated() {
            guard !values.isEmpty else {
                #expect(series.value(atPercentile: 95, second: s) == nil)
                continue
            }
            let sorted = values.sorted()
            #expect(series.count(second: s) == Int64(values.count))
            #expect(series.min(second: s) == sorted.first && series.max(second: s) == sorted.last)
            #expect(series.mean(second: s)! == Double(values.reduce(0, +)) / Double(values.count))
            for p in [0.0, 1, 50, 90, 95, 99, 99.9, 100] {
                let want = Self.exact(sorted, p)
                let got = try #require(series.value(atPercentile: p, second: s))
                // Never below the exact value, above it by less than 1/64 of it.
                #expect(got >= want, "second \(s) p\(p): \(got) < exact \(want)")
                #expect(Double(got - want) < Double(want) * TrendSeries.relativePrecision || got == want,
                        "second \(s) p\(p): \(got) vs exact \(want)")
                checked += 1
            }
        }
        #expect(checked > 200)
        #expect(TrendSeries.relativePrecision == 1.0 / 64)
    }

    @Test func smallValuesAreExact() {
        var series = TrendSeries()
        for v in [0, 1, 5, 64, 127, 127, 3] as [Int64] { series.record(v, second: 2) }
        #expect(series.seconds == 3 && series.count(second: 0) == 0)
        #expect(series.value(atPercentile: 50, second: 2) == 5)
        #expect(series.value(atPercentile: 80, second: 2) == 127)
        #expect(series.value(atPercentile: 10, second: 2) == 0)
    }

    @Test func mergeIsExactAndOrderIndependent() throws {
        let raw = Self.samples(seconds: 30, seed: 99)
        let whole = Self.build(raw)
        // The same samples dealt over four recorders of different lengths, merged in two orders.
        var parts = [[[Int64]]](repeating: raw.map { _ in [] }, count: 4)
        for (s, values) in raw.enumerated() {
            for (i, v) in values.enumerated() { parts[s >= 20 && i % 3 == 2 ? 3 : i % 3][s].append(v) }
        }
        parts[2] = Array(parts[2].prefix(20))
        let series = parts.map(Self.build)
        var a = TrendSeries(), b = TrendSeries()
        for s in series { a.merge(s) }
        for s in series.reversed() { b.merge(s) }
        #expect(a == whole)
        #expect(b == whole)
        // Codable round trip, and a shifted copy reads the same second later.
        let data = try JSONEncoder().encode(whole)
        #expect(try JSONDecoder().decode(TrendSeries.self, from: data) == whole)
        let shifted = whole.shifted(by: 3)
        #expect(shifted.seconds == whole.seconds + 3)
        for s in 0..<whole.seconds {
            #expect(shifted.value(atPercentile: 95, second: s + 3) == whole.value(atPercentile: 95, second: s))
        }
    }

    @Test func corruptJSONIsRejected() {
        for text in [#"{"precision":6,"seconds":[[2,10,5,5,0,1]]}"#,      // count 2, buckets hold 1
                     #"{"precision":6,"seconds":[[1,5,5,5,5000,1]]}"#,    // bucket beyond range
                     #"{"precision":3,"seconds":[]}"#,                    // another precision
                     #"{"precision":6,"seconds":[[1,5,5]]}"#] {
            #expect(throws: DecodingError.self) { try JSONDecoder().decode(TrendSeries.self, from: Data(text.utf8)) }
        }
    }

    /// Recorders take instants their callers read before taking the lock (the end of a timed
    /// step, of a response): one stamped a little before the current second began, recorded
    /// after a later one, stays in the current second — the window never moves back.
    @Test func aSampleStampedBeforeTheCurrentSecondStaysInIt() {
        let start: UInt64 = 1_000_000_000_000
        var window = TrendSecondWindow()
        window.record(10, atNanos: start + 2_000_000_100, runStart: start)
        window.record(20, atNanos: start + 1_999_999_900, runStart: start)
        window.record(30, atNanos: start + 2_500_000_000, runStart: start)
        window.record(40, atNanos: start + 3_000_000_000, runStart: start)
        let s = window.snapshot
        #expect(s.seconds == 4 && s.count(second: 1) == 0 && s.count(second: 2) == 3 && s.count(second: 3) == 1)
        #expect(s.max(second: 2) == 30)
    }

    @Test func memoryStaysCompactForAThirtyMinuteRun() {
        // 1,800 seconds × 2,000 samples spread over one decade (1–10 ms): far below a full
        // histogram per second (184 KB each).
        var rng = SeededRandom(seed: 5)
        var window = TrendSecondWindow()
        for s in 0..<1_800 {
            for _ in 0..<2_000 { window.record(1_000 + Int64(rng.next() % 9_000), second: s) }
        }
        window.flush()
        let series = window.series
        #expect(series.seconds == 1_800)
        #expect(series.footprintBytes < 1_800 * 1_400, "\(series.footprintBytes) bytes")
    }

    @Test func recorderKeepsPerSecondHistogramsAndErrorKinds() throws {
        // Started 1.5 s ago: samples now land in second 1.
        let r = MetricsRecorder(startNanos: monotonicNanos() - 1_500_000_000)
        let h = r.trend("latency")
        for v in 1...100 { r.record(h, micros: Int64(v) * 1_000) }
        r.record("latency", micros: 500_000)
        r.recordCorrected(h, micros: 30_000, expectedIntervalMicros: 10_000)   // 30, 20, 10 ms
        r.error(ScriptFailure("boom", kind: "http_500", source: .server), step: "get")
        let s = r.snapshot()
        let t = try #require(s.trendSeries["latency"])
        #expect(t.seconds == 2 && t.count(second: 0) == 0 && t.count(second: 1) == 104)
        #expect(t.max(second: 1) == 500_000)
        #expect(s.trends["latency"]?.count == 104)
        #expect(s.errorSeries["http_500"] == [0, 1])
        #expect(r.snapshot(perSecond: false).trendSeries.isEmpty)
        // A snapshot taken mid-second leaves the recorder's window intact.
        r.record(h, micros: 7)
        #expect(r.snapshot().trendSeries["latency"]?.count(second: 1) == 105)
        // Round trip through a result file.
        let back = try JSONDecoder().decode(MetricsSnapshot.self, from: JSONEncoder().encode(s))
        #expect(back == s)
        // A snapshot written before per-second data existed still decodes.
        let old = #"{"trends":{},"counters":{"a":1},"gauges":{},"rates":{},"errors":{},"series":{}}"#
        #expect(try JSONDecoder().decode(MetricsSnapshot.self, from: Data(old.utf8)).counters["a"] == 1)
    }
}
