#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LoadKitTransport
import LoadKitProtocols

/// The live progress line: one line with elapsed time, stage, users, request/message rates and
/// errors. Pure formatting; the runner decides when to print (see ``shouldPrint(forced:)``).
package enum ProgressLine {
    /// What the line shows.
    public struct State: Sendable, Hashable {
        /// Seconds since the run started.
        public var elapsedSeconds: Double
        /// Current stage's name, if any.
        public var stage: String?
        /// Active virtual users.
        public var users: Int
        /// The current target, if known.
        public var targetUsers: Int?
        /// Requests per second over the last interval (HTTP), if any.
        public var requestsPerSecond: Double?
        /// Messages per second over the last interval (WebSocket/STOMP), if any.
        public var messagesPerSecond: Double?
        /// Errors so far.
        public var errors: Int64
        /// Error rate so far (0…1), if known.
        public var errorRate: Double?
        /// P95 so far of the run's main latency trend (`http_req_duration`), in µs, if any.
        public var p95Micros: Int64?

        /// Creates a state.
        public init(elapsedSeconds: Double, stage: String? = nil, users: Int, targetUsers: Int? = nil,
                    requestsPerSecond: Double? = nil, messagesPerSecond: Double? = nil,
                    errors: Int64 = 0, errorRate: Double? = nil, p95Micros: Int64? = nil) {
            self.elapsedSeconds = elapsedSeconds; self.stage = stage; self.users = users
            self.targetUsers = targetUsers; self.requestsPerSecond = requestsPerSecond
            self.messagesPerSecond = messagesPerSecond; self.errors = errors; self.errorRate = errorRate
            self.p95Micros = p95Micros
        }
    }

    /// `[01:05] peak | users 450/600 | 1234.0 msg/s | 98.5 req/s p95 12.3 ms | errors 3 (0.020%)`
    public static func render(_ s: State) -> String {
        let t = Int(s.elapsedSeconds.isFinite ? Swift.max(0, s.elapsedSeconds) : 0)
        var parts = ["[" + String(format2: t / 60) + ":" + String(format2: t % 60) + "]" + (s.stage.map { " " + $0 } ?? "")]
        parts.append("users \(s.users)" + (s.targetUsers.map { "/\($0)" } ?? ""))
        if let m = s.messagesPerSecond { parts.append("\(Threshold.trim(m, decimals: 1)) msg/s") }
        if let r = s.requestsPerSecond {
            parts.append("\(Threshold.trim(r, decimals: 1)) req/s" + (s.p95Micros.map { " p95 " + Threshold.format(Double($0), .duration) } ?? ""))
        }
        var e = "errors \(s.errors)"
        if let rate = s.errorRate { e += " (\(Threshold.trim(rate * 100, decimals: 3))%)" }
        parts.append(e)
        return parts.joined(separator: " | ")
    }

    /// Rate of `counter` between two snapshots taken `interval` seconds apart.
    public static func perSecond(_ counter: String, previous: MetricsSnapshot, current: MetricsSnapshot,
                                 interval: Double) -> Double? {
        guard interval > 0, let now = current.counters[counter] else { return nil }
        return Double(now - (previous.counters[counter] ?? 0)) / interval
    }

    /// Whether to print the line: when `forced`, or when standard error is a terminal.
    public static func shouldPrint(forced: Bool = false) -> Bool {
        forced || isatty(STDERR_FILENO) == 1
    }

    /// The line prefixed with a carriage return and padded, to overwrite the previous one on a TTY.
    public static func overwriting(_ line: String, width: Int = 100) -> String {
        "\r" + line + String(repeating: " ", count: Swift.max(0, width - line.count))
    }
}

extension String {
    init(format2 v: Int) { self = v < 10 ? "0\(v)" : String(v) }
}
