import LoadKitTransport
import LoadKitProtocols

/// SLA thresholds from an environment variable in k6's threshold syntax, so a nightly job can
/// tighten, loosen or add limits without a code change:
///
/// ```sh
/// LOADKIT_SLA='http_req_duration{name:/api/items}: p(95)<200ms, p(99)<500ms; http_req_failed: rate<0.01; errors: rate<1%'
/// ```
///
/// Entries are separated by `;` or new lines: `metric[{tag}]: condition[, condition…]`, a condition
/// being `statistic operator value` with the statistics `p(N)`, `avg`, `min`, `max`, `med`, `count`,
/// `rate`, `per_second` and the operators `<`, `<=`, `>`, `>=`. Values of trend statistics are
/// durations (`200ms`, `1.5s`, `250us`; a bare number is milliseconds, as in k6); rates are a
/// fraction (`0.01`) or a percentage (`1%`); `errors: rate<…` is the error rate.
extension SLA {
    /// The variable read by ``LoadTest/run(_:)``.
    public static let environmentVariable = "LOADKIT_SLA"

    /// Parses thresholds written in k6's syntax (see the type's overview). Throws a ``ConfigError``
    /// naming `variable` and the entry it could not read.
    public static func parse(_ text: String, variable: String = environmentVariable) throws -> [Threshold] {
        var out: [Threshold] = []
        for rawEntry in text.split(whereSeparator: { $0 == ";" || $0 == "\n" }) {
            let entry = rawEntry.lkTrimmed(" \t\r")
            if entry.isEmpty { continue }
            // `expected` completes "… is not valid: expected …".
            func bad(_ expected: String) -> ConfigError {
                ConfigError(variable: variable, value: entry,
                            expected: "\(expected) — entries like `http_req_duration{name:/api}: p(95)<200ms, avg<100ms` "
                                + "or `errors: rate<0.01` (the error rate), separated by `;`")
            }
            // The metric may carry a `{tag}` containing ':' — split after the closing brace.
            let searchFrom = entry.firstIndex(of: "}") ?? entry.startIndex
            guard let colon = entry[searchFrom...].firstIndex(of: ":") else { throw bad("a `:` after the metric name") }
            let metric = entry[..<colon].lkTrimmed(" \t")
            guard !metric.isEmpty, !metric.contains(" ") else { throw bad("a metric name without spaces") }
            if metric.contains("{") != metric.hasSuffix("}") { throw bad("a tag written `metric{name:value}`") }
            let conditions = entry[entry.index(after: colon)...].split(separator: ",")
            guard !conditions.isEmpty else { throw bad("at least one condition") }
            for c in conditions {
                out.append(try condition(c.lkTrimmed(" \t"), metric: metric, bad))
            }
        }
        return out
    }

    private static func condition(_ text: String, metric: String, _ bad: (String) -> ConfigError) throws -> Threshold {
        let ops: [(String, Comparison)] = [("<=", .atMost), (">=", .atLeast), ("<", .below), (">", .above)]
        guard let (symbol, comparison) = ops.first(where: { text.contains($0.0) }),
              let r = text.range(of: symbol) else { throw bad("a condition `statistic<value` in `\(text)`") }
        let statText = text[..<r.lowerBound].lkTrimmed(" ")
        let valueText = text[r.upperBound...].lkTrimmed(" ").lowercased()
        guard let statistic = Statistic(parsing: statText) else {
            throw bad("a statistic p(N), avg, min, max, med, count, rate or per_second, not `\(statText)`")
        }
        let limit: Double, unit: ThresholdUnit
        switch statistic {
        case .percentile, .avg, .min, .max, .med:
            guard let d = Settings.parseDuration(valueText), d >= .zero else { throw bad("a duration such as 200ms, not `\(valueText)`") }
            limit = SLA.micros(d); unit = .duration
        case .rate:
            let percent = valueText.hasSuffix("%")
            guard let v = Double(percent ? String(valueText.dropLast()) : valueText), v.isFinite,
                  (0...(percent ? 100 : 1)).contains(v) else { throw bad("a rate such as 0.01 or 1%, not `\(valueText)`") }
            limit = percent ? v / 100 : v; unit = .ratio
        case .count:
            guard let v = Double(valueText), v.isFinite, v >= 0 else { throw bad("a count, not `\(valueText)`") }
            limit = v; unit = .plain
        case .perSecond:
            guard let v = Double(valueText.hasSuffix("/s") ? String(valueText.dropLast(2)) : valueText), v.isFinite, v >= 0 else {
                throw bad("a rate per second, not `\(valueText)`")
            }
            limit = v; unit = .perSecond
        }
        return Threshold(metric: metric, statistic: statistic, comparison: comparison, limit: limit, unit: unit)
    }

    /// `thresholds` with `overrides` applied: an override replaces the thresholds on the same
    /// metric and statistic, the others are added.
    public static func applying(_ overrides: [Threshold], to thresholds: [Threshold]) -> [Threshold] {
        guard !overrides.isEmpty else { return thresholds }
        let replaced = Set(overrides.map { "\($0.metric) \($0.statistic)" })
        return thresholds.filter { !replaced.contains("\($0.metric) \($0.statistic)") } + overrides
    }
}
