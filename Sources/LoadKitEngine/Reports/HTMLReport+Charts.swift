import Foundation
import LoadKitTransport
import LoadKitProtocols

extension HTMLReport {
    /// Where a chart goes on the page.
    enum Section: String { case timeline, distributions, generator }

    /// One chart: its placeholder goes in the page, its data in the embedded JSON.
    struct Chart {
        var id: String
        var section: Section
        var title: String
        var subtitle: String
        /// `line` (x = seconds, y in `unit`) or `bars` (a distribution: x in `unit`, y = samples).
        var kind: String
        var unit: String
        var series: [[String: Any]] = []
        var bins: [[Double]] = []
        var markers: [[String: Any]] = []
        var logX = false
        /// The end of a timeline's x axis (the run's length), so every timeline shares one scale.
        var xMax: Double = 0

        var object: [String: Any] {
            var o: [String: Any] = ["id": id, "title": title, "kind": kind, "unit": unit]
            if kind == "line" { o["series"] = series; o["xMax"] = xMax } else { o["bins"] = bins; o["markers"] = markers; o["logX"] = logX }
            return o
        }
    }

    /// Every chart of one run.
    struct Charts {
        var list: [Chart] = []
        /// Most latency-over-time charts (base trends); the rest are in the tables.
        static let maxTrendCharts = 12
        /// Most tagged variants drawn in one "by tag" chart.
        static let maxTagged = 8

        /// The run's length, rounded up to whole seconds (the x axis of the per-second charts).
        private var xMax = 0.0
        /// Per-second entries drawn (a last second mostly after the run's end is left out).
        private var lastSecond = 1

        init(_ r: RunResult, outcomes: [ThresholdOutcome]) {
            xMax = r.durationSeconds.isFinite ? r.durationSeconds.rounded(.up) : 0
            lastSecond = Int((r.durationSeconds + 0.5).rounded(.down))
            let m = r.metrics
            addThroughput(m)
            addLatencyOverTime(m, outcomes: outcomes)
            addErrors(m)
            addDistributions(m)
            addGenerator(r)
        }

        private mutating func line(_ id: String, _ section: Section, _ title: String, _ subtitle: String, _ unit: String,
                                   _ series: [[String: Any]]) {
            guard !series.isEmpty else { return }
            list.append(Chart(id: id, section: section, title: title, subtitle: subtitle, kind: "line", unit: unit,
                              series: series, xMax: xMax))
        }

        /// A per-second series plotted at the end of each second (entry k covers [k, k+1)); a
        /// last second mostly after the run's end (a sliver) is left out rather than drawn as a drop.
        private func points(_ values: [Double?]) -> [[Any]] {
            values.enumerated().filter { $0.offset < Swift.max(1, lastSecond) }
                .map { [Double($0.offset + 1), $0.element.flatMap { $0.isFinite ? $0 as Any : nil } ?? NSNull()] }
        }

        /// Throughput, network bytes, users and connections.
        private mutating func addThroughput(_ m: MetricsSnapshot) {
            let counters = ConsoleSummary.keyCounters(m, limit: 6).filter { m.series[$0] != nil }
            line("throughput", .timeline, "Throughput", "per second", "/s",
                 counters.map { ["name": $0, "points": points(m.series[$0]!.map { Double($0) })] })
            let bytes = [BuiltInMetrics.dataSent, BuiltInMetrics.dataReceived].filter { m.series[$0] != nil }
            line("network", .timeline, "Network", "bytes per second", "B/s",
                 bytes.map { ["name": $0, "points": points(m.series[$0]!.map { Double($0) })] })
            // The open model's schedule: arrivals dropped (no free user) and started late, per
            // second — a dropped arrival is in no latency chart, so its seconds show here.
            let schedule = [RunnerMetrics.iterationsDropped, RunnerMetrics.iterationsLate].filter { m.series[$0] != nil }
            if m.trends[RunnerMetrics.iterationLateness] != nil {
                line("schedule", .timeline, "Schedule", "open model: iterations dropped (no free user) and late, per second", "/s",
                     schedule.map { ["name": $0, "points": points(m.series[$0]!.map { Double($0) })] })
            }
            line("users", .timeline, "Users and connections", "active virtual users (each second's peak), users marked connected", "users",
                 [RunnerMetrics.vus, RunnerMetrics.connected].compactMap { name in
                     m.series[name].map { ["name": name == RunnerMetrics.vus ? "active users" : "connected", "points": points($0.map(Double.init))] }
                 })
        }

        /// Latency percentiles per second, one chart per base trend, then per tag.
        private mutating func addLatencyOverTime(_ m: MetricsSnapshot, outcomes: [ThresholdOutcome]) {
            let named = outcomes.map(\.metric)
            let bases = MetricName.grouped(Array(m.trendSeries.keys))
                .sorted { a, b in
                    let ia = named.firstIndex(of: a.base) ?? Int.max, ib = named.firstIndex(of: b.base) ?? Int.max
                    if ia != ib { return ia < ib }
                    return (m.trends[a.base]?.count ?? 0) > (m.trends[b.base]?.count ?? 0)
                }
                .prefix(Self.maxTrendCharts)
            // A trend recorded in fewer than 3 seconds (durations logged as connections close) has
            // no course over time worth a chart; its distribution and statistics are shown.
            func spansTime(_ t: TrendSeries) -> Bool { (0..<t.seconds).filter { t.count(second: $0) > 0 }.count >= 3 }
            for (i, group) in bases.enumerated() {
                if let t = m.trendSeries[group.base], spansTime(t) {
                    let (scale, unit) = Self.durationUnit(maxMicros: m.trends[group.base]?.max ?? 0)
                    line("trend\(i)", .timeline, group.base, "P50, P95 and P99 per second", unit,
                         [(50.0, "p50", "#93c5fd"), (95, "p95", "#2563eb"), (99, "p99", "#1e3a8a")].map { p, name, color in
                             ["name": name, "color": color,
                              "points": points((0..<t.seconds).map { k in t.value(atPercentile: p, second: k).map { Double($0) / scale } })]
                         })
                }
                let tagged = group.tagged.filter { m.trendSeries[$0].map(spansTime) == true }
                    .sorted { (m.trends[$0]?.count ?? 0) > (m.trends[$1]?.count ?? 0) }.prefix(Self.maxTagged)
                let (tagScale, tagUnit) = Self.durationUnit(maxMicros: tagged.compactMap { m.trends[$0]?.max }.max() ?? 0)
                line("trend\(i)-tags", .timeline, "\(group.base) by tag", "P95 per second", tagUnit, tagged.map { full in
                    let t = m.trendSeries[full]!
                    return ["name": MetricName(full).tagText,
                            "points": points((0..<t.seconds).map { k in t.value(atPercentile: 95, second: k).map { Double($0) / tagScale } })]
                })
            }
        }

        /// Errors per second by kind and source.
        private mutating func addErrors(_ m: MetricsSnapshot) {
            line("errors", .timeline, "Errors", "per second, by kind and source", "/s",
                 m.errorSeries.sorted { (m.errors[$0.key]?.count ?? 0) > (m.errors[$1.key]?.count ?? 0) }.map { kind, s in
                     ["name": "\(kind) [\(m.errors[kind]?.source.rawValue ?? "?")]", "points": points(s.map(Double.init))]
                 })
        }

        /// Each trend's distribution over the whole run (busiest tagged variants too).
        private mutating func addDistributions(_ m: MetricsSnapshot) {
            for (i, group) in MetricName.grouped(Array(m.trends.keys)).enumerated() {
                let busiestTags = group.tagged.sorted { (m.trends[$0]?.count ?? 0) > (m.trends[$1]?.count ?? 0) }.prefix(Self.maxTagged)
                for full in [group.base] + group.tagged where full == group.base || busiestTags.contains(full) {
                    // All zeros (TLS handshaking over plain HTTP, connecting on kept-alive
                    // connections) is one bar at 0: the statistics table says it in a line.
                    guard let h = m.trends[full], h.count > 0, h.max > 0 else { continue }
                    list.append(Self.distribution(h, id: "dist\(i)-\(list.count)", title: full))
                }
            }
        }

        /// The generator's CPU, RSS and descriptors, per shard in a merged run.
        private mutating func addGenerator(_ r: RunResult) {
            let segments = GeneratorSegments.split(r)
            let measures: [(id: String, title: String, unit: String, value: (GeneratorSample) -> Double)] = [
                ("cpu", "CPU", "%", { $0.cpuPercent }),
                ("rss", "Memory (RSS)", "MB", { Double($0.rssBytes) / 1_048_576 }),
                ("fds", "Open descriptors", "files", { Double($0.openDescriptors) }),
            ]
            for g in measures {
                var series: [[String: Any]] = segments.map { label, samples in
                    ["name": label.map { "shard \($0)" } ?? g.title,
                     "points": samples.map { [$0.second, g.value($0).isFinite ? g.value($0) as Any : NSNull()] }]
                }
                // Beside the process's CPU, how busy its busiest event loop was (one saturated
                // loop among several, or a script blocking its loop, shows here, not in the CPU).
                if g.id == "cpu" {
                    series += segments.compactMap { label, samples in
                        samples.contains { $0.busiestLoopPercent != nil } ? [
                            "name": "busiest event loop" + (label.map { ", shard \($0)" } ?? ""),
                            "points": samples.map { [$0.second, $0.busiestLoopPercent.map { $0 as Any } ?? NSNull()] }] : nil
                    }
                }
                line(g.id, .generator, g.title, g.id == "cpu" ? "of one core; the busiest loop: % of its time busy" : "", g.unit, series)
            }
        }

        /// Milliseconds, or seconds for trends reaching 2 s and more (µs per unit, unit).
        static func durationUnit(maxMicros: Int64) -> (Double, String) {
            maxMicros >= 2_000_000 ? (1_000_000, "s") : (1_000, "ms")
        }

        /// A histogram's samples in about 40 bins (logarithmic when the range spans more than a
        /// factor of 4), with P50/P95/P99 markers; values in ms (s for long trends).
        static func distribution(_ h: Histogram, id: String, title: String) -> Chart {
            let (scale, unit) = durationUnit(maxMicros: h.max)
            let lo = Double(Swift.max(1, h.min)), hi = Double(Swift.max(h.max, h.min + 1))
            let log = hi / lo > 4
            let n = 40
            var edges: [Int64] = [h.min - 1]
            for k in 1...n {
                let f = Double(k) / Double(n)
                let v = log ? lo * Foundation.pow(hi / lo, f) : lo + (hi - lo) * f
                let edge = k == n ? h.max : Int64(v.rounded(.up))
                if edge > edges.last! { edges.append(edge) }
            }
            var bins: [[Double]] = []
            var below = h.count(atOrBelow: edges[0])
            for k in 1..<edges.count {
                let upTo = h.count(atOrBelow: edges[k])
                bins.append([Double(edges[k - 1] + 1) / scale, Double(edges[k]) / scale, Double(upTo - below)])
                below = upTo
            }
            let t = TrendSummary(h)
            var c = Chart(id: id, section: .distributions, title: title, subtitle: "\(Fmt.int(h.count)) samples",
                          kind: "bars", unit: unit)
            c.bins = bins
            c.logX = log
            c.markers = [("p50", t.med), ("p95", t.p95), ("p99", t.p99)].map { ["name": $0.0, "x": $0.1 * 1000 / scale] }
            return c
        }

        /// The placeholders of `section`'s charts (the script draws into them).
        func figures(in section: Section) -> String {
            list.filter { $0.section == section }.map { c in
                "<figure class=\"chart\" data-chart=\"\(HTMLReport.e(c.id))\" data-kind=\"\(c.kind)\">"
                    + "<figcaption><span class=\"chart-title\">\(HTMLReport.e(c.title))</span>"
                    + (c.subtitle.isEmpty ? "" : "<span class=\"chart-sub\">\(HTMLReport.e(c.subtitle))</span>")
                    + "</figcaption><div class=\"plot\"></div><div class=\"legend\"></div></figure>\n"
            }.joined()
        }

        /// The data for the script, safe inside a `<script>` element.
        var json: String {
            let data = (try? JSONSerialization.data(withJSONObject: ["charts": list.map(\.object)], options: [.sortedKeys]))
                ?? Data("{\"charts\":[]}".utf8)
            return String(decoding: data, as: UTF8.self)
                .replacingOccurrences(of: "<", with: "\\u003c").replacingOccurrences(of: ">", with: "\\u003e")
                .replacingOccurrences(of: "&", with: "\\u0026")
        }
    }
}
