import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Metrics declared once (``Metric``): the typed SLA functions build the same thresholds as the
/// string-named ones, a user's own declaration works in `measure` and the SLA, and the built-ins'
/// declared polarity is what run comparisons judge by. (That a wrong kind does not compile is
/// checked by `.ci/api.py typecheck`.)
@Suite struct TypedMetricTests {
    @Test func typedSLAsAreTheStringNamedOnes() {
        #expect(SLA.p95(.httpReqDuration, below: .milliseconds(200)) == SLA.p95("http_req_duration", below: .milliseconds(200)))
        #expect(SLA.rate(.httpReqFailed, below: 0.01) == SLA.rate("http_req_failed", below: 0.01))
        #expect(SLA.count(.httpReqs, atLeast: 1) == SLA.count("http_reqs", atLeast: 1))
        #expect(SLA.rate(.connectionsHeld, atLeast: 0.99) == SLA.rate(SLA.connectionsHeldMetric, atLeast: 0.99))
        #expect(SLA.p99(.messageLatency, tag: "room:1", below: .seconds(1)) == SLA.p99("message_latency", tag: "room:1", below: .seconds(1)))
    }

    @Test func aDeclaredTrendIsMeasuredAndJudged() async throws {
        let checkout = TrendMetric("checkout")
        let carts = CounterMetric("carts")
        let result = try await LoadTest("typed") { Stage("all", to: 2, over: .zero); Hold(.milliseconds(500)) }   // room for a busy machine
            .progress(false).reports(false).settings(Settings([:])).exclusive(false)
            .sla { SLA.p95(checkout, below: .seconds(5)); SLA.count(carts, atLeast: 2) }
            .run { user in
                try await user.measure(checkout) { _ = await user.sleep(for: .milliseconds(5)) }
                user.count(carts)
                _ = await user.sleep(for: .milliseconds(20))
            }
        let n = try #require(result.metrics.trends["checkout"]?.count)
        #expect(n >= 2)
        #expect(result.metrics.counters["carts"] == Int64(n))
        #expect(result.sla?.count == 2)
        let outcomes = result.evaluate(result.sla ?? [])
        #expect(outcomes.allSatisfy { $0.passed }, "\(outcomes.map(\.message))")
    }

    @Test func comparisonsJudgeBuiltInsByTheirDeclaredPolarity() {
        #expect(RunComparison.badWhenHigh("http_req_failed"))
        #expect(RunComparison.badWhenHigh("iterations_dropped{scenario:x}"))
        #expect(!RunComparison.badWhenHigh("connections_held"))
        #expect(!RunComparison.badWhenHigh("http_reqs"))
        #expect(RunComparison.badWhenHigh("checkout_timeouts"))   // not declared: the name decides
    }
}
