import Foundation

/// The end-of-run console summary (seed 000's layout): test summary, message/counter totals,
/// per-trend avg/min/max/med/p90/p95/p99 in ms, rates, errors by kind with their source and
/// first examples, thresholds pass/fail, the generator's own resource use.
public enum ConsoleSummary {
    /// Renders the summary. `outcomes` are the evaluated thresholds (may be empty).
    public static func render(_ r: RunResult, outcomes: [ThresholdOutcome] = []) -> String {
        let bar = String(repeating: "═", count: 62)
        let m = r.metrics
        var out = "\(bar)\n" + center("LoadKit results: \(r.name)", 62) + "\n\(bar)\n\n"
        out += "Test summary\n"
        out += "  Workers: \(r.workers)" + (r.peakActiveUsers > 0 ? " (peak active \(r.peakActiveUsers))" : "") + "\n"
        out += "  Duration: \(Fmt.duration(r.durationSeconds))\n"
        let ok = m.successfulOperations, errs = m.totalErrors
        if let s = r.successRate {
            out += "  Success rate: \(Fmt.num(s * 100))% (\(ok)/\(ok + errs))\n"
        }
        if let i = r.interruption { out += "  Interrupted: \(i)\n" }

        if !m.counters.isEmpty {
            out += "\nCounters\n"
            for (name, v) in m.counters.sorted(by: { $0.key < $1.key }) {
                let rate = r.durationSeconds > 0 ? "  (\(Fmt.num(Double(v) / r.durationSeconds, 1))/s)" : ""
                out += "  \(name): \(v)\(rate)\n"
            }
        }
        if !m.gauges.isEmpty {
            out += "\nGauges\n"
            for (name, v) in m.gauges.sorted(by: { $0.key < $1.key }) { out += "  \(name): \(Fmt.short(v))\n" }
        }
        if !m.trends.isEmpty {
            out += "\nPerformance (ms)\n"
            for (name, h) in m.trends.sorted(by: { $0.key < $1.key }) where h.count > 0 {
                let t = TrendSummary(h)
                out += "\n  \(name)  (\(t.count) samples)\n"
                out += "  Avg: \(Fmt.num(t.avg))ms, Min: \(Fmt.num(t.min))ms, Max: \(Fmt.num(t.max))ms, \n"
                out += "  Med: \(Fmt.num(t.med))ms, P90: \(Fmt.num(t.p90))ms, P95: \(Fmt.num(t.p95))ms, P99: \(Fmt.num(t.p99))ms\n"
            }
        }
        if !m.rates.isEmpty {
            out += "\nRates\n"
            for (name, t) in m.rates.sorted(by: { $0.key < $1.key }) {
                out += "  \(name): \(Fmt.num(t.value * 100))% (\(t.hits)/\(t.total))\n"
            }
        }
        out += "\nErrors: \(errs)"
        if let e = m.errorRate { out += " (error rate \(Fmt.num(e * 100, 3))%)" }
        out += "\n"
        for (kind, t) in m.errors.sorted(by: { $0.value.count > $1.value.count || ($0.value.count == $1.value.count && $0.key < $1.key) }) {
            out += "  \(kind) [\(t.source.rawValue)]: \(t.count)\n"
            if let first = t.examples.first { out += "    e.g. \(first)\n" }
        }
        if !outcomes.isEmpty {
            let failed = outcomes.filter { !$0.passed }.count
            out += "\nThresholds: " + (failed == 0 ? "all \(outcomes.count) passed" : "\(failed) of \(outcomes.count) FAILED") + "\n"
            for o in outcomes { out += "  \(o.passed ? "✓" : "✗") \(o.message)\n" }
        }
        if !r.generator.isEmpty {
            let cpu = r.generator.map(\.cpuPercent).max() ?? 0
            let rss = r.generator.map(\.rssBytes).max() ?? 0
            let fds = r.generator.map(\.openDescriptors).max() ?? 0
            out += "\nLoad generator: CPU max \(Fmt.num(cpu, 0))%, RSS max \(Fmt.bytes(rss)), open files max \(fds)\n"
        }
        let env = Secrets.masked(r.environment)
        if !env.isEmpty {
            out += "\nEnvironment\n"
            for (k, v) in env.sorted(by: { $0.key < $1.key }) { out += "  \(k)=\(v)\n" }
        }
        return Secrets.scrub(out, environment: r.environment)
    }

    static func center(_ s: String, _ width: Int) -> String {
        let pad = Swift.max(0, (width - s.count) / 2)
        return String(repeating: " ", count: pad) + s
    }
}
