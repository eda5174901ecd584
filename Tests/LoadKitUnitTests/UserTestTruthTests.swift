import Foundation
import Synchronization
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

private struct UnexpectedStatus: Error {}

/// The numbers of the test a user writes from the README, compared with what a counting server
/// saw: each failed operation is one error, blamed on the right side; the pool does not cap the
/// users; the environment's hard cap governs every run.
@Suite(.serialized) struct UserTestTruthTests {
    private func quiet(_ t: LoadTest, _ settings: [String: String] = [:]) -> LoadTest {
        t.progress(false).reports(false).settings(Settings(settings))
    }

    /// Per-user state across iterations: each user "logs in" once (the first iteration makes the
    /// value) and reuses it; a `make` that throws keeps nothing (tried again); `forget` drops it;
    /// a value asked for as the wrong type is the script's error. The server counts the logins.
    @Test func aUserKeepsItsValueAcrossIterations() async throws {
        let server = try CountingHTTPServer()
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let logins = Mutex<[Int: Int]>([:]), wrongType = Mutex<[String]>([])
        let result = try await quiet(LoadTest("once-per-user") { Stage("all", to: 3, over: .zero); Hold(.seconds(1)) })
            .run { user in
                if user.iteration == 0 {
                    // A first attempt that fails keeps nothing.
                    _ = try? await user.once("token") { () async throws -> String in throw ScriptFailure("login down") }
                }
                let token = try await user.once("token") { () async throws -> String in
                    _ = try await client.get(server.url("/ok"))   // the login request
                    logins.withLock { $0[user.index, default: 0] += 1 }
                    return "token-\(user.index)"
                }
                #expect(token == "token-\(user.index)")
                do { _ = try await user.once("token") { 0 } } catch { wrongType.withLock { $0.append("\(error)") } }
                _ = try await client.get(server.url("/ok"))
                if user.iteration == 2 { user.forget("token") }   // the next iteration logs in again
                await user.sleep(for: .milliseconds(20))
            }
        let m = result.metrics
        let iterations = Int(m.counters["iterations"] ?? 0)
        #expect(m.errors.isEmpty, "\(m.errors)")
        #expect(iterations >= 12, "\(iterations) iterations")
        // One login per user, and one more after its third iteration forgot the token.
        #expect(logins.withLock { $0 } == [0: 2, 1: 2, 2: 2], "\(logins.withLock { $0 })")
        #expect(server.snapshot.requests == iterations + 6, "every iteration's request and the six logins reached the server")
        #expect(wrongType.withLock { $0.first }?.contains("'token' is a String, asked for as Int") == true)
    }

    /// A step that never succeeded has no samples: its threshold says which failures it had, not
    /// that the metric is unknown (a held-out user's every `read_order` timed out) — and a step
    /// named `login` keeps its error text (not masked as a STOMP `login:` line).
    @Test func aStepThatNeverSucceededSaysSo() async throws {
        let result = try await quiet(LoadTest("never-succeeded", burst: 2)).run { user in
            try await user.measure("login") { throw ScriptFailure("account dave was rejected", kind: "bad_account") }
        }
        let o = try #require(result.evaluate([SLA.p95("login", below: .seconds(1))]).first)
        #expect(!o.passed)
        #expect(o.message.contains("no 'login' step succeeded") && o.message.contains("bad_account [script]"), "\(o.message)")
        #expect(!o.message.contains("no metric named"), "\(o.message)")
        #expect(result.metrics.errors["bad_account"]?.examples.first == "login: account dave was rejected",
                "\(result.metrics.errors)")
        // Nor a step named like an HTTP credential header (its message is still redacted).
        let authorization = try await quiet(LoadTest("step-authorization", burst: 1)).run { user in
            try await user.measure("authorization") { throw ScriptFailure("grant refused for Bearer tok-0123456789abc", kind: "grant") }
        }
        #expect(authorization.metrics.errors["grant"]?.examples.first == "authorization: grant refused for Bearer ****",
                "\(authorization.metrics.errors)")
        // The held-out user's case: the step's failures are its requests' (counted by the client,
        // their examples named by the request, not the step) — every `read_order` timed out.
        let server = try HTTPServer(port: 0) { _ in try? await Task.sleep(for: .seconds(2)); return .text("late") }
        defer { server.stop() }
        var configuration = HTTPClient.Configuration()
        configuration.defaultTimeout = .milliseconds(100)
        let client = HTTPClient(configuration: configuration)
        defer { client.shutdown() }
        let reads = try await quiet(LoadTest("reads-timed-out", burst: 2)).run { user in
            try await user.measure("read_order") { try await client.get("http://127.0.0.1:\(server.port)/orders/1", name: "/orders/{id}") }
        }
        let read = try #require(reads.evaluate([SLA.p95("read_order", below: .seconds(1))]).first)
        #expect(read.message.contains("no samples — no 'read_order' step succeeded: all 2 failed") && read.message.contains("timeout [server]"),
                "\(read.message)")
        #expect(!read.message.contains("no metric named"), "\(read.message)")
    }

    @Test func aFailingMeasuredStepIsOneError() async throws {
        let result = try await quiet(LoadTest("one-failure", burst: 1)).run { user in
            try await user.measure("step") { throw ScriptFailure("expected 200, got 503") }
        }
        let m = result.metrics
        #expect(m.counters["iterations"] == 1)
        #expect(m.counters["iterations_failed"] == 1)
        #expect(m.totalErrors == 1, "\(m.errors)")
        #expect(m.errors["assertion"]?.count == 1)
        #expect(m.errors["assertion"]?.source == .script)
        #expect(m.errorRate == 1)
    }

    @Test func serverErrorsAreCountedOnceAndBlamedOnTheServer() async throws {
        let server = try CountingHTTPServer(failEvery: 20)
        defer { server.stop() }
        let client = HTTPClient()
        let url = server.url("/flaky")
        // The README's shape: the step throws on a bad status, and the error leaves the script.
        let result = try await quiet(LoadTest("http-500s") { Stage("all", to: 10, over: .zero); Hold(.milliseconds(1500)) })
            .run { user in
                try await user.measure("get_items") { try await client.get(url).requireStatus() }
            }
        let seen = server.snapshot
        let m = result.metrics
        let failed = seen.byStatus[500] ?? 0
        #expect(seen.requests > 200, "the run did real work: \(seen.requests) requests")
        #expect(failed > 0)
        #expect(m.totalErrors == Int64(failed), "one error per HTTP 500: \(m.errors)")
        #expect(Set(m.errors.keys) == ["http_500"])
        #expect(m.errors["http_500"]?.source == .server)
        let rate = try #require(m.errorRate)
        #expect(abs(rate - Double(failed) / Double(seen.requests)) < 0.005, "error rate \(rate)")
        #expect(abs(rate - 0.05) < 0.01)
    }

    @Test func aScriptThrowingItsOwnErrorOnABadStatusIsStillOneServerError() async throws {
        let server = try CountingHTTPServer(failEvery: 20)
        defer { server.stop() }
        let client = HTTPClient()
        let url = server.url("/flaky")
        let result = try await quiet(LoadTest("own-error") { Stage("all", to: 10, over: .zero); Hold(.milliseconds(1500)) })
            .run { user in
                let response = try await client.get(url)
                guard response.status == 200 else { throw UnexpectedStatus() }
            }
        let seen = server.snapshot
        let m = result.metrics
        let failed = seen.byStatus[500] ?? 0
        #expect(failed > 0 && seen.requests > 200)
        #expect(m.totalErrors == Int64(failed), "\(m.errors)")
        #expect(m.errors["http_500"]?.count == Int64(failed))
        #expect(m.errors["http_500"]?.source == .server)
    }

    @Test func everyRequestIsInThePerSecondLatencySeries() async throws {
        // timeseries.csv and the HTML charts read the per-second trend histograms: the main HTTP
        // latency must hold every request there too, each in its own second.
        let server = try CountingHTTPServer()
        defer { server.stop() }
        let client = HTTPClient()
        let url = server.url("/ok")
        let result = try await quiet(LoadTest("per-second") { Stage("all", to: 5, over: .zero); Hold(.milliseconds(1200)) })
            .run { user in try await user.measure("get") { try await client.get(url).requireStatus() } }
        let m = result.metrics
        let requests = try #require(m.counters["http_reqs"])
        #expect(requests > 50 && requests == Int64(server.snapshot.requests), "\(requests) requests")
        // An HTTP test marks no connections: no `connected` gauge or series to show as a flat 0.
        #expect(m.gauges["connected"] == nil && m.series["connected"] == nil)
        let perSecondRequests = try #require(m.series["http_reqs"])
        #expect(perSecondRequests.count >= 2, "the run spans seconds")
        for name in ["http_req_duration", "get"] {
            let whole = try #require(m.trends[name], "\(name)")
            let perSecond = try #require(m.trendSeries[name], "no per-second series for \(name)")
            #expect(Int64(whole.count) == requests, "\(name)")
            let seconds = (0..<perSecond.seconds).map { perSecond.count(second: $0) }
            #expect(seconds.reduce(0, +) == Int64(whole.count), "\(name) per second: \(seconds)")
            if name == "http_req_duration" {
                // The same clock reading files a request's count and its latency: same second.
                #expect(seconds == perSecondRequests, "latencies per second \(seconds) vs requests \(perSecondRequests)")
            }
        }
    }

    @Test func thePoolDoesNotCapTheUsers() async throws {
        // Every request waits 30 ms at the server, so 100 users have 100 requests in flight.
        let server = try CountingHTTPServer(delay: .milliseconds(30))
        defer { server.stop() }
        let client = HTTPClient()
        let url = server.url("/ok")
        _ = try await quiet(LoadTest("pool") { Stage("all", to: 100, over: .zero); Hold(.milliseconds(800)) })
            .run { user in
                _ = try await client.get(url)
            }
        let seen = server.snapshot
        #expect(seen.requests >= 100)
        #expect(seen.connections == 100, "one connection per user, not a shared cap: \(seen.connections)")
    }

    @Test func theEnvironmentsHardCapGovernsAPlainRun() async throws {
        let t0 = monotonicNanos()
        let result = try await quiet(LoadTest("capped") { Stage("ramp", to: 2, over: .seconds(30)) },
                                     ["LOADKIT_MAX_DURATION": "2s"])
            .gracefulStop(.milliseconds(500))
            .exclusive(false)   // its wall clock must not include waiting for other tests' load runs
            .run { user in _ = await user.sleep(for: .milliseconds(50)) }
        let wall = Double(monotonicNanos() - t0) / 1e9
        #expect(wall < 4.5, "a 30 s plan under LOADKIT_MAX_DURATION=2s ran \(wall) s")
        #expect(result.interruption?.hasPrefix("deadline") == true, "\(result.interruption ?? "nil")")
        #expect(result.environment["max_duration"] == "2 s of a 30 s plan", "the cap is stated, not silent")
    }

    @Test func theEnvironmentsScaleAndShardsGovernAPlainRun() async throws {
        func peak(_ env: [String: String], _ adjust: (LoadTest) -> LoadTest = { $0 }) async throws -> Int {
            let t = adjust(quiet(LoadTest("sized") { Stage("all", to: 10, over: .zero); Hold(.milliseconds(200)) }, env))
            return try await t.run { user in _ = await user.sleep(for: .milliseconds(20)) }.peakActiveUsers
        }
        let asWritten = try await peak([:]), halved = try await peak(["LOADKIT_SCALE": "0.5"])
        let sized = try await peak(["LOADKIT_SIZED_USERS": "3"]), shard = try await peak(["LOADKIT_SHARD_INDEX": "0", "LOADKIT_SHARD_COUNT": "2"])
        #expect(asWritten == 10, "\(asWritten)")                               // as written without a variable
        #expect(halved == 5, "\(halved)")
        #expect(sized == 3, "\(sized)")                                        // per test, by its name
        #expect(shard == 5, "\(shard)")
        #expect(try await peak(["LOADKIT_SCALE": "0.5"]) { $0.scaled(.asWritten) } == 10)   // chosen in code
        #expect(try await peak(["LOADKIT_SCALE": "full"]) { try! $0.scaled(by: $0.settings) } == 10)
        #expect(try await peak(["LOADKIT_SCALE": "seed"]) { try! $0.scaled(by: $0.settings) } == 10)   // the old name still works
    }

    @Test func builtInHTTPMetricsMatchWhatTheServerSaw() async throws {
        let server = try CountingHTTPServer()
        defer { server.stop() }
        let client = HTTPClient()
        let url = server.url("/ok")
        let result = try await quiet(LoadTest("builtins") { Stage("all", to: 5, over: .zero); Hold(.milliseconds(1000)) })
            .run { user in try await client.get(url, name: "/ok") }
        let seen = server.server.statistics
        let m = result.metrics
        let requests = Int64(seen.requests)
        #expect(requests > 50, "the run did real work")
        #expect(m.counters["http_reqs"] == requests)
        #expect(m.counters["http_reqs{name:/ok}"] == requests)
        #expect(m.counters["data_sent"] == Int64(seen.bytesReceived))
        #expect(m.counters["data_received"] == Int64(seen.bytesSent))
        #expect(m.rates["http_req_failed"] == RateTally(hits: 0, total: requests))
        #expect(m.counters["operations"] == requests)                  // each request is one operation
        #expect(m.counters["iterations"] == requests)                  // one request per iteration
        #expect(m.trends["iteration_duration"]?.count == requests)
        #expect(m.gauges["vus_max"] == 5)
        #expect(m.rates["connections_held"] == nil, "users that never mark a connection hold none: no 0 % to alarm anyone")
        let duration = try #require(m.trends["http_req_duration"])
        #expect(duration.count == requests)
        #expect(m.trends["http_req_duration{expected_response:true}"]?.count == requests)
        #expect(m.trends["http_req_duration{name:/ok}"]?.count == requests)
        // k6's phases: duration = sending + waiting + receiving (each sample rounded to 1 µs).
        let phases = ["http_req_sending", "http_req_waiting", "http_req_receiving"].map { m.trends[$0]?.sum ?? -1 }
        #expect(abs(phases.reduce(0, +) - duration.sum) <= 2 * requests, "\(phases) vs \(duration.sum)")
        // A connect per connection, none for reused keep-alive requests.
        let connecting = try #require(m.trends["http_req_connecting"])
        #expect(connecting.count == requests)
        #expect(connecting.count - connecting.count(atOrBelow: 0) == Int64(seen.connections))
        #expect(seen.connections == 5)
        #expect(m.trends["http_req_tls_handshaking"]?.max == 0)
        #expect(m.trends["http_req_blocked"]?.count == requests)
        // Handed straight to an idle keep-alive connection, a request waited for nothing.
        let blocked = try #require(m.trends["http_req_blocked"])
        #expect(blocked.count(atOrBelow: 0) >= requests - Int64(seen.connections), "\(blocked.count(atOrBelow: 0)) of \(requests)")
    }

    /// A GET on a reused keep-alive connection that the server closes without a word is sent
    /// again on a fresh connection (the server may have closed it idle before reading). The
    /// server saw both: the numbers must say so — every byte in `data_sent`, the second send in
    /// `http_reqs_retried` — while the script's request stays one request with one outcome.
    @Test func aRequestSentAgainOnAFreshConnectionIsCountedAsSentTwice() async throws {
        let server = try OneAnswerPerConnection()
        let client = HTTPClient()
        let url = "http://127.0.0.1:\(server.port)/item"
        let result = try await quiet(LoadTest("resent") { Stage("one", to: 1, over: .zero); Hold(.milliseconds(300)) })
            .run { user in _ = try await client.get(url).requireStatus() }
        client.shutdown()
        let seen = server.counts
        let m = result.metrics
        let requests = try #require(m.counters["http_reqs"])
        #expect(requests > 5, "the run did real work")
        #expect(m.totalErrors == 0, "every request was answered in the end")
        // Every request after the first hit the connection the server hangs up on, then a new one.
        #expect(Int64(seen.requests) == 2 * requests - 1)
        #expect(m.counters["http_reqs_retried"] == requests - 1)
        #expect(requests + (m.counters["http_reqs_retried"] ?? 0) == Int64(seen.requests))
        #expect(m.counters["data_sent"] == Int64(seen.bytesIn))
        #expect(m.counters["data_received"] == Int64(seen.bytesOut))
        #expect(result.environment["http_retries"]?.hasPrefix("\(requests - 1) requests sent again") == true)
    }

    @Test func statusesOutsideTheExpectedOnesFailAndCanBeChosen() async throws {
        let server = try CountingHTTPServer()
        defer { server.stop() }
        let client = HTTPClient()
        let missing = server.url("/missing")                          // answers 404
        let result = try await quiet(LoadTest("statuses", burst: 1)).run { user in
            let r = try await client.get(missing)                     // default 200–399: a 404 fails
            #expect(r.status == 404)                                   // ...and is still returned
            try await client.get(missing, name: "lookup", expecting: [200, 404])   // an answer here
        }
        let m = result.metrics
        #expect(m.counters["http_reqs"] == 2)
        #expect(m.rates["http_req_failed"] == RateTally(hits: 1, total: 2))
        #expect(m.errors["http_404"]?.count == 1)
        #expect(m.errors["http_404"]?.source == .server)
        // The example names the request once and quotes the server (no "GET /missing: GET …").
        #expect(m.errors["http_404"]?.examples.first?.hasPrefix("GET \(missing) answered HTTP 404") == true, "\(m.errors)")
        #expect(m.rates["http_req_failed{name:lookup}"] == RateTally(hits: 0, total: 1))
        #expect(m.counters["operations"] == 1)
        #expect(m.errorRate == 0.5)
    }

    @Test func anUnexpectedStatusNamesItsRequestOnceAndQuotesTheServer() async throws {
        // What a user reads first when a server fails: which request, which status, and what the
        // server said — an error page names its cause — with any secret it echoes masked.
        let token = "tok-\(UInt64.random(in: 1_000_000...9_999_999))"
        Secrets.register(token)
        // A long registered secret: redacted before the excerpt is cut (a review found the body
        // cut at 480 bytes first, leaving most of a 500-byte token unmatched and printed).
        let longSecret = "lt" + String((0..<498).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
        Secrets.register(longSecret)
        let queryKey = "qk\(UInt64.random(in: 1_000_000_000...9_999_999_999))"
        let server = try HTTPServer(port: 0) { request in
            switch request.path {
            case "/pool": return .text("{\"error\":\"db pool exhausted\",\n\"echo\":\"\(token)\"}", status: 500)
            case "/binary": return HTTPServerResponse(status: 502, body: [0x00, 0xFF, 0x01, 0x02])
            case "/empty": return HTTPServerResponse(status: 503)
            case "/refresh": return .text("{\"refresh\":\"\(longSecret)\"}", status: 401)
            case "/key": return .text("invalid api_key \(request.query("api_key") ?? "") for author \(request.query("author") ?? "")", status: 400)
            // Text where the excerpt is cut, a form feed far behind it (judged on what is shown).
            case "/big": return .text(String(repeating: "a", count: 2_000) + "\u{0C}" + String(repeating: "b", count: 20_000), status: 507)
            case "/spaces": return .text(" \n\t \r\n ", status: 418)
            case "/oauth": return .text("{\"error\":\"expired\",\"access_token\":\"eyJhbGciOiJub25lIn0.e30.abc\"}", status: 403)
            default: return .text(String(repeating: "x", count: 300), status: 504)
            }
        }
        defer { server.stop() }
        let client = HTTPClient()
        let base = "http://127.0.0.1:\(server.port)"
        let result = try await quiet(LoadTest("statuses-quoted", burst: 1)).run { user in
            for path in ["/pool", "/binary", "/empty", "/long", "/refresh", "/oauth", "/big", "/spaces"] { try await client.get(base + path) }
            // A credential in the query, echoed by the server: registered when the URL is parsed
            // (`author` is not a credential: its value stays readable).
            try await client.get(base + "/key?page=2&author=tolkienwriter&api_key=\(queryKey)")
            try await client.get(base + "/pool", name: "pool")
        }
        let errors = result.metrics.errors
        #expect(result.metrics.totalErrors == 10, "\(errors)")
        #expect(errors["http_400"]?.examples.first?.hasSuffix("body: invalid api_key \(Secrets.mask) for author tolkienwriter") == true, "\(errors)")
        #expect(errors["http_507"]?.examples.first?.hasSuffix(", body: " + String(repeating: "a", count: 120) + "…") == true, "\(errors)")
        #expect(errors["http_418"]?.examples.first?.hasSuffix("(server), empty body") == true, "\(errors)")
        let pool = try #require(errors["http_500"]?.examples)
        #expect(pool.first == "GET \(base)/pool answered HTTP 500 Internal Server Error (server), body: "
                    + "{\"error\":\"db pool exhausted\", \"echo\":\"\(Secrets.mask)\"}", "\(pool)")
        // A name tag still leads: it is how the user grouped the requests.
        #expect(pool.last?.hasPrefix("pool: GET \(base)/pool answered HTTP 500") == true, "\(pool)")
        #expect(errors["http_502"]?.examples.first?.hasSuffix("(server), body: 4 bytes, not text") == true, "\(errors)")
        #expect(errors["http_503"]?.examples.first?.hasSuffix("(server), empty body") == true, "\(errors)")
        let long = try #require(errors["http_504"]?.examples.first)
        #expect(long.hasSuffix(", body: " + String(repeating: "x", count: 120) + "…"), "\(long)")
        #expect(errors.values.allSatisfy { $0.source == .server })
        #expect(errors["http_401"]?.examples.first?.hasSuffix(#"body: {"refresh":"\#(Secrets.mask)"}"#) == true, "\(errors)")
        #expect(errors["http_403"]?.examples.first?.hasSuffix(#"body: {"error":"expired","access_token":"\#(Secrets.mask)"}"#) == true, "\(errors)")
        let all = errors.values.flatMap(\.examples).joined()
        #expect(!all.contains(token) && !all.contains(String(longSecret.prefix(12))) && !all.contains("eyJhbGciOiJub25lIn0"))
        #expect(!all.contains(queryKey))
    }

    @Test func aScriptMayClassifyACountedFailureMoreSpecificallyButNotTwice() async throws {
        let server = try CountingHTTPServer()
        defer { server.stop() }
        let client = HTTPClient()
        let missing = server.url("/missing")                                         // 404
        let result = try await quiet(LoadTest("reclassify", burst: 3)).run { user in
            let r = try await client.get(missing)
            switch user.index {
            case 0: throw ScriptFailure("expected 200, got \(r.status)")             // generic: stays http_404
            case 1: throw ScriptFailure("no such item", kind: "item_missing", source: .server)   // more specific
            default: try r.requireStatus()                                           // same kind: once
            }
        }
        let m = result.metrics
        #expect(m.totalErrors == 3, "\(m.errors)")
        #expect(m.errors["http_404"]?.count == 2)
        #expect(m.errors["item_missing"]?.count == 1)
        #expect(m.errors["item_missing"]?.examples == ["iteration: no such item"])
        #expect(m.series["errors"]?.reduce(0, +) == 3)
        #expect(m.counters["iterations_failed"] == 3)
    }

    @Test func refusedConnectionsAreOneServerErrorPerRequest() async throws {
        // A port nothing listens on (1, tcpmux, unused here): every request is refused.
        let url = "http://127.0.0.1:1/ok"
        let client = HTTPClient()
        let result = try await quiet(LoadTest("refused", burst: 3)).run { user in
            try await user.measure("get") { try await client.get(url) }
        }
        let m = result.metrics
        #expect(m.totalErrors == 3, "\(m.errors)")
        #expect(m.errors["refused"]?.count == 3, "\(m.errors)")
        #expect(m.errors["refused"]?.source == .server)
        #expect(m.rates["http_req_failed"] == RateTally(hits: 3, total: 3))
        #expect(m.trends["http_req_duration"] == nil)                  // no answer, no duration
    }

    @Test func builtInWebSocketMetricsCountSessionsAndMessages() async throws {
        let server = try WSEchoServer()
        let url = server.url + "/echo"
        let result = try await quiet(LoadTest("ws-builtins", burst: 4)).run { user in
            let ws = try await WebSocketClient.connect(url, timeout: .seconds(5))
            for i in 0..<3 {
                try await ws.send(text: "hello \(i)")
                _ = try await ws.receive(timeout: .seconds(5))
            }
            await ws.close()
        }
        let m = result.metrics
        #expect(server.requestTargets.count == 4)
        #expect(m.counters["ws_sessions"] == 4)
        #expect(m.trends["ws_connecting"]?.count == 4)
        #expect(m.counters["ws_msgs_sent"] == 12)
        #expect(m.counters["ws_msgs_received"] == 12)
        #expect(m.trends["ws_session_duration"]?.count == 4)
        // Handshake plus frames: each message is a 2-byte header + 4-byte mask + 7-byte payload out.
        #expect((m.counters["data_sent"] ?? 0) >= 4 * 12 * 13 / 4 + 4 * 100)
        #expect((m.counters["data_received"] ?? 0) > 4 * 3 * 9)
        #expect(m.counters["operations"] == 4)                         // one per session opened
        #expect(m.errors.isEmpty)
    }

    /// STOMP straight over TCP (`StompClient.connect(tcpHost:port:)`) counts its bytes as STOMP
    /// over WebSocket does: `data_sent` / `data_received` are what a relay between client and
    /// broker carried (CONNECT to DISCONNECT and the broker's frames, heart-beats included).
    @Test(arguments: [false, true])
    func stompBytesAreTheBytesOnTheWire(webSocket: Bool) async throws {
        let broker = try StompTestBroker(webSocket: webSocket)
        let relay = try CountingRelay(to: broker.address)
        let result = try await quiet(LoadTest("stomp-bytes", burst: 2)).run { user in
            let c = webSocket
                ? try await StompClient.connect(webSocket: "ws://127.0.0.1:\(relay.port)/stomp", connectHeaders: [("login", "user"), ("passcode", "pw-secret-1")],
                                                host: "test-vhost", heartBeat: (.zero, .zero), timeout: .seconds(5))
                : try await StompClient.connect(tcpHost: "127.0.0.1", port: relay.port, connectHeaders: [("login", "user"), ("passcode", "pw-secret-1")],
                                                vhost: "test-vhost", heartBeat: (.zero, .zero), timeout: .seconds(5))
            let inbox = StompInbox()
            let topic = "/topic/bytes-\(user.index)"
            _ = try await c.subscribe(destination: topic, receipt: true) { inbox.add($0) }
            for i in 0..<3 { try await c.send(destination: topic, body: Array("message \(i)".utf8), receipt: true) }
            #expect(await inbox.wait(for: 3).count == 3)
            await c.disconnect()
        }
        let seen = await relay.settled()
        let m = result.metrics
        #expect(m.errors.isEmpty, "\(m.errors)")
        #expect(seen.connections == 2 && seen.clientToServer > 2 * 3 * 30)
        #expect(m.counters["data_sent"] == Int64(seen.clientToServer), "the relay carried \(seen.clientToServer) bytes up")
        #expect(m.counters["data_received"] == Int64(seen.serverToClient), "the relay carried \(seen.serverToClient) bytes down")
        #expect(webSocket || (m.counters["ws_sessions"] == nil && m.counters["ws_msgs_sent"] == nil), "no WebSocket metrics for plain TCP")
    }

    /// A CONNECT the broker refuses (ERROR, then it closes) still put its bytes on the wire, and
    /// the refusal is one error, the server's.
    @Test func aRefusedStompConnectOverTCPCountsItsBytes() async throws {
        let broker = try StompTestBroker()
        let relay = try CountingRelay(to: broker.address)
        let result = try await quiet(LoadTest("stomp-refused-bytes", burst: 1)).run { _ in
            _ = try await StompClient.connect(tcpHost: "127.0.0.1", port: relay.port, connectHeaders: [("login", "bad"), ("passcode", "pw-secret-1")],
                                              vhost: "test-vhost", heartBeat: (.zero, .zero), timeout: .seconds(5))
        }
        let seen = await relay.settled()
        let m = result.metrics
        #expect(m.errors.values.reduce(0) { $0 + $1.count } == 1 && m.errors.values.allSatisfy { $0.source == .server }, "\(m.errors)")
        #expect(seen.clientToServer > 0 && seen.serverToClient > 0)
        #expect(m.counters["data_sent"] == Int64(seen.clientToServer), "the relay carried \(seen.clientToServer) bytes up")
        #expect(m.counters["data_received"] == Int64(seen.serverToClient), "the relay carried \(seen.serverToClient) bytes down")
    }

    @Test func refusedWebSocketHandshakesCountTheirBytesInDataSentAndReceived() async throws {
        // A server that answers the upgrade with 403 and a body (as the held-out user's Python
        // `websockets` server did), counting every byte in and out: a refused handshake still
        // put its request and the answer on the wire, so data_sent/data_received count them.
        let peer = try HandshakeByteCounter(answer: Array(("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
            + "Content-Length: 38\r\nConnection: close\r\n\r\nFailed to open a WebSocket connection.").utf8))
        let url = "ws://127.0.0.1:\(peer.port)/echo?ticket=bad"
        let result = try await quiet(LoadTest("ws-refused-bytes", burst: 3)).run { user in
            _ = try await WebSocketClient.connect(url, timeout: .seconds(5))
        }
        let m = result.metrics
        let seen = peer.counts
        #expect(m.errors["ws_handshake_403"]?.count == 3, "\(m.errors)")
        #expect(seen.connections == 3 && seen.answered == 3)
        #expect(m.counters["data_sent"] == Int64(seen.bytesIn), "the server read \(seen.bytesIn) bytes")
        #expect(m.counters["data_received"] == Int64(seen.bytesOut), "the server wrote \(seen.bytesOut) bytes")
        #expect(m.counters["ws_sessions"] == nil, "a refused handshake opens no session")
    }

    @Test func messagesThatArriveWithThe101AreCountedWithTheirBytes() async throws {
        // A server that greets each session at once: its first message rides in the same write
        // (and so the same read) as the 101. The message was delivered; it must be counted in
        // ws_msgs_received and its bytes in data_received like every later one.
        let peer = try GreetingWebSocketPeer.start()
        let url = "ws://127.0.0.1:\(peer.port)/greet"
        let result = try await quiet(LoadTest("ws-greeting", burst: 3)).run { user in
            let ws = try await WebSocketClient.connect(url, timeout: .seconds(5))
            let first = try await ws.receive(timeout: .seconds(5))
            user.rate("greeted", hit: first == .text("welcome"))
            await ws.close()
        }
        let m = result.metrics
        let seen = peer.counts
        #expect(m.errors.isEmpty, "\(m.errors)")
        #expect(seen.greeted == 3)
        #expect(m.rates["greeted"] == RateTally(hits: 3, total: 3))
        #expect(m.counters["ws_msgs_received"] == 3, "one greeting per session")
        #expect(m.counters["data_received"] == Int64(seen.bytesOut), "the server wrote \(seen.bytesOut) bytes")
        #expect(m.counters["data_sent"] == Int64(seen.bytesIn), "the server read \(seen.bytesIn) bytes")
    }

    @Test func aReadThatEndsTheConnectionIsCountedToo() async throws {
        // The greeting and, in the same read, a frame that breaks the protocol (RSV1 set, no
        // extension agreed): the client closes at once (1002). The greeting was delivered and
        // both frames' bytes were read: they count, although the session ended in that read.
        let peer = try GreetingWebSocketPeer.start(trailing: [0xC1, 0x02] + Array("hi".utf8), answersClose: false)
        let url = "ws://127.0.0.1:\(peer.port)/greet"
        let result = try await quiet(LoadTest("ws-greeting-violation", burst: 3)).run { user in
            let ws = try await WebSocketClient.connect(url, timeout: .seconds(5))
            let first = try await ws.receive(timeout: .seconds(5))
            user.rate("greeted", hit: first == .text("welcome"))
        }
        let m = result.metrics
        let seen = peer.counts
        #expect(seen.greeted == 3)
        #expect(m.rates["greeted"] == RateTally(hits: 3, total: 3), "\(m.errors)")
        #expect(m.counters["ws_msgs_received"] == 3, "the greetings")
        #expect(m.counters["data_received"] == Int64(seen.bytesOut), "the server wrote \(seen.bytesOut) bytes")
    }

    @Test func handshakesThatTimeOutOrAreClosedCountTheRequestTheyWrote() async throws {
        // No answer within the time-out, or the connection closed before an answer: the request
        // went out all the same.
        for (answer, kind) in [(nil, "ws_handshake_timeout"), ([UInt8](), "ws_handshake_closed")] as [([UInt8]?, String)] {
            let peer = try HandshakeByteCounter(answer: answer)
            let url = "ws://127.0.0.1:\(peer.port)/echo"
            let result = try await quiet(LoadTest("ws-unanswered-bytes", burst: 2)).run { user in
                _ = try await WebSocketClient.connect(url, timeout: .milliseconds(300))
            }
            let m = result.metrics
            let seen = peer.counts
            #expect(m.errors[kind]?.count == 2, "\(m.errors)")
            #expect(seen.bytesIn > 2 * 100 && seen.bytesOut == 0)
            #expect(m.counters["data_sent"] == Int64(seen.bytesIn), "\(kind): the server read \(seen.bytesIn) bytes")
            #expect(m.counters["data_received"] == nil, "\(kind): nothing came back")
        }
    }

    @Test func aTimeoutWhileTheGeneratorIsOutOfDescriptorsIsBlamedOnTheGenerator() async throws {
        // A server that accepts but never answers the handshake: a time-out, normally the server's.
        let held = KeptConnections()
        let silent = try TCPListener { tcp in held.keep(tcp) }
        defer { silent.close() }
        let url = "ws://127.0.0.1:\(silent.address.port)/ws"
        do {
            _ = try await WebSocketClient.connect(url, timeout: .milliseconds(300))
            Issue.record("the handshake cannot succeed")
        } catch {
            #expect(error.loadKitKind == "ws_handshake_timeout")
            #expect(error.loadKitSource == .server)
        }
        // The same time-out while this process ran out of descriptors (a socket() failing with
        // EMFILE, as during a burst past the budget) is the load generator's.
        let during = Task {
            try await Task.sleep(for: .milliseconds(100))
            _ = TransportError.from(errno: EMFILE, call: "socket", endpoint: "")
        }
        do {
            _ = try await WebSocketClient.connect(url, timeout: .milliseconds(400))
            Issue.record("the handshake cannot succeed")
        } catch {
            #expect(error.loadKitKind == "ws_handshake_timeout")
            #expect(error.loadKitSource == .loadGenerator)
            #expect("\(error)".contains("out of file descriptors"), "\(error)")
        }
        try await during.value
    }

    @Test func aFailedIterationIsFollowedAtOnceByTheNext() async throws {
        // As in k6: a failing server gets the same offered load as a healthy one.
        let result = try await quiet(LoadTest("no-pause") { Stage("one", to: 1, over: .zero); Hold(.milliseconds(400)) })
            .run { user in
                _ = await user.sleep(for: .milliseconds(10))
                throw ScriptFailure("the server said no")
            }
        let m = result.metrics
        #expect((m.counters["iterations_failed"] ?? 0) >= 15, "\(m.counters)")   // ≈ 40 in 400 ms, not 1 after a 500 ms pause
        #expect(m.totalErrors == m.counters["iterations_failed"])
        let paused = try await quiet(LoadTest("pause") { Stage("one", to: 1, over: .zero); Hold(.milliseconds(400)) })
            .pauseAfterError(.milliseconds(300))
            .run { _ in throw ScriptFailure("refused") }
        #expect((paused.metrics.counters["iterations_failed"] ?? 0) <= 3, "an explicit pause still applies")
    }

    @Test func anSLAGivenOnlyToExpectReachesTheReportFiles() async throws {
        let root = NSTemporaryDirectory() + "loadkit-expect-only-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let result = try await LoadTest("expect-only", burst: 2).progress(false).settings(Settings([:]))
            .reports(true, root: root)
            .run { user in try await user.measure("step") { _ = await user.sleep(for: .milliseconds(5)) } }
        let recorded = Mutex<[String]>([])
        result.expect(reporter: FailureReporter { m, _ in recorded.withLock { $0.append(m) } }) {
            SLA.p95("step", below: .microseconds(1))                    // breached
            SLA.count("iterations", atLeast: 2)                          // holds
        }
        #expect(recorded.withLock { $0 }.count == 1)
        let dir = ReportWriter(root: root).directory(for: "expect-only")
        let json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json"))) as? [String: Any])
        #expect(json["thresholds_ok"] as? Bool == false, "\(json)")
        let step = try #require((json["thresholds"] as? [[String: Any]])?.first { $0["metric"] as? String == "step" })
        #expect(step["unit"] as? String == "ms" && step["limit"] as? Double == 0.001, "durations in ms, like the trends: \(step)")
        let summary = try String(contentsOfFile: dir + "/summary.txt", encoding: .utf8)
        #expect(summary.contains("step p(95) ="), "\(summary)")
        let html = try String(contentsOfFile: dir + "/report.html", encoding: .utf8)
        #expect(html.contains("1 of 2 thresholds breached."), "the HTML lists the thresholds too")
    }
}

/// A raw peer for handshake byte counts: reads the client's upgrade request and, once its head is
/// complete, writes `answer` and closes (an empty answer: closes without a word; nil: stays silent).
/// Counts every byte read and written, as the held-out user's counting server did.
private final class HandshakeByteCounter: Sendable {
    struct Counts: Sendable { var connections = 0, answered = 0, bytesIn = 0, bytesOut = 0 }
    private let peers: CountingListener<Counts>
    var port: Int { peers.port }
    var counts: Counts { peers.counts }

    init(answer: [UInt8]?) throws {
        peers = try CountingListener(Counts()) { _, tally in
            tally.update { $0.connections += 1 }
            return Peer(answer: answer, tally: tally)
        }
    }

    private final class Peer: ConnectionDelegate, @unchecked Sendable {
        let answer: [UInt8]?
        let tally: CountingListener<Counts>.Tally
        var head: [UInt8] = []
        var answered = false
        init(answer: [UInt8]?, tally: CountingListener<Counts>.Tally) { self.answer = answer; self.tally = tally }
        func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
            tally.update { $0.bytesIn += bytes.count }
            guard !answered else { return }
            head.append(contentsOf: bytes)
            guard head.indices.contains(where: { head[$0...].starts(with: [13, 10, 13, 10]) }), let answer else { return }
            answered = true
            tally.update { $0.bytesOut += answer.count; if !answer.isEmpty { $0.answered += 1 } }
            c.write(answer)
            c.shutdownOutput()
        }
        func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
    }
}

/// A raw HTTP peer that answers the first request on each connection (keep-alive) and, on the
/// next one, reads it and hangs up without a word. Counts request heads and bytes each way.
private final class OneAnswerPerConnection: Sendable {
    struct Counts: Sendable { var requests = 0, bytesIn = 0, bytesOut = 0 }
    private let peers: CountingListener<Counts>
    var port: Int { peers.port }
    var counts: Counts { peers.counts }

    init() throws {
        peers = try CountingListener(Counts()) { _, tally in Peer(tally: tally) }
    }

    private final class Peer: ConnectionDelegate, @unchecked Sendable {
        let tally: CountingListener<Counts>.Tally
        var buffered: [UInt8] = []
        var heads = 0
        init(tally: CountingListener<Counts>.Tally) { self.tally = tally }
        func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
            tally.update { $0.bytesIn += bytes.count }
            buffered.append(contentsOf: bytes)
            // Bodiless GETs: each blank line ends one request.
            while let end = buffered.indices.first(where: { buffered[$0...].starts(with: [13, 10, 13, 10]) }) {
                buffered.removeSubrange(..<(end + 4))
                heads += 1
                tally.update { $0.requests += 1 }
                if heads == 1 {
                    let answer = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8)
                    tally.update { $0.bytesOut += answer.count }
                    c.write(answer)
                } else {
                    c.close()
                    return
                }
            }
        }
        func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
    }
}

/// A WebSocket peer that answers the upgrade with its 101 and a text frame "welcome" in one write,
/// then answers the client's close frame with its own and shuts its side. Counts bytes each way.
private enum GreetingWebSocketPeer {
    struct Counts: Sendable { var greeted = 0, bytesIn = 0, bytesOut = 0 }

    /// `trailing` is written in the same write, behind the greeting; `answersClose`: whether the
    /// client's close frame gets one back.
    static func start(trailing: [UInt8] = [], answersClose: Bool = true) throws -> CountingListener<Counts> {
        try CountingListener(Counts()) { _, tally in Peer(tally: tally, trailing: trailing, answersClose: answersClose) }
    }

    private final class Peer: ConnectionDelegate, @unchecked Sendable {
        let tally: CountingListener<Counts>.Tally
        let trailing: [UInt8], answersClose: Bool
        var head: [UInt8] = []
        var upgraded = false, closed = false
        init(tally: CountingListener<Counts>.Tally, trailing: [UInt8], answersClose: Bool) {
            self.tally = tally; self.trailing = trailing; self.answersClose = answersClose
        }
        func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
            tally.update { $0.bytesIn += bytes.count }
            if upgraded {
                // The client's close frame (it sends nothing else): answer it once, 1000.
                guard !closed, answersClose else { return }
                closed = true
                send([0x88, 0x02, 0x03, 0xE8], on: c)
                c.shutdownOutput()
                return
            }
            head.append(contentsOf: bytes)
            let text = String(decoding: head, as: UTF8.self)
            guard text.contains("\r\n\r\n"),
                  let line = text.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("sec-websocket-key:") }) else { return }
            upgraded = true
            let key = line.dropFirst("sec-websocket-key:".count).trimmingCharacters(in: .whitespaces)
            var answer = Array(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: \(WebSocketHandshakeKeys.accept(forKey: key))\r\n\r\n").utf8)
            answer += [0x81, 7] + Array("welcome".utf8) + trailing
            tally.update { $0.greeted += 1 }
            send(answer, on: c)
        }
        func send(_ bytes: [UInt8], on c: any Transport) {
            tally.update { $0.bytesOut += bytes.count }
            c.write(bytes)
        }
        func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
    }
}

/// A held-out user's two users against a closed port made 24,098 attempts in 2 s at 98 % CPU,
/// and the summary said nothing of the busy loop; it now warns, and `.pauseAfterError` ends it.
@Suite struct FailureLoopTests {
    @Test func usersFailingBackToBackAreCalledABusyLoop() async throws {
        let closed = try ClosedPort()
        let client = HTTPClient()
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(closed.port)/ok"
        let plan = LoadTest("refused-loop") { Stage("all", to: 2, over: .zero); Hold(.milliseconds(1500)) }
            .progress(false).reports(false)
        let looped = try await plan.run { _ in try await client.get(url) }
        let failed = looped.metrics.counters["iterations_failed"] ?? 0
        #expect(failed >= 1000 && looped.metrics.errors["refused"]?.count == failed, "\(looped.metrics.errors)")
        let warning = try #require(ConsoleSummary.failureLoopWarning(looped))
        #expect(warning.hasPrefix("⚠ \(Fmt.int(failed)) iterations failed back to back ("))
        #expect(ConsoleSummary.render(looped, outcomes: [], full: false).contains(warning))
        #expect(ConsoleSummary.full(looped).contains(warning))
        // Paced: each user fails at most once per pause, and nothing is said.
        let paced = try await plan.pauseAfterError(.milliseconds(100)).run { _ in try await client.get(url) }
        let pacedFailures = paced.metrics.counters["iterations_failed"] ?? 0
        #expect(pacedFailures > 0 && pacedFailures <= 2 * 16, "\(pacedFailures)")
        #expect(ConsoleSummary.failureLoopWarning(paced) == nil)
        // The open model does not loop: its arrivals keep their schedule.
        var open = looped
        open.environment["model"] = RunEngine.openModelTag
        #expect(ConsoleSummary.failureLoopWarning(open) == nil)
        withExtendedLifetime(closed) {}
    }
}

/// A held-out user's script waited on `receive()` (no time-out) from a server that never
/// answered: the stop cut it, the run read `✓ PASSED`, `errors rate = 0 %`, and
/// `errors_after_cancel: 2` sat in summary.txt's counters unexplained. The summaries now say it.
@Suite struct CutAtStopTests {
    @Test func operationsCutByTheStopAreSaid() async throws {
        let listener = try TCPListener { tcp in tcp.start(delegate: WSScriptedServer(.mute)) }
        defer { listener.close() }
        let url = "ws://127.0.0.1:\(listener.address.port)/silent"
        let result = try await LoadTest("silent") { Stage("all", to: 2, over: .zero); Hold(.milliseconds(300)) }
            .gracefulStop(.milliseconds(200)).progress(false).reports(false)
            .run { _ in
                let ws = try await WebSocketClient.connect(url, timeout: .seconds(5))
                _ = try await ws.receive()
            }
        let m = result.metrics
        #expect(m.counters["ws_sessions"] == 2 && m.totalErrors == 0, "\(m.errors)")
        // One per iteration cut (errors_after_cancel counts each layer a cut operation crosses).
        #expect(m.counters["iterations_interrupted"] == 2, "\(m.counters)")
        let line = try #require(ConsoleSummary.cutAtStop(m))
        #expect(line.hasPrefix("2 iterations were cut by the stop before ending (iterations_interrupted, not failures)"))
        #expect(ConsoleSummary.render(result, outcomes: [], full: false).contains(line))
        #expect(ConsoleSummary.full(result).contains(line))
        #expect(ConsoleSummary.cutAtStop(MetricsSnapshot()) == nil)
        // A user leaving at `checkStop()` when the stop comes is not cut (a review found it counted).
        let left = try await LoadTest("leaves") { Stage("all", to: 2, over: .zero); Hold(.milliseconds(300)) }
            .gracefulStop(.seconds(5)).progress(false).reports(false)
            .run { user in
                while true { try user.checkStop(); await user.sleep(for: .milliseconds(10)) }
            }
        #expect(left.metrics.counters["iterations_interrupted"] == nil, "\(left.metrics.counters)")
        #expect(ConsoleSummary.cutAtStop(left.metrics) == nil)
        // report.html's counters: what the runner's own counts mean, not a rate.
        #expect(HTMLReport.counterNote("iterations_interrupted", 2, seconds: 0.5) == "cut by the stop before ending (not failures)")
        #expect(HTMLReport.counterNote("data_sent", 3 << 20, seconds: 2) == "bytes · 1.5 MB/s")
        #expect(HTMLReport.counterNote("http_reqs", 10, seconds: 2) == "5/s")
        #expect([512, 1536, 1_048_570, 5 << 20, 3 << 30].map { Fmt.bytes(Int64($0)) } == ["512 B", "1.5 KB", "1.0 MB", "5.0 MB", "3.00 GB"])
    }
}
