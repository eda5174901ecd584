import LoadKitEngine

// The seed scenarios' own metrics and SLA presets live with the scenarios, above the engine:
// the engine knows no scenario by name (issue 15).

extension Metric where Kind == TrendKind {
    /// `message_latency`: STOMP chat round trip (SEND to its broadcast back).
    public static var messageLatency: TrendMetric { TrendMetric(StompChatMetrics.messageLatency) }
    /// `websocket_connect`: STOMP chat WebSocket connect.
    public static var websocketConnect: TrendMetric { TrendMetric(StompChatMetrics.websocketConnect) }
}

extension Metric where Kind == RateKind {
    /// `worker_success`: STOMP chat workers that ended without failing.
    public static var workerSuccess: RateMetric { RateMetric(StompChatMetrics.workerSuccess, polarity: .higherIsBetter) }
}

extension SLA {
    /// Seed 000/001 STOMP chat: message RTT p95 < 200 ms, errors < 0.1 %, 99.9 % of connections held.
    public static var stompChat: [Threshold] {
        [p95(StompChatMetrics.messageLatency, below: .milliseconds(200)), errorRate(below: 0.001), connectionsHeld(atLeast: 0.999)]
    }

    /// Seed 002 Runnity: test-login p95 < 100 ms, enter p95 < 200 ms, WebSocket connect p95 < 1 s,
    /// PONG within 5 s, errors < 0.1 %, 99.9 % of connections held.
    public static var runnity: [Threshold] {
        [p95("test-login", below: .milliseconds(100)), p95("enter", below: .milliseconds(200)),
         p95(StompChatMetrics.websocketConnect, below: .seconds(1)), max("pong_latency", below: .seconds(5)),
         errorRate(below: 0.001), connectionsHeld(atLeast: 0.999)]
    }
}
