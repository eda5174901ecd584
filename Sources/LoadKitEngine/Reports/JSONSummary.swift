import Foundation
import LoadKitTransport
import LoadKitProtocols

/// A k6-like JSON summary: `metrics.<name>.values.{avg,min,med,max,p(90),p(95),p(99)}` (ms) for
/// trends, `{count, rate}` for counters, `{rate, passes, fails}` for rates, `{value}` for gauges,
/// each with `thresholds: {"p(95) < 200 ms": {"ok": true}}`; plus the pseudo-metric `errors`
/// (`count`, `rate` = error rate), `errors_by_kind`, `thresholds` (a list with actual and limit,
/// durations in ms like the trends),
/// and `state` (name, start, duration, interruption, users, masked environment).
package enum JSONSummary {
    /// The summary as a JSON-compatible dictionary.
    public static func object(_ r: RunResult, outcomes: [ThresholdOutcome] = []) -> [String: Any] {
        let m = r.metrics
        var metrics: [String: [String: Any]] = [:]
        for (name, h) in m.trends where h.count > 0 {
            let t = TrendSummary(h)
            metrics[name] = ["type": "trend", "contains": "time",
                             "values": ["avg": t.avg, "min": t.min, "med": t.med, "max": t.max,
                                        "p(90)": t.p90, "p(95)": t.p95, "p(99)": t.p99, "count": t.count]]
        }
        for (name, v) in m.counters {
            let rate = r.durationSeconds > 0 ? Double(v) / r.durationSeconds : 0
            metrics[name] = ["type": "counter", "values": ["count": v, "rate": rate]]
        }
        for (name, t) in m.rates {
            metrics[name] = ["type": "rate", "values": ["rate": t.value, "passes": t.hits, "fails": t.total - t.hits]]
        }
        for (name, v) in m.gauges { metrics[name] = ["type": "gauge", "values": ["value": v]] }
        var errorValues: [String: Any] = ["count": m.totalErrors]
        if let e = m.errorRate { errorValues["rate"] = e }
        metrics[Threshold.errorsMetric] = ["type": "rate", "values": errorValues]
        for o in outcomes {
            let key = "\(o.statistic) \(o.threshold.comparison.rawValue) \(o.threshold.limitText)"
            var entry = metrics[o.metric] ?? ["type": "missing", "values": [String: Any]()]
            var ths = entry["thresholds"] as? [String: Any] ?? [:]
            ths[key] = ["ok": o.passed]
            entry["thresholds"] = ths
            metrics[o.metric] = entry
        }
        var byKind: [String: Any] = [:]
        for (kind, t) in m.errors {
            byKind[kind] = ["source": t.source.rawValue, "count": t.count, "examples": t.examples]
        }
        // Durations in ms, like the trends above (thresholds keep µs internally).
        func shown(_ v: Double, _ u: ThresholdUnit) -> Double { u == .duration ? v / 1000 : v }
        let thresholds: [[String: Any]] = outcomes.map { o in
            let u = o.threshold.unit
            var d: [String: Any] = ["metric": o.metric, "statistic": o.statistic,
                                    "comparison": o.threshold.comparison.rawValue, "limit": shown(o.limit, u),
                                    "unit": u == .duration ? "ms" : u.rawValue, "ok": o.passed, "message": o.message]
            if o.skipped { d["skipped"] = true }
            if let r = o.threshold.relative { d["relative"] = ["reference": r.reference.rawValue, "by": r.by] }
            if let a = o.actual { d["actual"] = shown(a, u) }
            return d
        }
        var state: [String: Any] = ["name": r.name, "startedAtMillis": r.startedAtMillis,
                                    "testRunDurationMs": r.durationSeconds * 1000,
                                    "plannedPeakUsers": r.plannedPeakUsers, "peakActiveUsers": r.peakActiveUsers,
                                    "environment": Secrets.masked(r.environment)]
        if let i = r.interruption { state["interruption"] = i }
        return ["metrics": metrics, "errors_by_kind": byKind, "thresholds": thresholds,
                "thresholds_ok": outcomes.allSatisfy(\.passed), "state": state]
    }

    /// The summary as pretty-printed JSON with sorted keys.
    public static func render(_ r: RunResult, outcomes: [ThresholdOutcome] = []) -> Data {
        (try? JSONSerialization.data(withJSONObject: object(r, outcomes: outcomes),
                                     options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
    }
}

/// A k6-like end-of-test text summary (`http_req_duration....: avg=… min=… med=… max=… p(90)=…
/// p(95)=…`), with `✓`/`✗` threshold lines, usable as the Concert suite's result file.
package enum K6TextSummary {
    /// Renders the text.
    public static func render(_ r: RunResult, outcomes: [ThresholdOutcome] = []) -> String {
        let m = r.metrics
        var lines: [(String, String)] = []
        for (name, h) in m.trends where h.count > 0 {
            let t = TrendSummary(h)
            lines.append((name, "avg=\(Fmt.k6Duration(t.avg)) min=\(Fmt.k6Duration(t.min)) med=\(Fmt.k6Duration(t.med)) max=\(Fmt.k6Duration(t.max)) p(90)=\(Fmt.k6Duration(t.p90)) p(95)=\(Fmt.k6Duration(t.p95)) p(99)=\(Fmt.k6Duration(t.p99))"))
        }
        for (name, v) in m.counters {
            let rate = r.durationSeconds > 0 ? Double(v) / r.durationSeconds : 0
            lines.append((name, "\(v)  \(Fmt.num(rate, 6))/s"))
        }
        for (name, t) in m.rates {
            lines.append((name, "\(Fmt.num(t.value * 100))%  ✓ \(t.hits)  ✗ \(t.total - t.hits)"))
        }
        for (name, v) in m.gauges { lines.append((name, Fmt.short(v))) }
        let e = m.totalErrors
        lines.append((Threshold.errorsMetric, "\(e)  \(Fmt.num((m.errorRate ?? 0) * 100, 3))%"))
        // Not `vus_max:` here: that name is the metric below (the most users at once), and an
        // open model's plan (its `maxUsers`) can be far above it.
        var out = "\n  scenario: \(r.name)  duration: \(Fmt.duration(r.durationSeconds))  \(Fmt.usersPlanned(r))"
        if let i = r.interruption { out += "  interrupted: \(i)" }
        out += "\n\n"
        if !outcomes.isEmpty {
            for o in outcomes {
                out += "  \(o.mark) \(o.metric) \(o.statistic)\(o.threshold.comparison.rawValue)\(o.threshold.limitText.replacingOccurrences(of: " ", with: ""))"
                out += o.passed ? "\n" : "  (\(o.message))\n"
            }
            out += "\n"
        }
        // Aligned on the longest name, as k6 does (a long tagged name no longer breaks the column).
        let width = Swift.max(30, (lines.map(\.0.count).max() ?? 0) + 3)
        for (name, value) in lines.sorted(by: { $0.0 < $1.0 }) {
            let dots = String(repeating: ".", count: width - name.count)
            out += "     \(name)\(dots): \(value)\n"
        }
        return out
    }
}

/// The error log (`load_test.log`): every error kind with its source, count and first examples.
package enum ErrorLog {
    /// Renders the log (secrets from the environment scrubbed).
    public static func render(_ r: RunResult) -> String {
        let m = r.metrics
        var out = "LoadKit error log: \(r.name)\n"
        out += "started at \(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(r.startedAtMillis) / 1000)))"
        out += ", duration \(Fmt.duration(r.durationSeconds))\n"
        if let i = r.interruption { out += "interrupted: \(i)\n" }
        out += "errors: \(m.totalErrors)\n"
        for (kind, t) in m.errors.sorted(by: { $0.key < $1.key }) {
            out += "\n[\(kind)] source=\(t.source.rawValue) count=\(t.count)\n"
            for e in t.examples { out += "  - \(e)\n" }
        }
        if m.errors.isEmpty { out += "no errors\n" }
        return Secrets.scrub(out, environment: r.environment)
    }
}
