import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
@testable import LoadKit

@Suite struct ReportPrometheusTests {
    static func snapshot() -> MetricsSnapshot {
        let r = MetricsRecorder()
        for ms in [1, 3, 7, 40, 40, 120, 900] { r.record("message_latency", micros: Int64(ms) * 1000) }
        r.record("websocket_connect", micros: 12_000)
        r.record("websocket_duration", micros: 90_000_000)
        r.record("reconnection_time", micros: 2_000_000)
        r.increment("messages_sent", by: 10)
        r.increment("messages_received", by: 9)
        r.increment("connection_retries", by: 2)
        r.gauge("active_connections", 5)
        r.gauge("active_reconnections", 1)
        r.rate("connections_held", hit: true)
        r.error(ScriptFailure("x \"quoted\"", kind: "ws_close_1006", source: .server), step: "ws")
        return r.snapshot()
    }

    /// Parses exposition lines into `name{labels}` → value, checking the syntax of every line.
    static func parse(_ text: String) throws -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") { continue }
            let parts = line.split(separator: " ")
            try #require(parts.count == 2, "bad line: \(line)")
            let key = String(parts[0])
            let name = key.split(separator: "{").first.map(String.init) ?? key
            #expect(name.range(of: "^[a-zA-Z_:][a-zA-Z0-9_:]*$", options: .regularExpression) != nil, "bad name \(name)")
            out[key] = try #require(Double(parts[1].replacingOccurrences(of: "+Inf", with: "inf")))
        }
        return out
    }

    @Test func seedNamesAndCumulativeHistograms() throws {
        let text = PrometheusExposition.render(Self.snapshot())
        let m = try Self.parse(text)
        let p = "stomp_load_test"
        #expect(m["\(p)_messages_sent_total"] == 10)
        #expect(m["\(p)_messages_received_total"] == 9)
        #expect(m["\(p)_errors_total"] == 1)
        #expect(m["\(p)_connection_retries_total"] == 2)
        #expect(m["\(p)_active_connections"] == 5)
        #expect(m["\(p)_active_reconnections"] == 1)
        #expect(m["\(p)_avg_connection_duration_seconds"] == 90)
        #expect(m["\(p)_errors_by_kind_total{kind=\"ws_close_1006\",source=\"server\"}"] == 1)
        #expect(m["\(p)_message_latency_ms_bucket{le=\"5\"}"] == 2)
        #expect(m["\(p)_message_latency_ms_bucket{le=\"50\"}"] == 5)
        #expect(m["\(p)_message_latency_ms_bucket{le=\"1000\"}"] == 7)
        #expect(m["\(p)_message_latency_ms_bucket{le=\"+Inf\"}"] == 7)
        #expect(m["\(p)_message_latency_ms_count"] == 7)
        #expect(m["\(p)_message_latency_ms_sum"] == 1111)
        #expect(m["\(p)_websocket_connect_ms_count"] == 1)
        #expect(m["\(p)_websocket_duration_seconds_bucket{le=\"60\"}"] == 0)
        #expect(m["\(p)_websocket_duration_seconds_bucket{le=\"120\"}"] == 1)
        #expect(m["\(p)_reconnection_time_ms_sum"] == 2000)
        #expect(text.contains("# TYPE \(p)_message_latency_ms histogram"))
        #expect(text.contains("# TYPE \(p)_messages_sent_total counter"))
        // Buckets are cumulative (non-decreasing).
        let buckets = text.split(separator: "\n").filter { $0.hasPrefix("\(p)_message_latency_ms_bucket") }
            .compactMap { Double($0.split(separator: " ")[1].replacingOccurrences(of: "+Inf", with: "inf")) }
        #expect(buckets == buckets.sorted())
        let custom = PrometheusExposition.render(Self.snapshot(), options: .init(prefix: "concert-http"))
        #expect(custom.contains("concert_http_messages_sent_total 10"))
    }

    @Test func endpointServesMetrics() async throws {
        let registry = MetricsRegistry(stripeCount: 2)
        registry.recorder(forUser: 0).increment("messages_sent", by: 3)
        let endpoint = try MetricsEndpoint(registry: registry, port: 0)
        defer { endpoint.close() }
        let url = URL(string: "http://127.0.0.1:\(endpoint.port)/metrics")!
        let (data, response) = try await URLSession.shared.data(from: url)
        let http = try #require(response as? HTTPURLResponse)
        #expect(http.statusCode == 200)
        #expect((http.value(forHTTPHeaderField: "Content-Type") ?? "").hasPrefix("text/plain; version=0.0.4"))
        let m = try Self.parse(String(decoding: data, as: UTF8.self))
        #expect(m["stomp_load_test_messages_sent_total"] == 3)
        registry.recorder(forUser: 1).increment("messages_sent", by: 4)
        let (data2, _) = try await URLSession.shared.data(from: url)
        #expect(try Self.parse(String(decoding: data2, as: UTF8.self))["stomp_load_test_messages_sent_total"] == 7)
        let (_, r404) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(endpoint.port)/nope")!)
        #expect((r404 as? HTTPURLResponse)?.statusCode == 404)
    }
}
