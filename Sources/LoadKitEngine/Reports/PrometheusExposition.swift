import LoadKitTransport
import LoadKitProtocols

/// Prometheus text exposition (format 0.0.4) of a snapshot. Names are `<prefix>_…` — `loadkit_`
/// by default, seed 001's `stomp_load_test_` for the STOMP chat scenario (``Options/stompChat``) —
/// and every sample carries the ``Options/labels`` (the run adds `test` and `run_id`, see
/// ``Options/labeled(test:runID:)``), so several tests and runs share one Prometheus:
/// - counters `<prefix>_<name>_total` (`http_reqs`, `iterations`, `messages_sent`, …) and
///   `<prefix>_errors_total` (all errors; per kind in `<prefix>_errors_by_kind_total{kind,source}`);
/// - gauges `<prefix>_<name>` (`vus`, `connected`, `active_connections`), rates `<prefix>_<name>_rate`
///   (`http_req_failed_rate`, `connections_held_rate`), `<prefix>_avg_connection_duration_seconds`
///   (from the trend `connection_duration` or `websocket_duration` unless a gauge of that name exists);
/// - one histogram per trend: `<prefix>_<name>_ms` (`http_req_duration`, `message_latency`) or
///   `<prefix>_<name>_seconds` for ``Options/secondsTrends``, with cumulative `_bucket{le=…}`,
///   `_sum` and `_count`.
/// A metric with tags (`http_req_duration{name:/items/{id}}`) is exported under its base name with
/// the tags as labels (`name="/items/{id}"`; a tag named like another label gets a `tag_` prefix).
package enum PrometheusExposition {
    /// Naming, labels and buckets.
    public struct Options: Sendable, Hashable {
        /// Metric name prefix (default `loadkit`).
        public var prefix: String
        /// Labels on every sample (`test`, `run_id`); none by default.
        public var labels: [String: String]
        /// Trends exported in seconds rather than milliseconds.
        public var secondsTrends: Set<String>
        /// Upper bounds of millisecond histograms.
        public var millisecondBuckets: [Double]
        /// Upper bounds of second histograms.
        public var secondBuckets: [Double]

        /// Creates options.
        public init(prefix: String = "loadkit", labels: [String: String] = [:],
                    secondsTrends: Set<String> = ["websocket_duration", "connection_duration"],
                    millisecondBuckets: [Double] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000],
                    secondBuckets: [Double] = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600]) {
            self.prefix = prefix; self.labels = labels; self.secondsTrends = secondsTrends
            self.millisecondBuckets = millisecondBuckets; self.secondBuckets = secondBuckets
        }

        /// Seed 001's names for the STOMP chat scenario: `stomp_load_test_…`.
        public static var stompChat: Options { Options(prefix: "stomp_load_test") }

        /// These options with the `test` and `run_id` labels set.
        public func labeled(test: String, runID: String) -> Options {
            var o = self
            o.labels["test"] = test
            o.labels["run_id"] = runID
            return o
        }
    }

    /// The content type to serve the exposition with.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Labels the exporter itself uses; a tag with one of these names is renamed `tag_<name>`.
    static let reservedLabels: Set<String> = ["le", "test", "run_id", "kind", "source", "job", "instance"]

    /// Renders `snapshot` as exposition text (ends with a newline).
    public static func render(_ snapshot: MetricsSnapshot, options: Options = Options()) -> String {
        var f = Families(options)
        let p = f.prefix
        for (name, v) in snapshot.counters where name != Threshold.errorsMetric {
            let (base, tags) = f.tagLabels(name)
            f.sample("\(p)_\(sanitize(base))_total", "counter", "Total \(base).", tags, String(v))
        }
        f.sample("\(p)_errors_total", "counter", "Total errors of every kind.", [], String(snapshot.totalErrors))
        for (kind, t) in snapshot.errors {
            f.sample("\(p)_errors_by_kind_total", "counter", "Errors by kind and source.",
                     [("kind", kind), ("source", t.source.rawValue)], String(t.count))
        }
        var gauges = snapshot.gauges
        if gauges["avg_connection_duration_seconds"] == nil,
           let h = snapshot.trends["connection_duration"] ?? snapshot.trends["websocket_duration"], h.count > 0 {
            gauges["avg_connection_duration_seconds"] = h.mean / 1_000_000
        }
        for (name, v) in gauges {
            let (base, tags) = f.tagLabels(name)
            f.sample("\(p)_\(sanitize(base))", "gauge", "Current \(base).", tags, number(v))
        }
        for (name, t) in snapshot.rates {
            let (base, tags) = f.tagLabels(name)
            f.sample("\(p)_\(sanitize(base))_rate", "gauge", "Share of \(base) samples that were hits (0..1).", tags, number(t.value))
        }
        for (name, h) in snapshot.trends { f.histogram(name, h) }
        return f.text
    }

    /// Metric families by name, each with its type, help and sample lines (sorted when written).
    private struct Families {
        let options: Options
        let prefix: String
        let common: [(String, String)]
        var families: [String: (type: String, help: String, lines: [String])] = [:]

        init(_ options: Options) {
            self.options = options
            prefix = PrometheusExposition.sanitize(options.prefix)
            common = options.labels.sorted { $0.key < $1.key }.map { (PrometheusExposition.sanitizeLabel($0.key), $0.value) }
        }

        /// `{a="x",b="y"}` of the common labels, `labels`, then `extra` (empty when none).
        func labelText(_ labels: [(String, String)], _ extra: [(String, String)] = []) -> String {
            let all = common + labels + extra
            return all.isEmpty ? "" : "{" + all.map { "\($0.0)=\"\(PrometheusExposition.escape($0.1))\"" }.joined(separator: ",") + "}"
        }

        mutating func sample(_ family: String, _ type: String, _ help: String, _ labels: [(String, String)], _ value: String) {
            families[family, default: (type, help, [])].lines.append("\(family)\(labelText(labels)) \(value)")
        }

        /// A metric's base name and its tags as labels (a reserved or common label name gets `tag_`).
        func tagLabels(_ name: String) -> (base: String, labels: [(String, String)]) {
            let n = MetricName(name)
            return (n.base, n.tags.map { t in
                let key = PrometheusExposition.sanitizeLabel(t.key)
                return (PrometheusExposition.reservedLabels.contains(key) || options.labels[key] != nil ? "tag_" + key : key, t.value)
            })
        }

        /// A trend as a histogram: cumulative buckets, sum and count.
        mutating func histogram(_ name: String, _ h: Histogram) {
            let (base, tags) = tagLabels(name)
            let seconds = options.secondsTrends.contains(base)
            let scale = seconds ? 1_000_000.0 : 1_000.0  // µs per unit
            let family = "\(prefix)_\(PrometheusExposition.sanitize(base))_\(seconds ? "seconds" : "ms")"
            let help = "Distribution of \(base) in \(seconds ? "seconds" : "milliseconds")."
            // Buckets, sum and count of one series stay together (sorted by their labels below).
            var lines: [String] = []
            for le in (seconds ? options.secondBuckets : options.millisecondBuckets).sorted() {
                lines.append("\(family)_bucket\(labelText(tags, [("le", PrometheusExposition.number(le))])) \(h.count(atOrBelow: Int64(le * scale)))")
            }
            lines.append("\(family)_bucket\(labelText(tags, [("le", "+Inf")])) \(h.count)")
            lines.append("\(family)_sum\(labelText(tags)) \(PrometheusExposition.number(Double(h.sum) / scale))")
            lines.append("\(family)_count\(labelText(tags)) \(h.count)")
            families[family, default: ("histogram", help, [])].lines.append(lines.joined(separator: "\n"))
        }

        /// The exposition text, families and their lines sorted.
        var text: String {
            var out = ""
            for (name, f) in families.sorted(by: { $0.key < $1.key }) {
                out += "# HELP \(name) \(f.help)\n# TYPE \(name) \(f.type)\n"
                for line in f.lines.sorted() { out += line + "\n" }
            }
            return out
        }
    }

    /// A valid label name: `[a-zA-Z_][a-zA-Z0-9_]*` (others become `_`).
    static func sanitizeLabel(_ s: String) -> String {
        sanitize(s).replacingOccurrences(of: ":", with: "_")
    }

    /// A valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*` (others become `_`).
    public static func sanitize(_ s: String) -> String {
        var out = String(s.map { c -> Character in
            (c.isASCII && (c.isLetter || c.isNumber)) || c == "_" || c == ":" ? c : "_"
        })
        if let f = out.first, f.isNumber { out = "_" + out }
        return out.isEmpty ? "_" : out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}

extension String {
    fileprivate func replacingOccurrences(of a: String, with b: String) -> String {
        split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }
}
