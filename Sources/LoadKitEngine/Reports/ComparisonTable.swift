import Foundation
import LoadKitTransport
import LoadKitProtocols

/// A markdown table comparing several runs of the same scenario against different targets
/// (seed 003's small/medium/large table): rows = metrics, columns = targets.
package enum ComparisonTable {
    /// One row: a label and how to read its value from a result (nil → `N/A`).
    public struct Row: Sendable {
        /// Row label (`http_req_duration p(95) (ms)`).
        public var label: String
        /// Extracts the value.
        public var value: @Sendable (RunResult) -> Double?
        /// Decimals shown.
        public var decimals: Int

        /// Creates a row.
        public init(_ label: String, decimals: Int = 2, value: @escaping @Sendable (RunResult) -> Double?) {
            self.label = label; self.value = value; self.decimals = decimals
        }

        /// A trend's percentile in ms.
        public static func percentile(_ p: Double, _ trend: String) -> Row {
            Row("\(trend) p(\(Statistic.format(p))) (ms)") { r in
                r.metrics.trends[trend].flatMap { $0.count > 0 ? Double($0.value(atPercentile: p)) / 1000 : nil }
            }
        }

        /// A trend's mean in ms.
        public static func avg(_ trend: String) -> Row {
            Row("\(trend) avg (ms)") { r in r.metrics.trends[trend].flatMap { $0.count > 0 ? $0.mean / 1000 : nil } }
        }

        /// The error rate in percent.
        public static var errorRate: Row {
            Row("error rate (%)", decimals: 3) { r in r.metrics.errorRate.map { $0 * 100 } }
        }

        /// A rate in percent.
        public static func rate(_ name: String) -> Row {
            Row("\(name) (%)") { r in r.metrics.rates[name].flatMap { $0.total > 0 ? $0.value * 100 : nil } }
        }

        /// A counter per second of run time.
        public static func throughput(_ counter: String) -> Row {
            Row("\(counter) (/s)", decimals: 1) { r in
                guard let c = r.metrics.counters[counter], r.durationSeconds > 0 else { return nil }
                return Double(c) / r.durationSeconds
            }
        }

        /// A counter's total.
        public static func count(_ counter: String) -> Row {
            Row("\(counter) (count)", decimals: 0) { r in r.metrics.counters[counter].map(Double.init) }
        }
    }

    /// Default rows for a set of results: for each trend p95 and avg, the error rate, each rate,
    /// each counter's throughput.
    public static func defaultRows(for results: [RunResult]) -> [Row] {
        let trends = Set(results.flatMap { $0.metrics.trends.keys }).sorted()
        let rates = Set(results.flatMap { $0.metrics.rates.keys }).sorted()
        let counters = Set(results.flatMap { $0.metrics.counters.keys }).sorted()
        var rows: [Row] = []
        for t in trends { rows.append(.percentile(95, t)); rows.append(.avg(t)) }
        rows.append(.errorRate)
        for r in rates { rows.append(.rate(r)) }
        for c in counters { rows.append(.throughput(c)) }
        return rows
    }

    /// The markdown table. `columns` pairs a target label (`Small (0.5 CPU, 512 MB)`) with its result.
    public static func markdown(_ columns: [(label: String, result: RunResult)], rows: [Row]? = nil,
                                title: String = "Metric") -> String {
        let rows = rows ?? defaultRows(for: columns.map(\.result))
        func cell(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
        var out = "| \(cell(title)) | " + columns.map { cell($0.label) }.joined(separator: " | ") + " |\n"
        out += "|---|" + columns.map { _ in "---:|" }.joined() + "\n"
        for row in rows {
            let cells = columns.map { c in row.value(c.result).map { Fmt.num($0, row.decimals) } ?? "N/A" }
            out += "| \(cell(row.label)) | " + cells.joined(separator: " | ") + " |\n"
        }
        return out
    }
}
