import Synchronization
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// `LOADKIT_SLA`: k6's threshold syntax from the environment, overriding or adding thresholds.
@Suite struct SLAEnvironmentTests {
    @Test func parsesK6Syntax() throws {
        let t = try SLA.parse("http_req_duration{name:/api/items}: p(95)<200ms, p(99)<=1.5s; http_req_failed: rate<0.01\n"
            + "errors: rate<1%; http_reqs: count>=100; http_req_waiting: avg<250; http_reqs: per_second>50/s")
        #expect(t == [
            Threshold(metric: "http_req_duration{name:/api/items}", statistic: .percentile(95), comparison: .below, limit: 200_000, unit: .duration),
            Threshold(metric: "http_req_duration{name:/api/items}", statistic: .percentile(99), comparison: .atMost, limit: 1_500_000, unit: .duration),
            Threshold(metric: "http_req_failed", statistic: .rate, comparison: .below, limit: 0.01, unit: .ratio),
            Threshold(metric: "errors", statistic: .rate, comparison: .below, limit: 0.01, unit: .ratio),
            Threshold(metric: "http_reqs", statistic: .count, comparison: .atLeast, limit: 100, unit: .plain),
            Threshold(metric: "http_req_waiting", statistic: .avg, comparison: .below, limit: 250_000, unit: .duration),  // bare ms, as k6
            Threshold(metric: "http_reqs", statistic: .perSecond, comparison: .above, limit: 50, unit: .perSecond),
        ])
        // The same threshold written with the SLA constructors (tag selection).
        #expect(t[0] == SLA.p95("http_req_duration", tag: "name:/api/items", below: .milliseconds(200)))
        #expect(try SLA.parse("  ;\n ").isEmpty)
    }

    @Test func badEntriesNameTheVariableAndTheEntry() {
        for bad in ["http_req_duration p(95)<200", "http_req_duration: p(95)", "http_req_duration: q(95)<1",
                    "http_req_failed: rate<2", "http_req_duration: p(95)<fast", "x y: count>1", "m{name:a: count>1"] {
            #expect {
                try SLA.parse(bad)
            } throws: { error in
                let e = error as? ConfigError
                return e?.variable == "LOADKIT_SLA" && e?.description.contains("LOADKIT_SLA") == true
            }
        }
    }

    @Test func aMisspeltMetricOrTagSaysItWasNeverRecorded() {
        var m = MetricsSnapshot()
        m.counters["http_reqs"] = 10
        var h = Histogram(); h.record(1_000)
        m.trends["http_req_duration"] = h
        m.trends["http_req_duration{name:/ok}"] = h
        let typo = SLA.count("http_reqz", atLeast: 1).evaluate(m, durationSeconds: 1)
        #expect(!typo.passed)
        #expect(typo.message.contains("no metric named 'http_reqz' was recorded; did you mean 'http_reqs'?; recorded: "), "\(typo.message)")
        let tag = SLA.p95("http_req_duration", tag: "name:/nope", below: .seconds(1)).evaluate(m, durationSeconds: 1)
        #expect(tag.message.contains("recorded: http_req_duration, http_req_duration{name:/ok}"), "\(tag.message)")
        let fine = SLA.count("http_reqs", atLeast: 100).evaluate(m, durationSeconds: 1)
        #expect(!fine.message.contains("no metric named"), "a known metric gets no hint")
    }

    @Test func overridesReplaceTheSameStatisticAndAddOthers() throws {
        let code = [SLA.p95("http_req_duration", below: .milliseconds(500)), SLA.errorRate(below: 0.01)]
        let env = try SLA.parse("http_req_duration: p(95)<200ms; http_reqs: count>=1")
        #expect(SLA.applying(env, to: code) == [SLA.errorRate(below: 0.01)] + env)
    }

    @Test func aRunJudgesItsSLAWithTheEnvironmentsOverrides() async throws {
        let sla = SLA.all {
            SLA.p95("step", below: .seconds(10))
            SLA.errorRate(below: 0.5)
        }
        let result = try await LoadTest("env-sla", burst: 2)
            .progress(false).reports(false)
            .settings(Settings(["LOADKIT_SLA": "step: p(95)<1us; iterations: count>=2"]))
            .sla(sla)
            .run { user in try await user.measure("step") { _ = await user.sleep(for: .milliseconds(5)) } }
        let recorded = Mutex<[String]>([])
        let reporter = FailureReporter { message, _ in recorded.withLock { $0.append(message) } }
        let outcomes = result.expect(reporter: reporter)              // the declared SLA, judged once
        #expect(outcomes.map(\.metric) == ["errors", "step", "iterations"])
        #expect(outcomes.map(\.passed) == [true, false, true])
        #expect(recorded.withLock { $0 }.count == 1)
        #expect(recorded.withLock { $0 }.first?.contains("step p(95) =") == true)
        // Judging a list written in the test applies the same overrides.
        let again = result.expect(sla, reporter: reporter)
        #expect(again.map(\.passed) == [true, false, true])
    }

    @Test func anUnreadableSLAStopsTheRunBeforeItStarts() async {
        await #expect(throws: ConfigError.self) {
            try await LoadTest("bad-sla", burst: 1).progress(false).reports(false)
                .settings(Settings(["LOADKIT_SLA": "http_req_duration: p95<200"]))
                .run { _ in }
        }
    }
}
