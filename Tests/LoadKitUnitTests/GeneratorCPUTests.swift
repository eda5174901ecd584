import Foundation
import Testing
@testable import LoadKitEngine

/// The generator's CPU time over a run, and its cost a request, as a wrk user compares them
/// (`/usr/bin/time` beside wrk's req/s): the summaries print both, merges add the shards' up.
@Suite struct GeneratorCPUTests {
    /// A two-second run with one generator sample, `counters` as given.
    static func result(cpuSeconds: Double?, counters: [String: Int64]) -> RunResult {
        let r = MetricsRecorder()
        for (name, v) in counters { r.increment(name, by: v) }
        var result = RunResult(name: "cpu", startedAtMillis: 1_700_000_000_000, durationSeconds: 2, metrics: r.snapshot(),
                               generator: [GeneratorSample(second: 1, cpuPercent: 87.4, rssBytes: 1 << 20, openDescriptors: 20)])
        result.generatorCPUSeconds = cpuSeconds
        return result
    }

    @Test func theSummariesDivideTheCPUByTheRequestsOrElseTheIterations() {
        let http = Self.result(cpuSeconds: 1.75, counters: ["http_reqs": 100_000, "iterations": 50_000])
        #expect(ConsoleSummary.render(http, outcomes: [], full: false).contains("generator    CPU 1.75 s (17.5 µs a request), max 87 %"))
        #expect(ConsoleSummary.full(http, outcomes: []).contains("Load generator: CPU 1.75 s (17.5 µs a request), max 87%"))
        let ws = Self.result(cpuSeconds: 0.5, counters: ["iterations": 400])
        #expect(ConsoleSummary.render(ws, outcomes: [], full: false).contains("generator    CPU 0.50 s (1.25 ms an iteration), max 87 %"))
        // Nothing to divide by: the time alone; not measured (an older result): the peak alone.
        #expect(ConsoleSummary.render(Self.result(cpuSeconds: 0.5, counters: [:]), outcomes: [], full: false)
            .contains("generator    CPU 0.50 s, max 87 %"))
        #expect(ConsoleSummary.render(Self.result(cpuSeconds: nil, counters: ["http_reqs": 10]), outcomes: [], full: false)
            .contains("generator    CPU max 87 %"))
        #expect(CSVReport.render(http).contains("generator_cpu_seconds,1.750,s"))
        #expect(HTMLReport.render(http, outcomes: []).contains("CPU time over the run: 1.75 s (17.5 µs a request)."))
    }

    /// A WebSocket or STOMP session with a login request costs its iterations, not its one
    /// request; the unit follows the figure as printed.
    @Test func aSessionRunIsCostedByItsIterationsAndTheUnitFitsTheFigure() {
        let chat = Self.result(cpuSeconds: 2, counters: ["http_reqs": 10, "ws_sessions": 10, "iterations": 10])
        #expect(ConsoleSummary.render(chat, outcomes: [], full: false).contains("CPU 2.00 s (200 ms an iteration), max"))
        let stomp = Self.result(cpuSeconds: 2, counters: ["http_reqs": 10, "messages_sent": 900, "iterations": 10])
        #expect(ConsoleSummary.render(stomp, outcomes: [], full: false).contains("(200 ms an iteration)"))
        // 999.97 µs prints as 1 ms (not "1000 µs"); 1.5 s an iteration as seconds.
        #expect(ConsoleSummary.render(Self.result(cpuSeconds: 0.99997, counters: ["http_reqs": 1_000]), outcomes: [], full: false)
            .contains("(1 ms a request)"))
        #expect(ConsoleSummary.render(Self.result(cpuSeconds: 3, counters: ["iterations": 2]), outcomes: [], full: false)
            .contains("(1.5 s an iteration)"))
        // Rounded once, from the exact figure: 1,234.56 µs is 1.23 ms (rounding to 1,235 µs first gave 1.24).
        #expect(ConsoleSummary.render(Self.result(cpuSeconds: 0.123456, counters: ["iterations": 100]), outcomes: [], full: false)
            .contains("(1.23 ms an iteration)"))
    }

    /// `loadkit compare` and baselines set the cost beside the last run's (not judged: the host moves it).
    @Test func runComparisonsShowTheCostOfARequest() throws {
        let base = Self.result(cpuSeconds: 1.5, counters: ["http_reqs": 100_000]), new = Self.result(cpuSeconds: 2, counters: ["http_reqs": 100_000])
        let row = try #require(RunComparison.compare(base: base, new: new, maxRegression: 0.1).rows.first { $0.metric == "generator_cpu_us_per_request" })
        #expect(row.base == 15 && row.new == 20)
        // A base costed in another unit (or not measured) has no figure to set beside it.
        let other = try #require(RunComparison.compare(base: Self.result(cpuSeconds: 1, counters: ["iterations": 10]), new: new, maxRegression: 0.1)
            .rows.first { $0.metric == "generator_cpu_us_per_request" })
        #expect(other.base == nil && other.new == 20)
    }

    @Test func shardsAddTheirCPUUpAndAnUnknownShareMakesTheSumUnknown() throws {
        let a = Self.result(cpuSeconds: 1.5, counters: ["http_reqs": 10]), b = Self.result(cpuSeconds: 2.25, counters: ["http_reqs": 10])
        #expect(try #require(RunResult.merged([a, b])).generatorCPUSeconds == 3.75)
        #expect(try #require(RunResult.merged([a, Self.result(cpuSeconds: nil, counters: [:])])).generatorCPUSeconds == nil)
    }

    @Test func aResultWrittenBeforeTheFieldExistedReadsAsNotMeasured() throws {
        var json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(Self.result(cpuSeconds: 1, counters: [:]))) as? [String: Any])
        #expect(json["generatorCPUSeconds"] as? Double == 1)
        json["generatorCPUSeconds"] = nil
        let old = try JSONDecoder().decode(RunResult.self, from: JSONSerialization.data(withJSONObject: json))
        #expect(old.generatorCPUSeconds == nil)
    }
}
