import Foundation
import LoadKitTransport
import LoadKitProtocols

/// `Metric,Value,Unit` rows (seed 000/001's `load_test_result.csv`): `total_workers`,
/// `test_duration_seconds`, `peak_active_users`, `success_rate` (%), `error_rate` (%),
/// `errors_total`, per counter `<name>_total` and `<name>_per_second`, per trend
/// `<name>_{avg,min,max,med,p90,p95,p99}` (ms) and `<name>_count`, per rate `<name>_rate` (%),
/// gauges by name, errors per kind `errors_<kind>_total`, generator maxima.
package enum CSVReport {
    /// One row.
    public struct Row: Sendable, Hashable {
        /// Metric name.
        public var metric: String
        /// Value as written.
        public var value: String
        /// Unit (`ms`, `%`, `s`, `/s`, `bytes` or empty).
        public var unit: String
    }

    /// The rows in file order.
    public static func rows(_ r: RunResult) -> [Row] {
        let m = r.metrics
        var rows: [Row] = []
        func add(_ name: String, _ v: String, _ unit: String = "") { rows.append(Row(metric: name, value: v, unit: unit)) }
        add("total_workers", String(r.workers))
        add("test_duration_seconds", Fmt.num(r.durationSeconds, 3))
        add("peak_active_users", String(r.peakActiveUsers))
        if let s = r.successRate { add("success_rate", Fmt.num(s * 100), "%") }
        if let e = m.errorRate { add("error_rate", Fmt.num(e * 100, 4), "%") }
        add("errors_total", String(m.totalErrors))
        for (name, v) in m.counters.sorted(by: { $0.key < $1.key }) {
            add("\(name)_total", String(v))
            if r.durationSeconds > 0 { add("\(name)_per_second", Fmt.num(Double(v) / r.durationSeconds), "/s") }
        }
        for (name, h) in m.trends.sorted(by: { $0.key < $1.key }) where h.count > 0 {
            let t = TrendSummary(h)
            add("\(name)_avg", Fmt.num(t.avg), "ms")
            add("\(name)_min", Fmt.num(t.min), "ms")
            add("\(name)_max", Fmt.num(t.max), "ms")
            add("\(name)_med", Fmt.num(t.med), "ms")
            add("\(name)_p90", Fmt.num(t.p90), "ms")
            add("\(name)_p95", Fmt.num(t.p95), "ms")
            add("\(name)_p99", Fmt.num(t.p99), "ms")
            add("\(name)_count", String(t.count))
        }
        for (name, t) in m.rates.sorted(by: { $0.key < $1.key }) { add("\(name)_rate", Fmt.num(t.value * 100, 3), "%") }
        for (name, v) in m.gauges.sorted(by: { $0.key < $1.key }) { add(name, Fmt.short(v)) }
        for (kind, t) in m.errors.sorted(by: { $0.key < $1.key }) { add("errors_\(kind)_total", String(t.count)) }
        if !r.generator.isEmpty {
            add("generator_cpu_max", Fmt.num(r.generator.map(\.cpuPercent).max() ?? 0, 1), "%")
            if let seconds = r.generatorCPUSeconds { add("generator_cpu_seconds", Fmt.num(seconds, 3), "s") }
            if let loop = r.generator.compactMap(\.busiestLoopPercent).max() { add("generator_busiest_loop_max", Fmt.num(loop, 1), "%") }
            add("generator_rss_max", String(r.generator.map(\.rssBytes).max() ?? 0), "bytes")
            add("generator_open_files_max", String(r.generator.map(\.openDescriptors).max() ?? 0))
        }
        return rows
    }

    /// The CSV text with header `Metric,Value,Unit` (fields quoted when needed).
    public static func render(_ r: RunResult) -> String {
        var out = "Metric,Value,Unit\n"
        for row in rows(r) { out += "\(field(row.metric)),\(field(row.value)),\(field(row.unit))\n" }
        return out
    }

    static func field(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
