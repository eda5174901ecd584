import Foundation
import LoadKitTransport
import LoadKitProtocols

/// Two runs of the same test side by side, metric by metric — the library side of
/// `loadkit compare BASE NEW`: a Markdown table with each change, and the regressions past a
/// limit (`--max-regression 10%`, with per-metric overrides) that make the command fail.
///
/// Judged (a change in the worse direction past the limit is a regression): trend avg, p50, p90,
/// p95 and p99 (higher is worse), the error rate (higher is worse) and every rate (higher is worse
/// for names with `fail`, `error`, `timeout`, `drop`, `lost`; lower is worse otherwise, as for
/// `connections_held` or `cache_hit`). Shown but not judged unless an override names them:
/// trend max (one sample), counters per second, the generator's peaks. Each judged row also says
/// whether its change lies inside the run-to-run spread estimated from the two runs' per-second
/// data (``RunResult/withinSpread(of:metric:value:baseline:baselineValue:)``).
package struct RunComparison: Sendable {
    /// One metric statistic in both runs.
    public struct Row: Sendable {
        /// Metric name.
        public var metric: String
        /// Statistic (`p(95)`, `avg`, `rate`, `per_second`, `max`).
        public var statistic: Statistic
        /// Unit of `base` and `new`.
        public var unit: ThresholdUnit
        /// Value in the baseline run, nil when it had none.
        public var base: Double?
        /// Value in the new run, nil when it has none.
        public var new: Double?
        /// Whether a higher value is worse.
        public var higherIsWorse: Bool
        /// The regression limit applied (fraction), nil when the row is not judged.
        public var limit: Double?
        /// The run-to-run spread as a fraction of `base`, and whether the change lies inside it.
        public var spread: (inside: Bool, relative: Double)?

        /// (new − base) ÷ base; +∞ from a zero baseline; nil when either is missing.
        public var change: Double? {
            guard let b = base, let n = new else { return nil }
            if b == 0 { return n == 0 ? 0 : (n > 0 ? .infinity : -.infinity) }
            return (n - b) / Swift.abs(b)
        }

        /// Whether the row changed for the worse by more than its limit.
        public var regressed: Bool {
            guard let limit, let c = change else { return false }
            return higherIsWorse ? c > limit : c < -limit
        }

        /// Whether it changed for the better by more than its limit.
        public var improved: Bool {
            guard let limit, let c = change else { return false }
            return higherIsWorse ? c < -limit : c > limit
        }

        /// `http_req_duration p(95)`.
        public var key: String { "\(metric) \(statistic)" }
    }

    /// Every row, in table order.
    public var rows: [Row]
    /// The rows that regressed past their limit.
    public var regressions: [Row] { rows.filter(\.regressed) }

    /// A per-metric limit: `off` (not judged) or a fraction.
    public enum Limit: Sendable, Equatable {
        /// Not judged.
        case off
        /// At most this fraction worse.
        case fraction(Double)
    }

    /// Compares `new` with `base`. `maxRegression` (a fraction) applies to every judged row;
    /// `overrides` map `metric` or `metric statistic` (`http_req_duration p(99)`) to another limit
    /// (the more specific key wins; a base metric's override covers its tagged variants), and may
    /// judge rows that are shown only by default.
    public static func compare(base: RunResult, new: RunResult, maxRegression: Double,
                               overrides: [String: Limit] = [:]) -> RunComparison {
        var rows: [Row] = []
        func add(_ metric: String, _ statistic: Statistic, _ unit: ThresholdUnit, higherIsWorse: Bool, judged: Bool,
                 _ value: (RunResult) -> Double?) {
            var row = Row(metric: metric, statistic: statistic, unit: unit, base: value(base), new: value(new),
                          higherIsWorse: higherIsWorse, limit: nil, spread: nil)
            let baseName = MetricName(metric).base   // an override of a metric covers its tagged variants
            let specific = overrides["\(metric) \(statistic)"] ?? overrides[metric]
                ?? overrides["\(baseName) \(statistic)"] ?? overrides[baseName]
            switch specific {
            case .off?: row.limit = nil
            case .fraction(let f)?: row.limit = f
            case nil: row.limit = judged ? maxRegression : nil
            }
            if let b = row.base, let n = row.new {
                row.spread = new.withinSpread(of: statistic, metric: metric, value: n, baseline: base, baselineValue: b)
            }
            rows.append(row)
        }
        func threshold(_ metric: String, _ s: Statistic, _ unit: ThresholdUnit) -> (RunResult) -> Double? {
            let t = Threshold(metric: metric, statistic: s, comparison: .below, limit: 0, unit: unit)
            return { r in
                if s == .perSecond, r.metrics.counters[metric] == nil { return nil }
                return t.actualValue(in: r.metrics, durationSeconds: r.durationSeconds)
            }
        }
        let trends = Set(base.metrics.trends.filter { $0.value.count > 0 }.keys)
            .union(new.metrics.trends.filter { $0.value.count > 0 }.keys)
        for group in MetricName.grouped(Array(trends)) {
            for name in [group.base] + group.tagged where trends.contains(name) {
                for s in [Statistic.avg, .percentile(50), .percentile(90), .percentile(95), .percentile(99)] {
                    add(name, s, .duration, higherIsWorse: true, judged: true, threshold(name, s, .duration))
                }
                add(name, .max, .duration, higherIsWorse: true, judged: false, threshold(name, .max, .duration))
            }
        }
        add(Threshold.errorsMetric, .rate, .ratio, higherIsWorse: true, judged: true) { $0.metrics.errorRate ?? ($0.metrics.didWork ? 0 : nil) }
        for name in Set(base.metrics.rates.keys).union(new.metrics.rates.keys).sorted() {
            add(name, .rate, .ratio, higherIsWorse: badWhenHigh(name), judged: true, threshold(name, .rate, .ratio))
        }
        for name in Set(base.metrics.counters.keys).union(new.metrics.counters.keys).sorted()
            where !MetricsSnapshot.bookkeepingCounters.contains(name) {
            add(name, .perSecond, .perSecond, higherIsWorse: badWhenHigh(name), judged: false, threshold(name, .perSecond, .perSecond))
        }
        add("generator_cpu", .max, .plain, higherIsWorse: true, judged: false) { r in r.generator.map(\.cpuPercent).max() }
        // The generator's cost of each request (or iteration) — comparable only in the same unit.
        if let unit = ConsoleSummary.GeneratorPeak.cpuCost(new)?.unit {
            add("generator_cpu_us_per_\(unit)", .avg, .plain, higherIsWorse: true, judged: false) { r in
                ConsoleSummary.GeneratorPeak.cpuCost(r).flatMap { $0.unit == unit ? $0.micros : nil }
            }
        }
        add("generator_rss_mb", .max, .plain, higherIsWorse: true, judged: false) { r in
            r.generator.map(\.rssBytes).max().map { Double($0) / 1_048_576 }
        }
        return RunComparison(rows: rows)
    }

    /// Whether a higher value of a rate or counter named `name` is worse.
    static func badWhenHigh(_ name: String) -> Bool {
        if let declared = declaredPolarity(of: name) { return declared == .lowerIsBetter }
        let n = name.lowercased()
        return ["fail", "error", "timeout", "drop", "lost", "retr", "reconnect", "late", "missed"].contains { n.contains($0) }
    }

    /// The Markdown table: one row per metric statistic, then a verdict line.
    public func markdown(baseLabel: String, newLabel: String) -> String {
        func cell(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
        func value(_ v: Double?, _ unit: ThresholdUnit) -> String { v.map { Threshold.format($0, unit) } ?? "–" }
        var out = "| metric | statistic | \(cell(baseLabel)) | \(cell(newLabel)) | change | spread | verdict |\n"
        out += "|---|---|---:|---:|---:|---:|---|\n"
        for r in rows {
            let change = r.change.map { c in c.isFinite ? Threshold.signedPercent(c) : (c > 0 ? "new" : "gone") } ?? "–"
            let spread = r.spread.map { "±\(Threshold.trim($0.relative * 100, decimals: 1)) %" } ?? ""
            var verdict: String
            if r.base == nil || r.new == nil {
                verdict = r.base == nil ? "only in \(cell(newLabel))" : "only in \(cell(baseLabel))"
            } else if r.regressed {
                verdict = "✗ worse by more than \(Threshold.trim(r.limit! * 100)) %"
                if r.spread?.inside == true { verdict += " (inside the run-to-run spread: rerun to confirm)" }
            } else if r.improved {
                verdict = "better"
            } else if r.limit != nil {
                verdict = "✓" + (r.spread?.inside == true && r.change != 0 ? " (inside the spread)" : "")
            } else {
                verdict = ""
            }
            out += "| \(cell(r.metric)) | \(r.statistic) | \(value(r.base, r.unit)) | \(value(r.new, r.unit)) | \(change) | \(spread) | \(verdict) |\n"
        }
        let n = regressions.count
        out += "\n" + (n == 0 ? "No metric regressed past its limit (\(rows.filter { $0.limit != nil }.count) judged)."
            : "\(n) metric\(n == 1 ? "" : "s") regressed past the limit: " + regressions.map(\.key).joined(separator: ", ") + ".") + "\n"
        return out
    }

    /// Parses a limit: `10%`, `10 %`, `0.1`, or `off`.
    public static func parseLimit(_ text: String) -> Limit? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "off" || t == "none" { return .off }
        if t.hasSuffix("%"), let v = Double(t.dropLast().trimmingCharacters(in: .whitespaces)), v >= 0, v.isFinite { return .fraction(v / 100) }
        if let v = Double(t), v >= 0, v.isFinite { return .fraction(v) }
        return nil
    }
}

extension RunResult {
    /// Finds one run's result at `path`: a `result.json`, a run folder, a test's history folder
    /// (its `latest`), or a report root holding one test (or `test`'s folder). Returns the
    /// result and the file it came from.
    public static func locate(_ path: String, test: String? = nil) throws -> (RunResult, String) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw ReportError(message: "\(path): no such file or folder") }
        if !isDir.boolValue { return (try load(from: path), path) }
        let direct = (path as NSString).appendingPathComponent("result.json")
        if fm.fileExists(atPath: direct) { return (try load(from: direct), direct) }
        if let latest = RunHistory.latest(in: path) {
            let file = (latest as NSString).appendingPathComponent("result.json")
            return (try load(from: file), file)
        }
        let tests = ((try? fm.contentsOfDirectory(atPath: path)) ?? []).sorted()
            .filter { RunHistory.latest(in: (path as NSString).appendingPathComponent($0)) != nil }
        if let test {
            let dir = ReportWriter(root: path).testDirectory(for: test)
            guard RunHistory.latest(in: dir) != nil else {
                throw ReportError(message: "\(path): no runs of test '\(test)' (tests there: \(tests.isEmpty ? "none" : tests.joined(separator: ", ")))")
            }
            return try locate(dir)
        }
        guard tests.count == 1 else {
            throw ReportError(message: tests.isEmpty
                ? "\(path): no result.json, run folder or test folder with a 'latest' run"
                : "\(path) holds several tests (\(tests.joined(separator: ", "))): name one with --test or a folder")
        }
        return try locate((path as NSString).appendingPathComponent(tests[0]))
    }
}
