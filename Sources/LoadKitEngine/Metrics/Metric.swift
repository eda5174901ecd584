import LoadKitTransport
import LoadKitProtocols

/// What kind of values a metric holds, as a type, so that what is asked of a metric is checked
/// when the test compiles: a percentile of a counter, or a rate of a trend, is a type error.
public protocol MetricKind: Sendable {}

/// A distribution of durations (or other samples): percentiles, average, min/max.
public enum TrendKind: MetricKind {}
/// A running total: count, per-second throughput.
public enum CounterKind: MetricKind {}
/// A share of hits among checks: a ratio between 0 and 1.
public enum RateKind: MetricKind {}
/// A value sampled now and then (users, connections).
public enum GaugeKind: MetricKind {}

/// Which direction is better, for baselines and run comparisons.
public enum MetricPolarity: Sendable, Hashable {
    /// Latency, failures, drops: a rise is a regression.
    case lowerIsBetter
    /// Throughput, success rates: a fall is a regression.
    case higherIsBetter
}

/// A metric declared once — its name, kind, polarity — and used by that declaration in the
/// script, the SLA and the reports:
///
/// ```swift
/// let checkout = TrendMetric("checkout")
/// try await user.measure(checkout) { try await client.post(url, json: cart) }
/// SLA.p95(checkout, below: .milliseconds(300))
/// SLA.p95(.httpReqDuration, below: .milliseconds(200))   // a built-in (k6's names)
/// SLA.count(.httpReqs, atLeast: 1)                         // SLA.p95(.httpReqs, …) does not compile
/// ```
///
/// The built-ins are static members (`.httpReqDuration`, `.httpReqs`, `.httpReqFailed`, `.vus`, …);
/// the string-named API stays for metrics named at run time.
public struct Metric<Kind: MetricKind>: Sendable, Hashable, CustomStringConvertible {
    /// The name in results, reports and Prometheus (`http_req_duration`).
    public let name: String
    /// Which direction is better.
    public let polarity: MetricPolarity

    /// Declares a metric named `name`.
    public init(_ name: String, polarity: MetricPolarity) {
        self.name = name
        self.polarity = polarity
    }

    public var description: String { name }
}

/// A trend (durations recorded by `measure`/`record`).
public typealias TrendMetric = Metric<TrendKind>
/// A counter (`count`).
public typealias CounterMetric = Metric<CounterKind>
/// A rate (hits among checks).
public typealias RateMetric = Metric<RateKind>
/// A gauge.
public typealias GaugeMetric = Metric<GaugeKind>

extension Metric where Kind == TrendKind {
    /// A trend; lower is better unless said otherwise.
    public init(_ name: String) { self.init(name, polarity: .lowerIsBetter) }

    /// `http_req_duration`: request sent to response read, per HTTP request.
    public static var httpReqDuration: TrendMetric { TrendMetric(BuiltInMetrics.httpReqDuration) }
    /// `http_req_blocked`: waiting for a pooled connection.
    public static var httpReqBlocked: TrendMetric { TrendMetric(BuiltInMetrics.httpReqBlocked) }
    /// `http_req_connecting`: TCP connect.
    public static var httpReqConnecting: TrendMetric { TrendMetric(BuiltInMetrics.httpReqConnecting) }
    /// `http_req_tls_handshaking`: TLS handshake.
    public static var httpReqTLSHandshaking: TrendMetric { TrendMetric(BuiltInMetrics.httpReqTLSHandshaking) }
    /// `http_req_sending`: writing the request.
    public static var httpReqSending: TrendMetric { TrendMetric(BuiltInMetrics.httpReqSending) }
    /// `http_req_waiting`: time to the first response byte.
    public static var httpReqWaiting: TrendMetric { TrendMetric(BuiltInMetrics.httpReqWaiting) }
    /// `http_req_receiving`: reading the response.
    public static var httpReqReceiving: TrendMetric { TrendMetric(BuiltInMetrics.httpReqReceiving) }
    /// `ws_connecting`: WebSocket connect and upgrade.
    public static var wsConnecting: TrendMetric { TrendMetric(BuiltInMetrics.wsConnecting) }
    /// `ws_session_duration`: a WebSocket session, open to close.
    public static var wsSessionDuration: TrendMetric { TrendMetric(BuiltInMetrics.wsSessionDuration, polarity: .higherIsBetter) }
    /// `iteration_duration`: one run of the script.
    public static var iterationDuration: TrendMetric { TrendMetric(RunnerMetrics.iterationDuration) }
    /// `iteration_lateness`: open model, how late an iteration started after its schedule.
    public static var iterationLateness: TrendMetric { TrendMetric(RunnerMetrics.iterationLateness) }
}

extension Metric where Kind == CounterKind {
    /// A counter; higher is better unless said otherwise (work done).
    public init(_ name: String) { self.init(name, polarity: .higherIsBetter) }

    /// `http_reqs`: HTTP requests made.
    public static var httpReqs: CounterMetric { CounterMetric(BuiltInMetrics.httpReqs) }
    /// `iterations`: script runs completed.
    public static var iterations: CounterMetric { CounterMetric(RunnerMetrics.iterations) }
    /// `iterations_failed`: script runs that threw.
    public static var iterationsFailed: CounterMetric { CounterMetric(RunnerMetrics.iterationsFailed, polarity: .lowerIsBetter) }
    /// `iterations_dropped`: open model, arrivals that found no free user.
    public static var iterationsDropped: CounterMetric { CounterMetric(RunnerMetrics.iterationsDropped, polarity: .lowerIsBetter) }
    /// `iterations_late`: open model, iterations started more than the late threshold after schedule.
    public static var iterationsLate: CounterMetric { CounterMetric(RunnerMetrics.iterationsLate, polarity: .lowerIsBetter) }
    /// `data_sent`: bytes written.
    public static var dataSent: CounterMetric { CounterMetric(BuiltInMetrics.dataSent) }
    /// `data_received`: bytes read.
    public static var dataReceived: CounterMetric { CounterMetric(BuiltInMetrics.dataReceived) }
    /// `ws_sessions`: WebSocket sessions opened.
    public static var wsSessions: CounterMetric { CounterMetric(BuiltInMetrics.wsSessions) }
    /// `ws_msgs_sent`: WebSocket messages sent.
    public static var wsMsgsSent: CounterMetric { CounterMetric(BuiltInMetrics.wsMsgsSent) }
    /// `ws_msgs_received`: WebSocket messages received.
    public static var wsMsgsReceived: CounterMetric { CounterMetric(BuiltInMetrics.wsMsgsReceived) }
    /// `messages_sent`: STOMP chat SENDs (counted by the scenario or your script, not the client).
    public static var messagesSent: CounterMetric { CounterMetric(BuiltInMetrics.messagesSent) }
    /// `messages_received`: STOMP chat MESSAGEs received (counted by the scenario or your script).
    public static var messagesReceived: CounterMetric { CounterMetric(BuiltInMetrics.messagesReceived) }
}

extension Metric where Kind == RateKind {
    /// `http_req_failed`: share of HTTP requests with a failing status or no response.
    public static var httpReqFailed: RateMetric { RateMetric(BuiltInMetrics.httpReqFailed, polarity: .lowerIsBetter) }
    /// `connections_held`: share of planned users connected at the end of the hold.
    public static var connectionsHeld: RateMetric { RateMetric(RunnerMetrics.connectionsHeld, polarity: .higherIsBetter) }
}

extension Metric where Kind == GaugeKind {
    /// A gauge; higher is better unless said otherwise.
    public init(_ name: String) { self.init(name, polarity: .higherIsBetter) }

    /// `vus`: users running now.
    public static var vus: GaugeMetric { GaugeMetric(RunnerMetrics.vus) }
    /// `vus_max`: the most users that ran at once.
    public static var vusMax: GaugeMetric { GaugeMetric(RunnerMetrics.vusMax) }
}

/// The declared polarity of a built-in counter or rate named `name` (tags ignored), if it is one:
/// run comparisons judge these by their declaration, other names by a heuristic.
func declaredPolarity(of name: String) -> MetricPolarity? {
    let base = name.firstIndex(of: "{").map { String(name[..<$0]) } ?? name
    return builtInPolarities[base]
}

private let builtInPolarities: [String: MetricPolarity] = {
    let counters: [CounterMetric] = [.httpReqs, .iterations, .iterationsFailed, .iterationsDropped, .iterationsLate,
                                     .dataSent, .dataReceived, .wsSessions, .wsMsgsSent, .wsMsgsReceived,
                                     .messagesSent, .messagesReceived]
    let rates: [RateMetric] = [.httpReqFailed, .connectionsHeld]  // scenario rates (worker_success) go by the name heuristic
    return Dictionary(counters.map { ($0.name, $0.polarity) } + rates.map { ($0.name, $0.polarity) }) { a, _ in a }
}()
