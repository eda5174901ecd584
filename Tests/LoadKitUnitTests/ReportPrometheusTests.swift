import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

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
        let text = PrometheusExposition.render(Self.snapshot(), options: .stompChat)
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
        #expect(m["loadkit_messages_sent_total"] == 3)
        registry.recorder(forUser: 1).increment("messages_sent", by: 4)
        let (data2, _) = try await URLSession.shared.data(from: url)
        #expect(try Self.parse(String(decoding: data2, as: UTF8.self))["loadkit_messages_sent_total"] == 7)
        let (_, r404) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(endpoint.port)/nope")!)
        #expect((r404 as? HTTPURLResponse)?.statusCode == 404)
    }

    @Test func loadkitNamesWithTestRunAndTagLabels() throws {
        var snap = Self.snapshot()
        var h = Histogram()
        for ms in [3, 30] { h.record(Int64(ms) * 1000) }
        snap.trends["http_req_duration{name:/items/{id},test:x}"] = h
        snap.trends["http_req_duration"] = h
        snap.counters["http_reqs{status:200}"] = 2
        let text = PrometheusExposition.render(snap, options: PrometheusExposition.Options().labeled(test: "checkout", runID: "r-1"))
        let m = try Self.parse(text)
        #expect(m[#"loadkit_messages_sent_total{run_id="r-1",test="checkout"}"#] == 10)
        #expect(m[#"loadkit_errors_by_kind_total{run_id="r-1",test="checkout",kind="ws_close_1006",source="server"}"#] == 1)
        #expect(m[#"loadkit_http_req_duration_ms_bucket{run_id="r-1",test="checkout",le="5"}"#] == 1)
        // The tags are labels; a tag named like one of the kit's labels is renamed.
        #expect(m[#"loadkit_http_req_duration_ms_bucket{run_id="r-1",test="checkout",name="/items/{id}",tag_test="x",le="50"}"#] == 2)
        #expect(m[#"loadkit_http_reqs_total{run_id="r-1",test="checkout",status="200"}"#] == 2)
        // One HELP and TYPE per family, every sample of a family right after them.
        var seen: [String] = []
        var current = ""
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                current = String(line.split(separator: " ")[2])
                #expect(!seen.contains(current), "family \(current) declared twice")
                seen.append(current)
            } else if !line.hasPrefix("#") {
                #expect(line.hasPrefix(current), "\(line) outside its family \(current)")
            }
        }
        #expect(!text.contains("stomp_load_test"))
    }

    /// Every query of `deploy/grafana-dashboard.json` names a metric a real run exports.
    @Test func dashboardQueriesNameExportedMetrics() async throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("deploy/grafana-dashboard.json")
        let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        var queries: [String] = []
        for panel in dashboard["panels"] as? [[String: Any]] ?? [] {
            for target in panel["targets"] as? [[String: Any]] ?? [] { queries.append(try #require(target["expr"] as? String)) }
        }
        for v in (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? [] {
            if let q = (v["query"] as? [String: Any])?["query"] as? String { queries.append(q) }
        }
        #expect(queries.count >= 15)
        // A real (short) run: users, iterations, operations, errors, held connections, an
        // open-model-free iteration trend and HTTP-named metrics recorded by the script.
        let result = try await LoadTest("dashboard") { Stage("up", to: 2, over: .zero); Hold(.milliseconds(500)) }
            .progress(false).reports(false).settings(Settings([:])).exclusive(false)
            .run { user in
                user.markConnected()
                try await user.measure("http_req_duration") { try await Task.sleep(for: .milliseconds(5)) }
                user.count("http_reqs")
                user.rate("http_req_failed", hit: user.id == 1)
                user.record(RunnerMetrics.iterationDuration, .milliseconds(6))
                if user.id == 1 { user.fail("checked body", step: "check") }
                _ = await user.sleep(for: .milliseconds(50))
            }
        #expect(result.metrics.counters[RunnerMetrics.iterations, default: 0] > 0)
        let exported = PrometheusExposition.render(result.metrics, options: PrometheusExposition.Options().labeled(test: "dashboard", runID: "r"))
        let families = Set(exported.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) })
        var names: Set<String> = []
        for q in queries {
            let found = q.matches(of: /loadkit_[A-Za-z0-9_:]+/).map { String($0.output) }
            #expect(!found.isEmpty, "query names no loadkit metric: \(q)")
            names.formUnion(found)
        }
        for name in names.sorted() {
            let family = ["_bucket", "_sum", "_count"].reduce(name) { n, suffix in
                n.hasSuffix(suffix) && families.contains(String(n.dropLast(suffix.count))) ? String(n.dropLast(suffix.count)) : n
            }
            #expect(families.contains(family), "the dashboard queries \(name), which the kit does not export")
        }
        #expect(names.contains("loadkit_vus") && names.contains("loadkit_errors_by_kind_total")
                && names.contains("loadkit_http_req_duration_ms_bucket") && names.contains("loadkit_connections_held_rate"))
    }

    @Test func finalValuesArePushedToAPushgateway() async throws {
        let received = Mutex<[(method: String, path: String, body: String)]>([])
        let server = try HTTPServer(port: 0) { request in
            received.withLock { $0.append((request.head.method.rawValue, request.head.target, String(decoding: request.body, as: UTF8.self))) }
            return request.head.target.contains("refuse") ? HTTPServerResponse(status: 400, body: Array("pushed metrics are invalid".utf8))
                : HTTPServerResponse(status: 200)
        }
        defer { server.stop() }
        var run = ReportFixtures.run(name: "nightly checkout", seconds: 5)
        run.environment["run_id"] = "gh-42/1"
        try await PrometheusPush.push(run, options: PrometheusExposition.Options().labeled(test: "x", runID: "y"),
                                      to: "http://127.0.0.1:\(server.port)/")
        let first = try #require(received.withLock { $0.first })
        #expect(first.method == "PUT")
        // Values that are not plain go in the Pushgateway's base64 form.
        #expect(first.path == "/metrics/job/loadkit/test@base64/bmlnaHRseSBjaGVja291dA==/run_id@base64/Z2gtNDIvMQ==")
        let m = try Self.parse(first.body)
        #expect(m["loadkit_http_reqs_total"] == Double(run.metrics.counters["http_reqs"]!))
        #expect(!first.body.contains("run_id=") && !first.body.contains("test="), "grouping labels must not be repeated")
        #expect(!first.body.contains("s3cr3t-token"))
        #expect(try PrometheusPush.url(base: "http://gw:9091", test: "checkout", runID: "2026-11-18_11-06-40.000Z")
                == "http://gw:9091/metrics/job/loadkit/test/checkout/run_id/2026-11-18_11-06-40.000Z")
        // A Pushgateway that refuses, a wrong address, a closed port: each a clear error.
        do {
            try await PrometheusPush.push(run, options: .init(), to: "http://127.0.0.1:\(server.port)/refuse")
            Issue.record("a refused push succeeded")
        } catch let e as PrometheusPush.PushError {
            #expect(e.message.hasSuffix("answered HTTP 400: pushed metrics are invalid") && e.source == .server)
        }
        // A gateway address with a password (as `loadkit merge` may push it, with no check before):
        // the error never shows it.
        do {
            try await PrometheusPush.push(run, options: .init(), to: "http://admin:hunter2pw@127.0.0.1:\(server.port)")
            Issue.record("a push through user-info succeeded")
        } catch {
            #expect(!"\(error)".contains("hunter2pw") && "\(error)".contains("http://…@127.0.0.1:\(server.port)/metrics"), "\(error)")
        }
        #expect(throws: PrometheusPush.PushError.self) { try PrometheusPush.url(base: "pushgateway:9091", test: "t", runID: "r") }
        #expect(throws: PrometheusPush.PushError.self) { try PrometheusPush.url(base: "http://gw:9091/metrics/job/x", test: "t", runID: "r") }
        let closed = try ClosedPort()
        let port = closed.port
        do {
            try await PrometheusPush.push(run, options: .init(), to: "http://127.0.0.1:\(port)", timeout: .seconds(3))
            Issue.record("a push to a closed port succeeded")
        } catch let e as PrometheusPush.PushError {
            #expect(e.message.contains("cannot push to http://127.0.0.1:\(port)/metrics/job/loadkit/"))
        }
        withExtendedLifetime(closed) {}
    }
}
