import Foundation
import LoadKitTransport
import LoadKitProtocols

/// `report.html`: one self-contained page per run (inline CSS, JS and SVG; a Content-Security-
/// Policy of `default-src 'none'` so it cannot fetch anything; opens from disk or as a CI
/// artifact), in the order Gatling's report and k6's dashboard use: the verdict and every
/// threshold; then the run over time — throughput, users and connections, P50/P95/P99 of each
/// trend, errors by kind and source; the latency distribution of each trend; statistics; the
/// error table with examples; the load generator's own CPU, memory and descriptors; the
/// environment. Tables are HTML; charts are drawn by the page's script from the embedded data
/// (axes with units, values on hover). Metrics with tags (`http_req_duration{name:/items/{id}}`)
/// are grouped under their base metric.
package enum HTMLReport {
    /// Renders the page (secrets masked and scrubbed like every other report).
    public static func render(_ r: RunResult, outcomes: [ThresholdOutcome] = []) -> String {
        let charts = Charts(r, outcomes: outcomes)
        let failed = outcomes.filter { !$0.passed }.count
        let verdict: (text: String, css: String) = failed > 0 ? ("FAILED", "fail")
            : (r.interruption != nil ? ("INTERRUPTED", "none") : (outcomes.isEmpty ? ("NO THRESHOLDS", "none") : ("PASSED", "pass")))
        var h = ""
        h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        h += "<meta http-equiv=\"Content-Security-Policy\" content=\"\(contentSecurityPolicy)\">\n"
        h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        h += "<meta name=\"generator\" content=\"LoadKit\">\n"
        h += "<title>\(e(r.name)) · \(verdict.text) · LoadKit</title>\n<style>\(Assets.css)</style></head>\n<body>\n"
        h += header(r, verdict: verdict)
        h += "<main class=\"wrap\">\n"
        h += kpiSection(r)
        h += thresholdSection(outcomes, failed: failed, blame: ConsoleSummary.LatencyBlame(r, outcomes: outcomes))
        h += timelineSection(r.metrics, charts)
        h += distributionSection(r.metrics, charts)
        h += "<section id=\"statistics\"><h2>Statistics</h2>\n" + statistics(r) + "</section>\n"
        h += "<section id=\"errors\"><h2>Errors</h2>\n" + errors(r) + "</section>\n"
        h += generatorSection(r, charts)
        h += "<section id=\"environment\"><h2>Environment</h2>\n" + environment(r) + "</section>\n"
        h += "</main>\n<footer class=\"wrap\">Written by LoadKit. The same run as data: <code>result.json</code>, "
            + "<code>timeseries.csv</code>, <code>summary.json</code>, <code>load_test_result.csv</code>, <code>load_test.log</code>.</footer>\n"
        h += "<script type=\"application/json\" id=\"loadkit-data\">\(charts.json)</script>\n"
        h += "<script>\(Assets.script)</script>\n</body></html>\n"
        return Secrets.scrub(h, environment: r.environment)
    }

    /// The top bar: the verdict first, then the run's facts and the section links.
    static func header(_ r: RunResult, verdict: (text: String, css: String)) -> String {
        var h = ""
        h += "<header class=\"top\"><div class=\"wrap\">\n"
        h += "<div class=\"brand\">LoadKit report</div>\n"
        h += "<div class=\"title\"><h1>\(e(r.name))</h1><span class=\"verdict \(verdict.css)\" id=\"verdict\">\(verdict.text)</span></div>\n"
        var facts = ["started \(startText(r.startedAtMillis))", "duration \(Fmt.readableDuration(r.durationSeconds))",
                     Fmt.usersPlanned(r) + (r.peakActiveUsers > 0 ? ", \(Fmt.int(Int64(r.peakActiveUsers))) peak" : "")]
        if let b = r.environment["build"] { facts.append("\(b) build") }
        if let id = r.environment["run_id"] { facts.append("run \(id)") }
        if let s = r.environment["shards_merged"] { facts.append("merged shards \(s)") }
        h += "<p class=\"facts\">" + facts.map(e).joined(separator: " · ") + "</p>\n"
        if let i = r.interruption { h += "<p class=\"interrupted\">Interrupted: \(e(i))</p>\n" }
        h += "</div></header>\n"
        h += "<nav><div class=\"wrap\"><a href=\"#thresholds\">Thresholds</a><a href=\"#timeline\">Over time</a>"
            + "<a href=\"#distributions\">Distributions</a><a href=\"#statistics\">Statistics</a><a href=\"#errors\">Errors</a>"
            + "<a href=\"#generator\">Load generator</a><a href=\"#environment\">Environment</a></div></nav>\n"
        return h
    }

    /// Key figures at a glance.
    static func kpiSection(_ r: RunResult) -> String {
        var h = ""
        h += "<section class=\"kpis\">\n"
        for k in kpis(r) {
            h += "<div class=\"kpi\"><div class=\"kpi-label\">\(e(k.label))</div><div class=\"kpi-value\">\(e(k.value))</div>"
                + "<div class=\"kpi-note\">\(e(k.note))</div></div>\n"
        }
        h += "</section>\n"
        return h
    }

    /// Every threshold, passed and failed, actual vs limit.
    static func thresholdSection(_ outcomes: [ThresholdOutcome], failed: Int, blame: ConsoleSummary.LatencyBlame?) -> String {
        var h = ""
        h += "<section id=\"thresholds\"><h2>Thresholds</h2>\n"
        if outcomes.isEmpty {
            h += "<p class=\"empty\">No thresholds were declared for this run (declare them with <code>.sla { … }</code>).</p>\n"
        } else {
            h += "<p class=\"lead\">" + (failed == 0 ? "All \(outcomes.count) thresholds held."
                : "\(failed) of \(outcomes.count) thresholds breached.") + "</p>\n"
            h += "<table class=\"thresholds\" id=\"threshold-table\"><thead><tr><th></th><th>Threshold</th><th class=\"num\">Actual</th>"
                + "<th>Limit</th></tr></thead><tbody>\n"
            for o in outcomes {
                let css = o.skipped ? "skip" : (o.passed ? "pass" : "fail")
                let actual = o.actual.map { Threshold.format($0, o.threshold.unit) } ?? "no samples"
                // Why a threshold has no samples (every request failed, every iteration was cut…),
                // as the console and `expect()` say it: below the metric.
                let why = o.actual == nil ? o.head.range(of: "no samples — ").map { String(o.head[$0.upperBound...]) } : nil
                h += "<tr class=\"\(css)\"><td class=\"mark\">\(o.mark)</td><td><span class=\"metric\">\(e(o.metric))</span> "
                    + "<span class=\"stat\">\(e(o.statistic))</span>" + (why.map { "<div class=\"note\">\(e($0))</div>" } ?? "")
                    + "</td><td class=\"num\">\(e(actual))</td>"
                    + "<td>\(e(o.detail.isEmpty ? o.message : String(o.detail.dropFirst(o.detail.hasPrefix("limit ") ? 6 : 0))))</td></tr>\n"
            }
            h += "</tbody></table>\n"
            if let blame { h += "<p class=\"lead\" id=\"latency-blame\">\(e(blame.sentence))</p>\n" }
        }
        h += "</section>\n"
        return h
    }

    /// Per-second charts of the run.
    static func timelineSection(_ m: MetricsSnapshot, _ charts: Charts) -> String {
        var h = ""
        h += "<section id=\"timeline\"><h2>Over time</h2>\n"
        h += "<p class=\"lead\">Per second of the run. Hover a chart for its values.</p>\n<div class=\"grid\">\n"
        h += charts.figures(in: .timeline)
        if m.errorSeries.isEmpty {
            h += "<figure class=\"chart\"><figcaption><span class=\"chart-title\">Errors</span>"
                + "<span class=\"chart-sub\">per second, by kind and source</span></figcaption>"
                + "<div class=\"plot none\">No errors during the run.</div></figure>\n"
        }
        h += "</div></section>\n"
        return h
    }

    /// Each trend's distribution over the whole run.
    static func distributionSection(_ m: MetricsSnapshot, _ charts: Charts) -> String {
        var h = ""
        h += "<section id=\"distributions\"><h2>Latency distributions</h2>\n"
        if m.trends.values.allSatisfy({ $0.count == 0 }) {
            h += "<p class=\"empty\">No trend was recorded.</p>\n"
        } else {
            h += "<p class=\"lead\">Samples of each trend over the whole run, on a logarithmic scale.</p>\n<div class=\"grid\">\n"
            h += charts.figures(in: .distributions)
            h += "</div>\n"
        }
        h += "</section>\n"
        return h
    }

    /// The load generator's own CPU, memory and descriptors.
    static func generatorSection(_ r: RunResult, _ charts: Charts) -> String {
        var h = ""
        h += "<section id=\"generator\"><h2>Load generator</h2>\n"
        if r.generator.isEmpty {
            h += "<p class=\"empty\">No samples of the generator's own resource use.</p>\n"
        } else {
            h += "<p class=\"lead\">The load generator's own use, so a saturated client can be told from a saturated server"
                + (ConsoleSummary.GeneratorPeak(r)?.cpuTime.map { ". CPU time over the run: \($0)" } ?? "") + ".</p>\n"
            h += "<div class=\"grid three\">\n" + charts.figures(in: .generator) + "</div>\n"
        }
        h += "</section>\n"
        return h
    }

    /// No fetch of any kind: only the page's own inline style and script run.
    static let contentSecurityPolicy =
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

    // MARK: Parts

    struct KPI { var label: String; var value: String; var note: String }

    static func kpis(_ r: RunResult) -> [KPI] {
        let m = r.metrics
        var out: [KPI] = []
        let busiest = m.counters.filter { $0.value > 0 && !MetricsSnapshot.bookkeepingCounters.contains($0.key)
            && $0.key != Threshold.operationsCounter && !$0.key.hasPrefix("data_") && !$0.key.contains("{") }
            .max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key
        if let name = m.counters[BuiltInMetrics.httpReqs] != nil ? BuiltInMetrics.httpReqs : busiest, let v = m.counters[name] {
            let rate = r.durationSeconds > 0 ? Double(v) / r.durationSeconds : 0
            out.append(KPI(label: name, value: Fmt.int(v), note: "\(Fmt.short3(rate)) per second"))
        }
        let err = ErrorRateText(m)
        out.append(KPI(label: "error rate", value: err.rate.map(Fmt.percent) ?? "–",
                       note: err.rate == nil ? err.sentence : "\(Fmt.int(err.failed)) failed, \(Fmt.int(err.succeeded)) succeeded (operations)"))
        if let key = ConsoleSummary.keyTrends(m, outcomes: []).first, let hist = m.trends[key] {
            let t = TrendSummary(hist)
            out.append(KPI(label: "\(key) p95", value: "\(Fmt.short3(t.p95)) ms", note: "p50 \(Fmt.short3(t.med)) · p99 \(Fmt.short3(t.p99)) ms"))
        }
        if let h = m.trends[RunnerMetrics.iterationLateness], h.count > 0 {
            // An open-model run: its schedule, as the console's `schedule` line says it.
            func ms(_ micros: Int64) -> String { Fmt.short3(Double(micros) / 1000) }
            out.append(KPI(label: "iterations dropped", value: Fmt.int(m.counter(RunnerMetrics.iterationsDropped)),
                           note: "no free user · \(Fmt.int(m.counter(RunnerMetrics.iterationsLate))) late · start lateness "
                               + "p50 \(ms(h.value(atPercentile: 50))) · p99 \(ms(h.value(atPercentile: 99))) ms"))
        }
        if let held = HeldConnections(r) {
            out.append(KPI(label: "connections held", value: Fmt.percent(held.ratio),
                           note: "\(Fmt.int(held.held)) of \(Fmt.int(held.planned)) planned" + (held.connectedLater > 0 ? ", \(held.connectedLater) late" : "")))
        } else {
            out.append(KPI(label: "peak users", value: Fmt.int(Int64(r.peakActiveUsers)), note: "\(Fmt.int(Int64(r.workers))) planned"))
        }
        return out
    }

    static func statistics(_ r: RunResult) -> String {
        let m = r.metrics
        var h = ""
        let trends = m.trends.filter { $0.value.count > 0 }
        if !trends.isEmpty {
            h += "<h3>Trends <span class=\"unit\">ms</span></h3>\n<table class=\"stats\" id=\"trend-table\"><thead><tr><th>Metric</th>"
                + ["avg", "min", "med", "p90", "p95", "p99", "max", "count"].map { "<th class=\"num\">\($0)</th>" }.joined()
                + "</tr></thead><tbody>\n"
            for (name, tagged) in MetricName.grouped(Array(trends.keys)) {
                if trends[name] == nil {   // only tagged variants were recorded: a heading row
                    h += "<tr><td colspan=\"9\"><span class=\"metric\">\(e(name))</span></td></tr>\n"
                }
                for (i, full) in ([name] + tagged).enumerated() {
                    guard let hist = trends[full] else { continue }
                    let t = TrendSummary(hist)
                    let label = i == 0 ? "<span class=\"metric\">\(e(full))</span>"
                        : "<span class=\"tag\">\(e(MetricName(full).tagText))</span>"
                    h += "<tr\(i == 0 ? "" : " class=\"sub\"")><td>\(label)</td>"
                        + [t.avg, t.min, t.med, t.p90, t.p95, t.p99, t.max].map { "<td class=\"num\">\(Fmt.short3($0))</td>" }.joined()
                        + "<td class=\"num\">\(Fmt.int(t.count))</td></tr>\n"
                }
            }
            h += "</tbody></table>\n"
        }
        var rows: [(String, String, String)] = []
        for (name, v) in m.counters.sorted(by: { $0.key < $1.key }) {
            rows.append((name, Fmt.int(v), Self.counterNote(name, v, seconds: r.durationSeconds)))
        }
        for (name, t) in m.rates.sorted(by: { $0.key < $1.key }) {
            rows.append((name, Fmt.percent(t.value), "\(Fmt.int(t.hits)) of \(Fmt.int(t.total))"))
        }
        for (name, v) in m.gauges.sorted(by: { $0.key < $1.key }) { rows.append((name, Fmt.short(v), "last value")) }
        if !rows.isEmpty {
            h += "<h3>Counters, rates and gauges</h3>\n<table class=\"stats\"><thead><tr><th>Metric</th><th class=\"num\">Value</th>"
                + "<th class=\"num\"></th></tr></thead><tbody>\n"
            for (name, value, note) in rows {
                h += "<tr><td><span class=\"metric\">\(e(name))</span></td><td class=\"num\">\(e(value))</td><td class=\"num note\">\(e(note))</td></tr>\n"
            }
            h += "</tbody></table>\n"
        }
        if let held = HeldConnections(r) {
            h += "<p class=\"note\"><strong>Connections held</strong> \(e(held.sentence))." + (held.lateNote.map { " " + e($0) + "." } ?? "") + "</p>\n"
        }
        return h.isEmpty ? "<p class=\"empty\">Nothing was measured.</p>\n" : h
    }

    static func errors(_ r: RunResult) -> String {
        let m = r.metrics
        var h = "<p class=\"lead\">Error rate \(e(ErrorRateText(m).sentence)).</p>\n"
        guard !m.errors.isEmpty else { return h + "<p class=\"empty\">No errors.</p>\n" }
        let total = Double(Swift.max(1, m.totalErrors))
        h += "<table class=\"errors\" id=\"error-table\"><thead><tr><th>Kind</th><th>Source</th><th class=\"num\">Count</th>"
            + "<th class=\"num\">Share</th><th>First examples</th></tr></thead><tbody>\n"
        for (kind, t) in m.errorsByCount {
            h += "<tr><td><span class=\"metric\">\(e(kind))</span></td><td><span class=\"source \(t.source.rawValue)\">\(e(t.source.rawValue))</span></td>"
                + "<td class=\"num\">\(Fmt.int(t.count))</td><td class=\"num\">\(Fmt.percent(Double(t.count) / total))</td><td><ul class=\"examples\">"
                + t.examples.map { "<li>\(e($0))</li>" }.joined() + "</ul></td></tr>\n"
        }
        return h + "</tbody></table>\n"
    }

    static func environment(_ r: RunResult) -> String {
        let env = Secrets.masked(r.environment)
        guard !env.isEmpty else { return "<p class=\"empty\">No facts recorded.</p>\n" }
        var h = "<table class=\"env\"><tbody>\n"
        for (k, v) in env.sorted(by: { $0.key < $1.key }) {
            h += "<tr><th>\(e(k))</th><td>\(e(v))</td></tr>\n"
        }
        return h + "</tbody></table>\n"
    }

    static func startText(_ ms: Int64) -> String {
        let name = RunHistory.folderName(startedAtMillis: ms)   // 2026-11-23_02-00-00.123Z
        let parts = name.split(separator: "_")
        guard parts.count == 2 else { return name }
        return "\(parts[0]) \(parts[1].prefix(8).replacingOccurrences(of: "-", with: ":")) UTC"
    }

    /// HTML-escapes text.
    static func e(_ s: String) -> String { Markup.escape(s) }
}

/// A metric name with an optional tag suffix, k6 style: `http_req_duration{name:/items/{id}}`
/// has base `http_req_duration` and tags `name:/items/{id}`.
struct MetricName {
    let base: String
    /// The text between the outer braces, nil for an untagged name.
    let tagText: String

    init(_ full: String) {
        if let open = full.firstIndex(of: "{"), full.hasSuffix("}"), open != full.startIndex {
            base = String(full[..<open])
            tagText = String(full[full.index(after: open)..<full.index(before: full.endIndex)])
        } else {
            base = full
            tagText = ""
        }
    }

    /// The tags as (key, value) pairs (`name:/a,status:200` → name=/a, status=200); a part
    /// without `:` continues the previous value (a value with a comma).
    var tags: [(key: String, value: String)] {
        var out: [(String, String)] = []
        for part in tagText.split(separator: ",", omittingEmptySubsequences: false) {
            if let colon = part.firstIndex(of: ":") {
                out.append((String(part[..<colon]), String(part[part.index(after: colon)...])))
            } else if !out.isEmpty {
                out[out.count - 1].1 += "," + part
            } else if !part.isEmpty {
                out.append(("tag", String(part)))
            }
        }
        return out
    }

    /// Names grouped under their base, bases sorted: (base, its tagged names sorted).
    static func grouped(_ names: [String]) -> [(base: String, tagged: [String])] {
        var groups: [String: [String]] = [:]
        for n in names { groups[MetricName(n).base, default: []].append(n) }
        return groups.keys.sorted().map { base in (base, groups[base]!.filter { $0 != base }.sorted()) }
    }
}

extension HTMLReport {
    /// The note beside a counter: its rate, in bytes for the byte counters; what it means for
    /// the runner's own counts, whose rate says nothing.
    static func counterNote(_ name: String, _ v: Int64, seconds: Double) -> String {
        switch name {
        case RunnerMetrics.errorsAfterCancel: return "thrown after the stop cut their users (not failures)"
        case RunnerMetrics.iterationsInterrupted: return "cut by the stop before ending (not failures)"
        case BuiltInMetrics.wsSessionsLeftOpen: return "dropped open by the script; closed by the runner (1001)"
        case BuiltInMetrics.wsSessionsClosedByServer: return "ended by the server (close frame, drop or violation)"
        case RunnerMetrics.ticksMissed: return "every() ticks skipped: the body overran its period"
        default: break
        }
        guard seconds > 0 else { return "" }
        if name == BuiltInMetrics.dataSent || name == BuiltInMetrics.dataReceived {
            return "bytes · \(Fmt.bytes(Int64(Double(v) / seconds)))/s"
        }
        return "\(Fmt.short(Double(v) / seconds))/s"
    }
}
