/// Prometheus text exposition (format 0.0.4) of a snapshot, with the seed's names:
/// counters `<prefix>_<name>_total` (`messages_sent`, `messages_received`, `connection_retries`)
/// and `<prefix>_errors_total` (all errors; per kind in `<prefix>_errors_by_kind_total{kind,source}`),
/// gauges `<prefix>_<name>` (`active_connections`, `active_reconnections`), rates
/// `<prefix>_<name>_rate`, `<prefix>_avg_connection_duration_seconds` (from the trend
/// `connection_duration` or `websocket_duration` unless a gauge of that name exists), and one
/// histogram per trend: `<prefix>_<name>_ms` (`message_latency`, `websocket_connect`,
/// `reconnection_time`) or `<prefix>_<name>_seconds` for ``Options/secondsTrends``
/// (`websocket_duration`), with cumulative `_bucket{le=…}`, `_sum` and `_count`.
public enum PrometheusExposition {
    /// Naming and buckets.
    public struct Options: Sendable, Hashable {
        /// Metric name prefix (default `stomp_load_test`, seed 001's).
        public var prefix: String
        /// Trends exported in seconds rather than milliseconds.
        public var secondsTrends: Set<String>
        /// Upper bounds of millisecond histograms.
        public var millisecondBuckets: [Double]
        /// Upper bounds of second histograms.
        public var secondBuckets: [Double]

        /// Creates options.
        public init(prefix: String = "stomp_load_test",
                    secondsTrends: Set<String> = ["websocket_duration", "connection_duration"],
                    millisecondBuckets: [Double] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000],
                    secondBuckets: [Double] = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600]) {
            self.prefix = prefix; self.secondsTrends = secondsTrends
            self.millisecondBuckets = millisecondBuckets; self.secondBuckets = secondBuckets
        }
    }

    /// The content type to serve the exposition with.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Renders `snapshot` as exposition text (ends with a newline).
    public static func render(_ snapshot: MetricsSnapshot, options: Options = Options()) -> String {
        let p = sanitize(options.prefix)
        var out = ""
        func head(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        for (name, v) in snapshot.counters.sorted(by: { $0.key < $1.key }) where name != Threshold.errorsMetric {
            let n = "\(p)_\(sanitize(name))_total"
            head(n, "counter", "Total \(name).")
            out += "\(n) \(v)\n"
        }
        let e = "\(p)_errors_total"
        head(e, "counter", "Total errors of every kind.")
        out += "\(e) \(snapshot.totalErrors)\n"
        if !snapshot.errors.isEmpty {
            let k = "\(p)_errors_by_kind_total"
            head(k, "counter", "Errors by kind and source.")
            for (kind, t) in snapshot.errors.sorted(by: { $0.key < $1.key }) {
                out += "\(k){kind=\"\(escape(kind))\",source=\"\(t.source.rawValue)\"} \(t.count)\n"
            }
        }
        var gauges = snapshot.gauges
        if gauges["avg_connection_duration_seconds"] == nil,
           let h = snapshot.trends["connection_duration"] ?? snapshot.trends["websocket_duration"], h.count > 0 {
            gauges["avg_connection_duration_seconds"] = h.mean / 1_000_000
        }
        for (name, v) in gauges.sorted(by: { $0.key < $1.key }) {
            let n = "\(p)_\(sanitize(name))"
            head(n, "gauge", "Current \(name).")
            out += "\(n) \(number(v))\n"
        }
        for (name, t) in snapshot.rates.sorted(by: { $0.key < $1.key }) {
            let n = "\(p)_\(sanitize(name))_rate"
            head(n, "gauge", "Share of \(name) samples that were hits (0..1).")
            out += "\(n) \(number(t.value))\n"
        }
        for (name, h) in snapshot.trends.sorted(by: { $0.key < $1.key }) {
            let seconds = options.secondsTrends.contains(name)
            let scale = seconds ? 1_000_000.0 : 1_000.0  // µs per unit
            let n = "\(p)_\(sanitize(name))_\(seconds ? "seconds" : "ms")"
            head(n, "histogram", "Distribution of \(name) in \(seconds ? "seconds" : "milliseconds").")
            for le in (seconds ? options.secondBuckets : options.millisecondBuckets).sorted() {
                out += "\(n)_bucket{le=\"\(number(le))\"} \(h.count(atOrBelow: Int64(le * scale)))\n"
            }
            out += "\(n)_bucket{le=\"+Inf\"} \(h.count)\n"
            out += "\(n)_sum \(number(Double(h.sum) / scale))\n"
            out += "\(n)_count \(h.count)\n"
        }
        return out
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
