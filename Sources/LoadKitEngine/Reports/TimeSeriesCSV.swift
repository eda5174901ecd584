import LoadKitTransport
import LoadKitProtocols

/// `timeseries.csv`: the run second by second, one `second,metric,value` row per value (long
/// format: loads into a spreadsheet pivot, pandas or Grafana's CSV source as it is).
///
/// `second` k is the interval [k, k+1) s from the run's start. Metrics:
/// - `<counter>_per_second` for every counter with a series (`http_reqs_per_second`,
///   `iterations_per_second`, `messages_received_per_second`, …), zeros included;
/// - `vus`, `connected`: active and connected users, sampled at the end of the second;
/// - `<trend>_p50`, `_p95`, `_p99`, `_max` (ms) and `_count`, for seconds with samples, from the
///   per-second histograms (see ``TrendSeries`` for their precision);
/// - `errors` and `errors_<kind>` per second;
/// - `generator_cpu_percent`, `generator_rss_bytes`, `generator_open_files` (the load
///   generator's own use; `{shard:i}` added per shard in a merged run).
package enum TimeSeriesCSV {
    /// Per-second rows, ordered by second then metric.
    public static func rows(_ r: RunResult) -> [(second: Int, metric: String, value: String)] {
        let m = r.metrics
        var rows: [(Int, String, String)] = []
        for (name, s) in m.series {
            let metric: String
            switch name {
            case RunnerMetrics.vus, RunnerMetrics.connected: metric = name
            case Threshold.errorsMetric: metric = "errors"
            default: metric = "\(name)_per_second"
            }
            for (k, v) in s.enumerated() { rows.append((k, metric, String(v))) }
        }
        for (kind, s) in m.errorSeries {
            for (k, v) in s.enumerated() where v != 0 { rows.append((k, "errors_\(kind)", String(v))) }
        }
        for (name, t) in m.trendSeries {
            for k in 0..<t.seconds where t.count(second: k) > 0 {
                for p in [50.0, 95, 99] {
                    rows.append((k, "\(name)_p\(Int(p))", ms(t.value(atPercentile: p, second: k)!)))
                }
                rows.append((k, "\(name)_max", ms(t.max(second: k)!)))
                rows.append((k, "\(name)_count", String(t.count(second: k))))
            }
        }
        for (label, samples) in GeneratorSegments.split(r) {
            let suffix = label.map { "{shard:\($0)}" } ?? ""
            for g in samples {
                let k = Swift.max(0, Int(g.second.rounded()) - 1)
                rows.append((k, "generator_cpu_percent\(suffix)", Fmt.num(g.cpuPercent, 1)))
                if let loop = g.busiestLoopPercent { rows.append((k, "generator_busiest_loop_percent\(suffix)", Fmt.num(loop, 1))) }
                rows.append((k, "generator_rss_bytes\(suffix)", String(g.rssBytes)))
                rows.append((k, "generator_open_files\(suffix)", String(g.openDescriptors)))
            }
        }
        return rows.sorted { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
    }

    /// The CSV text with header `second,metric,value`.
    public static func render(_ r: RunResult) -> String {
        var out = "second,metric,value\n"
        for row in rows(r) { out += "\(row.second),\(CSVReport.field(row.metric)),\(row.value)\n" }
        return out
    }

    static func ms(_ micros: Int64) -> String { Threshold.trim(Double(micros) / 1000, decimals: 3) }
}

/// The generator samples of a run, split per shard when a merge concatenated several shards'
/// samples (each shard's seconds start again from the beginning).
enum GeneratorSegments {
    /// (shard label or nil for a single run, samples in time order).
    static func split(_ r: RunResult) -> [(label: String?, samples: [GeneratorSample])] {
        var segments: [[GeneratorSample]] = []
        for g in r.generator {
            if let last = segments.last?.last, g.second >= last.second { segments[segments.count - 1].append(g) } else { segments.append([g]) }
        }
        guard segments.count > 1 else { return segments.map { (nil, $0) } }
        let shards = (r.environment["shards_merged"] ?? "").split(separator: ",").map(String.init)
        return segments.enumerated().map { (shards.count == segments.count ? shards[$0.offset] : String($0.offset), $0.element) }
    }
}
