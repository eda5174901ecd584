import Foundation
import LoadKit

/// Metric names of the Runnity scenario (the seed's JMeter samplers).
enum RunnityMetrics {
    /// Trend: `POST test-login` (seed: < 100 ms).
    static let testLogin = "test-login"
    /// Trend: `POST enter` (seed: < 200 ms).
    static let enter = "enter"
    /// Trend: TCP connect + WebSocket upgrade with the ticket (seed: < 1 s).
    static let websocketConnect = "websocket_connect"
    /// Trend: upgrade done → `CONNECTED` message.
    static let connectedMessage = "connected_message"
    /// Trend: `enter` answered → WebSocket open (how much of the ticket's TTL was used).
    static let ticketAge = "ticket_age"
    /// Trend: PING sent → PONG received (seed: within 5 s).
    static let pongLatency = "pong_latency"
    /// Counters.
    static let logins = "logins", enters = "enters", connects = "connects", pings = "pings_sent", pongs = "pongs_received"
    /// Counter: messages other than PONG seen while waiting (server broadcasts).
    static let otherMessages = "messages_other"
    /// Trend: how long each WebSocket stayed connected.
    static let connectionDuration = "connection_duration"
}

/// A Runnity failure with a stable kind: `invalid_ticket`, `ws_close_timeout`, `pong_timeout`,
/// `connected_missing`, `unexpected_message`, `envelope_failure`, `http_<status>`.
struct RunnityFailure: ClassifiedError, Sendable {
    var kind: String
    var source: FailureSource
    var message: String
    var description: String { Secrets.redact(message) }

    /// Maps the kit's errors onto the seed's vocabulary: an `INVALID_TICKET` anywhere (401 upgrade,
    /// 1008 close) is `invalid_ticket`; the server's idle close (`TIMEOUT`) is `ws_close_timeout`;
    /// anything else keeps its own classification.
    static func classify(_ error: any Error) -> any Error {
        if let w = error as? WebSocketError {
            if w.message.contains("INVALID_TICKET") || w.closeReason == "INVALID_TICKET" {
                return RunnityFailure(kind: "invalid_ticket", source: .server,
                                      message: "INVALID_TICKET: the server refused the ticket (\(w.kind)); expired or already used")
            }
            if w.closeReason == "TIMEOUT" {
                return RunnityFailure(kind: "ws_close_timeout", source: .server,
                                      message: "the server closed the WebSocket with \(w.closeCode ?? 0) TIMEOUT (no message within its idle time-out)")
            }
        }
        return error
    }
}

/// The API's answer envelope `{isSuccess, code, message, data}`.
struct RunnityEnvelope {
    /// Checks status and `isSuccess`; returns the response. A failure names the step, the status
    /// and the envelope's message (its error code first, e.g. `NOT_PARTICIPANT: …`).
    static func require(_ r: HTTPResponse, step: String, accept: ClosedRange<Int> = 200...299) throws -> HTTPResponse {
        let ok = r.jsonValue(at: "isSuccess")
        // Server text enters the error through Secrets (redacted, then cut).
        let msg = Secrets.excerpt(r.jsonValue(at: "message") ?? r.jsonValue(at: "errorCode") ?? r.bodyString, limit: 160)
        if !accept.contains(r.status) {
            let invalidTicket = msg.contains("INVALID_TICKET")
            throw RunnityFailure(kind: invalidTicket ? "invalid_ticket" : "http_\(r.status)", source: .server,
                                 message: "\(step) answered HTTP \(r.status): \(msg)")
        }
        if ok == "false" {
            throw RunnityFailure(kind: "envelope_failure", source: .server, message: "\(step) answered isSuccess=false: \(msg)")
        }
        return r
    }

    /// A required field of the body (`data.ticket`); missing → a server-side failure naming the path.
    static func field(_ r: HTTPResponse, _ path: String, step: String) throws -> String {
        guard let v = r.jsonValue(at: path), !v.isEmpty else {
            throw RunnityFailure(kind: "missing_field", source: .server, message: "\(step) answered without \(path)")
        }
        return v
    }
}

extension RunnityEnvelope {
    /// The WebSocket URL at `path` of an answer (`data.wsUrl`), checked: a malformed one is the
    /// server's fault (`bad_url`, source server, naming the field), not the script's, which would
    /// only find out when it opened it. The URL is quoted through the redaction (no query, no
    /// credentials: ``Endpoint``'s own `bad_url` text).
    static func webSocketURL(_ r: HTTPResponse, _ path: String, step: String) throws -> String {
        let url = try field(r, path, step: step)
        do { _ = try Endpoint(url, defaultScheme: .ws) } catch {
            throw ScriptFailure("\(step) answered a malformed WebSocket URL at \(path): \(error)", kind: "bad_url", source: .server)
        }
        return url
    }
}

/// The type of a JSON text message (`{"type":"PONG",…}`), nil when it has none.
func messageType(_ text: String) -> String? {
    guard let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
    return o["type"] as? String
}

extension RunnityConfiguration {
    /// One member's `test-login` → access token.
    func login(_ http: HTTPClient, memberId: Int) async throws -> String {
        let r = try await http.post(url(loginPath, memberId: memberId), body: [], headers: httpHeaders(token: nil, json: false),
                                    timeout: httpTimeout)
        let token = try RunnityEnvelope.field(RunnityEnvelope.require(r, step: "test-login"), tokenJSONPath, step: "test-login")
        Secrets.register(token)
        return token
    }

    /// One virtual user's life (seed 002): test-login, enter, WebSocket with the ticket at once,
    /// `CONNECTED`, then PING every ``pingInterval`` with the PONG expected within ``pongTimeout``,
    /// until the run stops. Marked connected from `CONNECTED` until the socket closes. A failure is
    /// recorded, classified, and the user stays down until the run ends (the seed's threads do not
    /// reconnect), so `connections_held` shows it. Never throws (errors are already recorded).
    func runUser(_ user: VirtualUser, http: HTTPClient, challengeId created: String?) async {
        do {
            try await life(user, http: http, challengeId: created)
        } catch {
            // Already recorded by `measure` or below.
            while !user.isStopping { _ = await user.sleep(for: .seconds(3600)) }
        }
    }

    private func life(_ user: VirtualUser, http: HTTPClient, challengeId created: String?) async throws {
        let who: (memberId: Int, challengeId: String)
        do { who = try assignment(forUser: user.index, challengeId: created) } catch { user.fail(error, step: "assign"); throw error }

        let token = try await user.measure(RunnityMetrics.testLogin) { try await login(http, memberId: who.memberId) }
        user.count(RunnityMetrics.logins)

        let (ticket, wsUrl) = try await user.measure(RunnityMetrics.enter) {
            let r = try await http.post(url(enterPath, challengeId: who.challengeId), body: [], headers: httpHeaders(token: token),
                                        timeout: httpTimeout)
            let ok = try RunnityEnvelope.require(r, step: "enter")
            let ticket = try RunnityEnvelope.field(ok, ticketJSONPath, step: "enter")
            Secrets.register(ticket)
            guard let wsUrl = webSocketURLOverride else {
                return (ticket, try RunnityEnvelope.webSocketURL(ok, webSocketURLJSONPath, step: "enter"))
            }
            return (ticket, wsUrl)
        }
        let enteredAt = monotonicNanos()
        user.count(RunnityMetrics.enters)
        if connectDelay > .zero { guard await user.sleep(for: connectDelay) else { return } }

        user.record(RunnityMetrics.ticketAge, .nanoseconds(Int64(monotonicNanos() &- enteredAt)))
        let ws = try await user.measure(RunnityMetrics.websocketConnect) {
            do {
                return try await WebSocketClient.connect(webSocketURL(wsUrl: wsUrl, ticket: ticket), headers: headers, timeout: connectTimeout, tls: tls)
            } catch { throw RunnityFailure.classify(error) }
        }
        user.count(RunnityMetrics.connects)
        if let tls = ws.tlsHandshakeNanos { user.record("tls_handshake", .nanoseconds(Int64(tls))) }

        // The first message must be CONNECTED.
        do {
            try await user.measure(RunnityMetrics.connectedMessage) {
                let first: WebSocketMessage
                do { first = try await ws.receive(timeout: connectTimeout) } catch let e as WebSocketError where e.kind == "ws_receive_timeout" {
                    throw RunnityFailure(kind: "connected_missing", source: .server,
                                         message: "no CONNECTED message within \(connectTimeout) of the WebSocket open")
                } catch { throw RunnityFailure.classify(error) }
                guard let text = first.text, messageType(text) == "CONNECTED" else {
                    throw RunnityFailure(kind: "unexpected_message", source: .server,
                                         message: "first message is not {\"type\":\"CONNECTED\"}: \(first.text.map { Secrets.excerpt($0, limit: 120) } ?? "<binary>")")
                }
            }
        } catch {
            await ws.close()
            throw error
        }

        let connectedAt = monotonicNanos()
        user.markConnected(true)
        // A drop is seen at once (not only at the next PING), so `connections_held` is exact.
        let watcher = Task { _ = await ws.waitClosed(); user.markConnected(false) }
        defer { watcher.cancel() }

        do {
            try await hold(user, ws)
        } catch {
            user.markConnected(false)
            user.record(RunnityMetrics.connectionDuration, .nanoseconds(Int64(monotonicNanos() &- connectedAt)))
            await ws.close()
            throw error
        }
        user.record(RunnityMetrics.connectionDuration, .nanoseconds(Int64(monotonicNanos() &- connectedAt)))
        user.markConnected(false)
        await ws.close(code: 1000, reason: "load test done")
    }

    /// PING every ``pingInterval`` (first at once; ticks missed by a slow PONG are skipped, as
    /// `every` does) until the run stops. Between PINGs the user waits on the socket in slices of
    /// at most 0.5 s, so a server close (`TIMEOUT`, a drop) is recorded when it happens and a
    /// stop is noticed within a second. A missing PONG is recorded and the PINGs go on.
    private func hold(_ user: VirtualUser, _ ws: WebSocketClient) async throws {
        let interval = max(1_000_000, pingInterval.nanoseconds)
        var due = monotonicNanos()
        while !user.isStopping {
            var now = monotonicNanos()
            if now >= due {
                do {
                    try await ping(user, ws)
                } catch let f as RunnityFailure where f.kind == "pong_timeout" {
                    // Recorded by `measure`; the connection may still be fine.
                }
                now = monotonicNanos()
                due += interval
                if now >= due {
                    let missed = (now - due) / interval + 1
                    user.count(RunnerMetrics.ticksMissed, by: Int64(missed))
                    due += missed * interval
                }
                continue
            }
            do {
                let m = try await ws.receive(timeout: .nanoseconds(Int64(min(due - now, 500_000_000))))
                user.count(RunnityMetrics.otherMessages)
                _ = m
            } catch let e as WebSocketError where e.kind == "ws_receive_timeout" {
                continue
            } catch {
                if user.isStopping && error is CancellationError { return }
                let f = RunnityFailure.classify(error)
                user.fail(f, step: "connection")
                throw f
            }
        }
    }

    /// `{"type":"PING","timestamp":ms}` → the next `{"type":"PONG"}` within ``pongTimeout``
    /// (other messages are counted and skipped). Recorded as `pong_latency`.
    private func ping(_ user: VirtualUser, _ ws: WebSocketClient) async throws {
        try await user.measure(RunnityMetrics.pongLatency) {
            let sent = monotonicNanos()
            do { try await ws.send(text: #"{"type":"PING","timestamp":\#(wallClockMillis())}"#) } catch { throw RunnityFailure.classify(error) }
            user.count(RunnityMetrics.pings)
            let deadline = sent &+ pongTimeout.nanoseconds
            while true {
                let now = monotonicNanos()
                guard now < deadline else { throw pongTimeoutFailure() }
                let m: WebSocketMessage
                do { m = try await ws.receive(timeout: .nanoseconds(Int64(deadline - now))) } catch let e as WebSocketError where e.kind == "ws_receive_timeout" {
                    throw pongTimeoutFailure()
                } catch { throw RunnityFailure.classify(error) }
                if let t = m.text, messageType(t) == "PONG" { break }
                user.count(RunnityMetrics.otherMessages)
            }
            user.count(RunnityMetrics.pongs)
        }
    }

    private func pongTimeoutFailure() -> RunnityFailure {
        RunnityFailure(kind: "pong_timeout", source: .server, message: "no PONG within \(pongTimeout) of a PING")
    }
}
