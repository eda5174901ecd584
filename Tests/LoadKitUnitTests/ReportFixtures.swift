import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// A synthetic 90-second run with everything a report draws: per-second counters, users,
/// per-second trend histograms (one tagged), errors of two kinds, generator samples.
enum ReportFixtures {
    /// Built once per set of arguments: each costs ~0.5 s in a debug build, and tests that block
    /// Swift's two-thread pool that long stall every other test running in parallel.
    static func run(name: String = "checkout-http", seconds: Int = 90, p95Scale: Double = 1, seed: UInt64 = 7,
                    startedAtMillis: Int64 = 1_795_000_000_000) -> RunResult {
        let key = "\(name)|\(seconds)|\(p95Scale)|\(seed)|\(startedAtMillis)"
        if let r = cache.withLock({ $0[key] }) { return r }
        let r = build(name: name, seconds: seconds, p95Scale: p95Scale, seed: seed, startedAtMillis: startedAtMillis)
        cache.withLock { $0[key] = r }
        return r
    }

    private static let cache = Mutex<[String: RunResult]>([:])

    private static func build(name: String, seconds: Int, p95Scale: Double, seed: UInt64,
                              startedAtMillis: Int64) -> RunResult {
        var rng = SeededRandom(seed: seed)
        var m = MetricsSnapshot()
        var whole = Histogram(), items = Histogram(), login = Histogram()
        // The recorder's own per-second window: O(1) per sample (`TrendSeries.record` merges per call).
        var perSecond = TrendSecondWindow(), itemsSeries = TrendSecondWindow(), loginSeries = TrendSecondWindow()
        var reqs: [Int64] = [], vus: [Int64] = [], connected: [Int64] = [], errors: [Int64] = [], e503: [Int64] = [], reset: [Int64] = []
        for s in 0..<seconds {
            let users = max(0, Int64(min(100, 5 + s * 3)) - (s > seconds - 10 ? Int64((s - (seconds - 10)) * 10) : 0))
            vus.append(max(0, users)); connected.append(max(0, users - Int64(rng.next() % 3)))
            let n = Int(max(1, users)) * 4
            reqs.append(Int64(n))
            let slow = s > 40 && s < 55   // a slow patch
            for i in 0..<n {
                let base = 8_000.0 + Double(rng.next() % 6_000)
                var v = base * (slow ? 1.8 : 1) * p95Scale
                if rng.next() % 20 == 0 { v *= 2.5 }
                let micros = Int64(v)
                whole.record(micros); perSecond.record(micros, second: s)
                if i % 3 == 0 { items.record(micros + 2_000); itemsSeries.record(micros + 2_000, second: s) }
            }
            if s < 12 {
                for _ in 0..<Int(users) {
                    let v = Int64(20_000 + Double(rng.next() % 30_000))
                    login.record(v); loginSeries.record(v, second: s)
                }
            }
            let a: Int64 = slow ? Int64(rng.next() % 4) : 0, b: Int64 = s == 70 ? 2 : 0
            e503.append(a); reset.append(b); errors.append(a + b)
        }
        m.trends["http_req_duration"] = whole
        m.trends["http_req_duration{name:/items/{id}}"] = items
        m.trends["login"] = login
        perSecond.flush(); itemsSeries.flush(); loginSeries.flush()
        m.trendSeries["http_req_duration"] = perSecond.series
        m.trendSeries["http_req_duration{name:/items/{id}}"] = itemsSeries.series
        m.trendSeries["login"] = loginSeries.series
        m.counters["http_reqs"] = reqs.reduce(0, +)
        m.counters["iterations"] = reqs.reduce(0, +) / 2
        let failed = errors.reduce(0, +)
        m.counters["operations"] = reqs.reduce(0, +) - failed
        m.series["http_reqs"] = reqs
        m.series["iterations"] = reqs.map { $0 / 2 }
        m.series[RunnerMetrics.vus] = vus
        m.series[RunnerMetrics.connected] = connected
        m.series["errors"] = errors
        m.errorSeries["http_503"] = e503
        m.errorSeries["reset"] = reset
        m.errors["http_503"] = ErrorTally(source: .server, count: e503.reduce(0, +),
                                          examples: ["GET /items/17: HTTP 503 Service Unavailable <html>busy</html>"])
        m.errors["reset"] = ErrorTally(source: .server, count: 2, examples: ["connection: reset by peer"])
        m.rates["http_req_failed"] = RateTally(hits: failed, total: reqs.reduce(0, +))
        m.rates[SLA.connectionsHeldMetric] = RateTally(hits: 98, total: 100)
        m.gauges["vus_max"] = 100
        let generator = (1...seconds).map { s in
            GeneratorSample(second: Double(s), cpuPercent: 20 + Double(rng.next() % 30), rssBytes: 40_000_000 + Int64(s) * 50_000,
                            openDescriptors: 20 + min(100, s * 3))
        }
        return RunResult(name: name, startedAtMillis: startedAtMillis, durationSeconds: Double(seconds), metrics: m,
                         plannedPeakUsers: 100, peakActiveUsers: 100, generator: generator,
                         environment: ["build": "debug", "target": "http://127.0.0.1:8080", "TOKEN": "s3cr3t-token",
                                       "connections_held_at_second": "80"])
    }

    static let thresholds: [Threshold] = [
        SLA.p95("http_req_duration", below: .milliseconds(40)),
        SLA.p99("login", below: .milliseconds(45)),
        SLA.rate("http_req_failed", below: 0.01),
        SLA.errorRate(below: 0.001),
        SLA.connectionsHeld(atLeast: 0.95),
    ]
}
