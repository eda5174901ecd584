import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

@Suite struct MetricsRecorderTests {
    @Test func recordsEveryKindAndSnapshots() {
        let r = MetricsRecorder()
        let lat = r.trend("message_latency")
        r.record(lat, micros: 1_500)
        r.recordNanos("message_latency", 2_500_000)
        r.record("websocket_connect", .milliseconds(3))
        r.increment("messages_sent")
        r.increment("messages_sent", by: 4)
        let sent = r.counter("messages_sent")
        r.increment(sent)
        r.gauge("active_connections", 3)
        r.rate("cache_hit", hit: true)
        r.rate("cache_hit", hit: false)
        r.rate(r.rateHandle("cache_hit"), hit: true)
        let s = r.snapshot()
        #expect(s.trends["message_latency"]?.count == 2)
        #expect(s.trends["message_latency"]?.max == 2_500)
        #expect(s.trends["websocket_connect"]?.min == 3_000)
        #expect(s.counters["messages_sent"] == 6)
        #expect(s.series["messages_sent"]?.reduce(0, +) == 6)
        #expect(s.gauges["active_connections"] == 3)
        #expect(s.rates["cache_hit"] == RateTally(hits: 2, total: 3))
        #expect(r.snapshot(includeTrends: false).trends.isEmpty)
    }

    @Test func errorsAreClassifiedWithFiveExamples() {
        let r = MetricsRecorder()
        for i in 0..<8 { r.error(ScriptFailure("body \(i) wrong"), step: "check") }
        r.error(CancellationError(), step: "send")
        struct Plain: Error {}
        r.error(Plain(), step: "x")
        let s = r.snapshot()
        #expect(s.errors["assertion"]?.count == 8)
        #expect(s.errors["assertion"]?.source == .script)
        #expect(s.errors["assertion"]?.examples == (0..<5).map { "check: body \($0) wrong" })
        #expect(s.errors["cancelled"]?.count == 1)
        #expect(s.errors["script_error"]?.source == .script)   // not classified: the scenario's own error
        #expect(s.totalErrors == 10)
        #expect(s.counter("errors") == 10, "the SLAs' name for every error, as k6-summary.txt prints it")
        #expect(s.series["errors"]?.reduce(0, +) == 10)
    }

    /// A held-out user's report listed one `http_500` message five times: examples are distinct,
    /// looked for among the first 20 failures of a kind in a recorder, and merged the same way.
    @Test func examplesAreDistinctAndSoughtAmongTheFirstFailures() {
        let r = MetricsRecorder()
        for _ in 0..<10 { r.error(ScriptFailure("same"), step: "check") }
        r.error(ScriptFailure("other"), step: "check")
        r.error(ScriptFailure("same"), step: "")
        for _ in 0..<100 { r.error(ScriptFailure("same"), step: "check") }
        r.error(ScriptFailure("late"), step: "check")   // failure 113 of its kind: not looked at
        let tally = r.snapshot().errors["assertion"]
        #expect(tally?.count == 113)
        #expect(tally?.examples == ["check: same", "check: other", "same"])
        var merged = ErrorTally(source: .script, count: 2, examples: ["a", "b"])
        merged.merge(ErrorTally(source: .script, count: 9, examples: ["b", "c", "d", "e", "f"]))
        #expect(merged.count == 11 && merged.examples == ["a", "b", "c", "d", "e"])
    }

    /// A held-out user printed `m.rates["http_req_failed"]` and read
    /// `LoadKitEngine.RateTally(hits: 7070, total: 14140)`: values print as the reports do.
    @Test func talliesAndSourcesPrintAsTheReportsDo() {
        #expect("\(RateTally(hits: 7070, total: 14140))" == "50 % (7,070 of 14,140)")
        #expect("\(RateTally())" == "no samples")
        #expect("\(FailureSource.loadGenerator)" == "load-generator")
        #expect(FailureSource.allCases.map { "\($0)" } == FailureSource.allCases.map(\.rawValue))
    }

    @Test func seriesIndexFromStart() {
        // Start 2.5 s in the past: an increment now lands in second 2.
        let r = MetricsRecorder(startNanos: monotonicNanos() - 2_500_000_000)
        r.increment("iterations")
        #expect(r.snapshot().series["iterations"] == [0, 0, 1])
    }

    @Test func concurrentRecordingLosesNothing() async {
        let registry = MetricsRegistry(stripeCount: 4)
        await withTaskGroup(of: Void.self) { group in
            for user in 0..<64 {
                group.addTask {
                    let r = registry.recorder(forUser: user)
                    let h = r.trend("latency")
                    for i in 0..<1_000 {
                        r.record(h, micros: Int64(i))
                        r.increment("operations")
                        r.rate("ok", hit: i % 2 == 0)
                    }
                }
            }
        }
        let s = registry.snapshot()
        #expect(s.trends["latency"]?.count == 64_000)
        #expect(s.counters["operations"] == 64_000)
        #expect(s.rates["ok"] == RateTally(hits: 32_000, total: 64_000))
        #expect(s.trends["latency"]?.max == 999)
    }

    @Test func snapshotMergeIsExact() {
        var a = MetricsSnapshot(), b = MetricsSnapshot()
        var ha = Histogram(), hb = Histogram()
        ha.record(10); hb.record(20)
        a.trends["t"] = ha; b.trends["t"] = hb; b.trends["u"] = hb
        a.counters["c"] = 2; b.counters["c"] = 3
        a.gauges["g"] = 1; b.gauges["g"] = 2
        a.rates["r"] = RateTally(hits: 1, total: 2); b.rates["r"] = RateTally(hits: 1, total: 1)
        a.errors["refused"] = ErrorTally(source: .server, count: 4, examples: ["1", "2", "3", "4"])
        b.errors["refused"] = ErrorTally(source: .server, count: 2, examples: ["5", "6"])
        a.series["c"] = [1, 1]; b.series["c"] = [0, 1, 2]
        let m = a.merging(b)
        #expect(m.trends["t"]?.count == 2 && m.trends["t"]?.max == 20 && m.trends["u"] == hb)
        #expect(m.counters["c"] == 5 && m.gauges["g"] == 3)
        #expect(m.rates["r"] == RateTally(hits: 2, total: 3))
        #expect(m.errors["refused"] == ErrorTally(source: .server, count: 6, examples: ["1", "2", "3", "4", "5"]))
        #expect(m.series["c"] == [1, 2, 2])
        #expect(b.merging(a).counters == m.counters)
    }

    @Test func runResultMergesShards() throws {
        var s = MetricsSnapshot(); s.counters["operations"] = 5
        let r1 = RunResult(name: "x", startedAtMillis: 100, durationSeconds: 10, metrics: s, peakActiveUsers: 3)
        let r2 = RunResult(name: "x", startedAtMillis: 50, durationSeconds: 12, metrics: s, peakActiveUsers: 4)
        let m = try #require(RunResult.merged([r1, r2]))
        #expect(m.startedAtMillis == 50 && m.durationSeconds == 12 && m.peakActiveUsers == 7)
        #expect(m.metrics.counters["operations"] == 10)
        #expect(RunResult.merged([]) == nil)
    }
}
