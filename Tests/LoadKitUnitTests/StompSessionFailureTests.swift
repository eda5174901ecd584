import Testing
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// A connected STOMP session the server ends (an ERROR frame, silence past the heart-beats) is one
/// failure of the user, the server's, counted when it happens — whether or not the script was
/// waiting on the session then, and however many ways the script then sees it again (its own
/// `onError` hook, `waitClosed()`, a later call on the dead session). A held-out user's broker
/// sent ERROR and closed: LoadKit counted nothing (fire-and-forget sends), or counted it twice
/// and blamed the second on the load generator (`stomp_closed [load-generator]`).
@Suite struct StompSessionFailureTests {
    private func quiet(_ t: LoadTest) -> LoadTest { t.progress(false).reports(false).settings(Settings([:])).exclusive(false) }

    // A generous connect time-out: the whole test suite runs in parallel on two cores, and a
    // connect that times out would be a failure of its own, not the one under test.
    private func connect(_ url: String, login: String = "user", heartBeat: (send: Duration, receive: Duration) = (.zero, .zero),
                         webSocket: Bool, port: Int) async throws -> StompClient {
        webSocket
            ? try await StompClient.connect(webSocket: url, connectHeaders: [("login", login), ("passcode", "pw-secret-1")],
                                            host: "test-vhost", heartBeat: heartBeat, timeout: .seconds(30))
            : try await StompClient.connect(tcpHost: "127.0.0.1", port: port, connectHeaders: [("login", login), ("passcode", "pw-secret-1")],
                                            vhost: "test-vhost", heartBeat: heartBeat, timeout: .seconds(30))
    }

    private func totalErrors(_ m: MetricsSnapshot) -> Int64 { m.errors.values.reduce(0) { $0 + $1.count } }

    /// Fire-and-forget SENDs to a destination the broker answers with ERROR (then closes): the
    /// script never awaits anything that throws, and the ERROR is still one failure a user.
    @Test(arguments: [false, true])
    func anErrorNobodyWaitedForIsCountedOnce(webSocket: Bool) async throws {
        let broker = try StompTestBroker(webSocket: webSocket)
        defer { broker.close() }
        let relay = try CountingRelay(to: broker.address)
        let result = try await quiet(LoadTest("stomp-error-unwaited", burst: 2)).run { user in
            let c = try await connect("ws://127.0.0.1:\(relay.port)/stomp", webSocket: webSocket, port: relay.port)
            c.send(destination: "/error", text: "x")
            _ = await c.waitClosed()
            c.send(destination: "/error", text: "dropped: the session is over")
        }
        let m = result.metrics
        #expect(totalErrors(m) == 2, "\(m.errors)")
        #expect(m.errors["stomp_error"]?.count == 2 && m.errors["stomp_error"]?.source == .server, "\(m.errors)")
        #expect(m.errors["stomp_error"]?.examples.first?.contains("boom") == true, "\(m.errors)")
        if webSocket {
            #expect(m.counters["ws_sessions_closed_by_server"] == 2, "the broker ended both sessions: \(m.counters)")
        }
        // Every byte the relay carried is counted, the closing handshake's included.
        let seen = await relay.settled()
        #expect(m.counters["data_received"] == Int64(seen.serverToClient), "the relay carried \(seen.serverToClient) bytes down")
        #expect(m.counters["data_sent"] == Int64(seen.clientToServer), "the relay carried \(seen.clientToServer) bytes up")
    }

    /// The script hooks `onError` to count the failure itself, then calls the dead session (a
    /// SEND with a receipt throws): still one failure a user, the server's — not a second one
    /// blamed on the load generator.
    @Test(arguments: [false, true])
    func anErrorSeenThreeWaysIsStillOneServerFailure(webSocket: Bool) async throws {
        let broker = try StompTestBroker(webSocket: webSocket)
        defer { broker.close() }
        let thrown = Mutex<[String]>([])
        let result = try await quiet(LoadTest("stomp-error-hooked", burst: 2)).run { user in
            let c = try await connect(broker.webSocketURL, webSocket: webSocket, port: broker.address.port)
            c.onError = { e in user.fail(e, step: "on_error") }
            c.send(destination: "/error", text: "x")
            if let cause = await c.waitClosed() { user.fail(cause, step: "wait_closed") }
            do {
                try await user.measure("send_after") { try await c.send(destination: "/a", body: [1], receipt: true) }
            } catch {
                thrown.withLock { $0.append("\(error.loadKitKind) \(error.loadKitSource)") }
                throw error
            }
        }
        let m = result.metrics
        #expect(totalErrors(m) == 2, "\(m.errors)")
        #expect(m.errors.keys.sorted() == ["stomp_error"], "\(m.errors)")
        #expect(m.errors["stomp_error"]?.source == .server)
        #expect(thrown.withLock { $0 } == ["stomp_error server", "stomp_error server"], "a call on the dead session fails as the server's ERROR")
        #expect(m.counters["iterations_failed"] == 2)
    }

    /// A server that promises heart-beats and sends none: the client ends the session, and that
    /// is the server's failure, counted (it was a normal close 1000 and no error at all).
    @Test(arguments: [false, true])
    func aSilentServerIsOneHeartBeatFailure(webSocket: Bool) async throws {
        let broker = try StompTestBroker(webSocket: webSocket)
        defer { broker.close() }
        let result = try await quiet(LoadTest("stomp-silent", burst: 1)).run { user in
            let c = try await connect(broker.webSocketURL, login: "silent", heartBeat: (.zero, .milliseconds(30)),
                                      webSocket: webSocket, port: broker.address.port)
            _ = await c.waitClosed()
        }
        let m = result.metrics
        #expect(totalErrors(m) == 1, "\(m.errors)")
        #expect(m.errors["stomp_heartbeat_timeout"]?.source == .server, "\(m.errors)")
        if webSocket { #expect(m.counters["ws_sessions_closed_by_server"] == 1, "\(m.counters)") }
    }

    /// A CONNECT the broker refuses over WebSocket (ERROR, then its close frame): the failure is
    /// the connect's (thrown to the script, counted once), the session counts as ended by the
    /// server, and the server's close frame is read and counted — the client finishes the closing
    /// handshake instead of dropping TCP with the close frame unread (a held-out user's server
    /// counted 4 bytes more than LoadKit on most refused connects).
    @Test func aRefusedConnectOverWebSocketClosesCleanlyAndCountsEveryByte() async throws {
        let broker = try StompTestBroker(webSocket: true)
        defer { broker.close() }
        let relay = try CountingRelay(to: broker.address)
        let result = try await quiet(LoadTest("stomp-refused-ws", burst: 3)).run { user in
            // The broker's close frame comes 30 ms after its ERROR for one user: read and counted
            // too (the client finishes the closing handshake instead of dropping TCP at once).
            _ = try await connect("ws://127.0.0.1:\(relay.port)/stomp", login: user.index == 0 ? "bad-slow-close" : "bad",
                                  webSocket: true, port: relay.port)
        }
        let m = result.metrics
        #expect(totalErrors(m) == 3 && m.errors["stomp_error"]?.count == 3, "\(m.errors)")
        #expect(m.counters["ws_sessions_closed_by_server"] == 3, "\(m.counters)")
        // A refused login is one failure, not a successful WebSocket open and a failure: the
        // error rate of three refused logins is 100 % (it read 50 %).
        #expect((m.counters["operations"] ?? 0) == 0, "\(m.counters)")
        #expect(m.errorRate == 1)
        let seen = await relay.settled()
        #expect(m.counters["data_received"] == Int64(seen.serverToClient), "the relay carried \(seen.serverToClient) bytes down")
        #expect(m.counters["data_sent"] == Int64(seen.clientToServer), "the relay carried \(seen.clientToServer) bytes up")
    }

    /// The server closes the WebSocket (1011) or drops it while the session is connected and the
    /// script only sends: one failure a user, the server's close — counted when it happens, not
    /// again when the script hands the same failure to `user.fail` from its hook and from
    /// `waitClosed()` (a review found it counted 0 times, then 2).
    @Test(arguments: ["/close-1011", "/drop"])
    func theServersCloseIsOneFailureToo(destination: String) async throws {
        let broker = try StompTestBroker(webSocket: true)
        defer { broker.close() }
        let result = try await quiet(LoadTest("stomp-server-close", burst: 2)).run { user in
            let c = try await connect(broker.webSocketURL, webSocket: true, port: broker.address.port)
            if user.index == 1 { c.onError = { e in user.fail(e, step: "on_error") } }
            c.send(destination: destination, text: "x")
            if let cause = await c.waitClosed(), user.index == 1 { user.fail(cause, step: "wait_closed") }
        }
        let m = result.metrics
        let kind = destination == "/drop" ? "ws_close_1006" : "ws_close_1011"
        #expect(totalErrors(m) == 2 && m.errors[kind]?.count == 2 && m.errors[kind]?.source == .server, "\(m.errors)")
        #expect(m.counters["ws_sessions_closed_by_server"] == 2, "\(m.counters)")
    }

    /// A script that throws its own error on seeing the session end (its own wording, or its own
    /// kind) right after the counted failure: one failure, not two — its own kind renames it, a
    /// generic `assertion` does not.
    @Test(arguments: [false, true])
    func aScriptsOwnErrorOnTheSessionsEndIsThatFailure(ownKind: Bool) async throws {
        let broker = try StompTestBroker(webSocket: true)
        defer { broker.close() }
        let result = try await quiet(LoadTest("stomp-rethrown", burst: 2)).run { user in
            let c = try await connect(broker.webSocketURL, webSocket: true, port: broker.address.port)
            c.send(destination: "/error", text: "x")
            if let cause = await c.waitClosed() {
                throw ownKind ? ScriptFailure("chat dropped: \(cause)", kind: "chat_dropped", source: .server)
                              : ScriptFailure("chat dropped: \(cause)")
            }
        }
        let m = result.metrics
        #expect(totalErrors(m) == 2, "\(m.errors)")
        #expect(m.errors.keys.sorted() == [ownKind ? "chat_dropped" : "stomp_error"], "\(m.errors)")
        #expect(m.counters["iterations_failed"] == 2)
    }

    /// Many sessions of one user, each ended by an ERROR the script also hands to `user.fail`:
    /// each counted once (a bounded memory of counted failures once let the 17th on count twice).
    @Test func everySessionOfAUserIsCountedOnce() async throws {
        let broker = try StompTestBroker(webSocket: true)
        defer { broker.close() }
        let result = try await quiet(LoadTest("stomp-many-sessions", burst: 1)).run { user in
            for _ in 0..<20 {
                let c = try await connect(broker.webSocketURL, webSocket: true, port: broker.address.port)
                c.send(destination: "/error", text: "x")
                if let cause = await c.waitClosed() { user.fail(cause, step: "wait_closed") }
            }
        }
        #expect(result.metrics.errors["stomp_error"]?.count == 20, "\(result.metrics.errors)")
        #expect(totalErrors(result.metrics) == 20)
    }

    /// A session failure counted on the loop while the script is inside another step does not
    /// make that step a failure: it keeps its latency sample and its success.
    @Test func aSessionFailureDoesNotSpoilAnUnrelatedStep() async throws {
        let broker = try StompTestBroker(webSocket: true)
        defer { broker.close() }
        let result = try await quiet(LoadTest("stomp-unrelated-step", burst: 2)).run { user in
            let c = try await connect(broker.webSocketURL, webSocket: true, port: broker.address.port)
            try await user.measure("unrelated") {
                c.send(destination: "/error", text: "x")      // the ERROR arrives during the step
                await user.sleep(for: .milliseconds(200))
            }
            _ = await c.waitClosed()
        }
        let m = result.metrics
        #expect(m.trends["unrelated"]?.count == 2, "both steps timed: \(m.trends["unrelated"]?.count ?? 0)")
        #expect(m.errors["stomp_error"]?.count == 2, "\(m.errors)")
    }

    /// A client the script keeps across iterations (`user.once`): a later iteration that fails
    /// leaves it alone; when the iteration that made it fails, the runner closes its session and
    /// the next `once` makes a new client — not a dead one kept for every later iteration to fail
    /// on (a review's probe: 19 errors in 1 s). The user's end drops what it kept, and its client
    /// is closed for it (`ws_sessions_left_open`). The server closing a kept client: made again too.
    @Test(arguments: [0, 1, 2])
    func aClientKeptAcrossIterationsAndAFailedIteration(failing: Int) async throws {
        let broker = try StompTestBroker(webSocket: true)
        defer { broker.close() }
        let result = try await quiet(LoadTest("stomp-kept") { Stage("one", to: 1, over: .zero); Hold(.milliseconds(500)) })
            .run { user in
                let c = try await user.once("stomp") { try await connect(broker.webSocketURL, webSocket: true, port: broker.address.port) }
                try await c.send(destination: "/a", body: [1], receipt: true)
                await user.sleep(for: .milliseconds(20))
                // Case 2: the server drops the kept client's connection in iteration 1 (no failure
                // of the script's; the next `once` finds it ended and connects again).
                if failing == 2 {
                    if user.iteration == 1 { c.send(destination: "/drop", text: "x"); _ = await c.waitClosed() }
                    if user.iteration == 3 { throw ScriptFailure("iteration 3 fails: a later one than made the new client") }
                } else if user.iteration == failing {
                    throw ScriptFailure("iteration \(failing) fails")
                }
            }
        let m = result.metrics
        let dropped = failing == 2 ? 1 : 0   // the server's drop: one ws_close_1006 [server]
        #expect(m.errors["assertion"]?.count == 1 && totalErrors(m) == Int64(1 + dropped), "\(m.errors)")
        #expect(dropped == 0 || m.errors["ws_close_1006"]?.source == .server, "\(m.errors)")
        #expect((m.counters["iterations"] ?? 0) >= 5, "\(m.counters)")
        // Failing the iteration that made it, or the server dropping it: a new client for the next.
        // Failing a later one: the same client, to the end.
        #expect(m.counters["ws_sessions"] == (failing == 1 ? 1 : 2), "\(m.counters)")
        #expect(m.counters["ws_sessions_left_open"] == (failing == 0 ? 2 : 1), "\(m.counters)")
    }

    /// A script that ends its session itself (DISCONNECT, or a plain close) has no failure.
    @Test func aSessionTheScriptEndsIsNoFailure() async throws {
        let broker = try StompTestBroker(webSocket: true)
        defer { broker.close() }
        let result = try await quiet(LoadTest("stomp-clean", burst: 2)).run { user in
            let c = try await connect(broker.webSocketURL, webSocket: true, port: broker.address.port)
            try await c.send(destination: "/a", body: [1], receipt: true)
            if user.index == 0 { await c.disconnect() } else { c.close() }
            _ = await c.waitClosed()
        }
        let m = result.metrics
        #expect(m.errors.isEmpty, "\(m.errors)")
        #expect(m.counters["operations"] == 2, "one operation a connect (CONNECTED), none for its WebSocket alone: \(m.counters)")
        #expect(m.counters["ws_sessions_closed_by_server"] == nil || m.counters["ws_sessions_closed_by_server"] == 0, "\(m.counters)")
    }
}
