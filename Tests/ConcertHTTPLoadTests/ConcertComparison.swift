import Foundation
import LoadKit

/// Seed 003 §4: the same scenarios against several server sizes, one markdown table per scenario
/// (rows = the seed's metrics, columns = targets) and a recommendation: the first target, in the
/// order given (cheapest first), whose runs met every SLA and consistency check.
enum ConcertComparison {
    /// The seed's rows for a scenario, plus request count, median and 503s for every scenario.
    static func rows(_ scenario: ConcertScenario) -> [ComparisonTable.Row] {
        let p95 = ComparisonTable.Row("P95 response time (ms)", decimals: 1) { r in ms(r, BuiltInMetrics.httpReqDuration, 95) }
        let p50 = ComparisonTable.Row("median response time (ms)", decimals: 1) { r in ms(r, BuiltInMetrics.httpReqDuration, 50) }
        let failed = ComparisonTable.Row("http_req_failed (%)", decimals: 2) { r in rate(r, BuiltInMetrics.httpReqFailed) }
        let reqs = ComparisonTable.Row("http_reqs (count)", decimals: 0) { r in r.metrics.counters[BuiltInMetrics.httpReqs].map(Double.init) }
        let s503 = ComparisonTable.Row("HTTP 503 (count)", decimals: 0) { r in Double(r.metrics.counters[K6Metrics.status503] ?? 0) }
        switch scenario {
        case .queueSpike:
            return [p95, failed, ComparisonTable.Row.throughput(BuiltInMetrics.httpReqs), p50, s503, reqs]
        case .reservationStress:
            return [p95,
                    ComparisonTable.Row("reservation success (%)") { r in rate(r, ReservationMetrics.success) },
                    ComparisonTable.Row("reservation conflict 409 (%)") { r in rate(r, ReservationMetrics.conflict) },
                    ComparisonTable.Row("lock time-out 5xx (%)") { r in rate(r, ReservationMetrics.lockTimeout) },
                    failed, p50, s503, reqs]
        case .paymentLoad:
            return [p95,
                    ComparisonTable.Row("latency drift (last ÷ first third)") { r in Drift.ratio(r) },
                    ComparisonTable.Row("payments exactly once (%)") { r in rate(r, PaymentMetrics.exactlyOnce) },
                    failed, p50, s503, reqs]
        case .concertEndurance:
            return [ComparisonTable.Row("cache hit rate (%)") { r in rate(r, CatalogueMetrics.cacheHit) },
                    ComparisonTable.Row("P95 response time, cache hits (ms)", decimals: 1) { r in ms(r, CatalogueMetrics.hitDuration, 95) },
                    p95, failed, p50, s503, reqs]
        }
    }

    static func ms(_ r: RunResult, _ trend: String, _ p: Double) -> Double? {
        r.metrics.trends[trend].flatMap { $0.count > 0 ? Double($0.value(atPercentile: p)) / 1000 : nil }
    }

    static func rate(_ r: RunResult, _ name: String) -> Double? {
        r.metrics.rates[name].flatMap { $0.total > 0 ? $0.value * 100 : nil }
    }

    /// The whole markdown document: targets, one table per scenario, the SLA verdicts, the recommendation.
    static func markdown(targets: [(name: String, label: String)], runs: [ConcertScenario: [ScenarioRun]]) -> String {
        var out = "# Concert load test — comparison of targets\n\n"
        out += "Targets: " + targets.map { "**\($0.name)** — \($0.label)" }.joined(separator: "; ") + "\n\n"
        for scenario in ConcertScenario.allCases {
            guard let list = runs[scenario], !list.isEmpty else { continue }
            out += "## \(scenario.title)\n\n"
            let columns = list.map { (label: $0.target, result: $0.result) }
            out += ComparisonTable.markdown(columns, rows: rows(scenario), title: "Metric")
            out += "| SLA and checks | " + list.map { verdict($0) }.joined(separator: " | ") + " |\n\n"
        }
        out += "## Recommendation\n\n" + recommendation(targets: targets.map(\.name), runs: runs) + "\n"
        return out
    }

    static func verdict(_ run: ScenarioRun) -> String {
        let breaches = run.outcomes.filter { !$0.passed }.map(\.message) + run.checks.filter { !$0.passed }.map(\.name)
        return breaches.isEmpty ? "✓ pass" : "✗ " + breaches.joined(separator: "; ")
    }

    /// The first target (cheapest first, as listed) whose every run passed.
    static func recommendation(targets: [String], runs: [ConcertScenario: [ScenarioRun]]) -> String {
        let all = runs.values.flatMap { $0 }
        for t in targets where all.filter({ $0.target == t }).allSatisfy(\.passed) {
            return "**\(t)**: the first target in the order given whose runs met every SLA and consistency check."
        }
        return "None of the targets met every SLA; see the ✗ lines above."
    }
}
