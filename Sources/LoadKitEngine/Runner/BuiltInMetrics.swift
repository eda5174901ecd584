import LoadKitTransport
import LoadKitProtocols

/// k6's built-in metrics, recorded with no code whenever a virtual user's script uses
/// ``HTTPClient`` or ``WebSocketClient`` (and by the runner for iterations and users). Trends hold
/// microseconds; a request's `name` tag adds `http_req_duration{name:…}`, `http_reqs{name:…}` and
/// `http_req_failed{name:…}`, which SLAs can select (`SLA.p95("http_req_duration", tag: "name:/items/{id}", …)`).
public enum BuiltInMetrics {
    /// Counter: HTTP requests sent (answered or not).
    public static let httpReqs = "http_reqs"
    /// Counter: messages a messaging scenario sent (the STOMP chat's SENDs); shown first in the
    /// console summary when counted. Counted by the scenario, not by the clients: a script of
    /// your own counts its SENDs with `user.count(.messagesSent)` (``StompClient`` frames,
    /// heart-beats included, are in `ws_msgs_sent`).
    public static let messagesSent = "messages_sent"
    /// Counter: messages a messaging scenario received (the STOMP chat's MESSAGE frames); the
    /// progress line's msg/s. Counted by the scenario (`user.count(.messagesReceived)` in a
    /// subscription's handler), not by the clients.
    public static let messagesReceived = "messages_received"
    /// Trend: sending + waiting + receiving of every answered request (any status).
    public static let httpReqDuration = "http_req_duration"
    /// Trend: `http_req_duration` of the answers whose status was expected (k6's
    /// `http_req_duration{expected_response:true}`).
    public static let httpReqDurationExpected = "http_req_duration{expected_response:true}"
    /// Rate: requests whose status was not expected or that got no answer.
    public static let httpReqFailed = "http_req_failed"
    /// Trend: waiting for a free pool slot (capped pools) and for the connection's loop.
    public static let httpReqBlocked = "http_req_blocked"
    /// Trend: TCP connect (0 on a reused connection).
    public static let httpReqConnecting = "http_req_connecting"
    /// Trend: TLS handshake (0 for `http` and on a reused connection).
    public static let httpReqTLSHandshaking = "http_req_tls_handshaking"
    /// Trend: handing the request to the kernel.
    public static let httpReqSending = "http_req_sending"
    /// Trend: time to first byte.
    public static let httpReqWaiting = "http_req_waiting"
    /// Trend: first to last response byte.
    public static let httpReqReceiving = "http_req_receiving"
    /// Counter: requests that waited for a connection because the pool was capped.
    public static let httpReqsQueued = "http_reqs_queued"
    /// Counter: requests sent again on a fresh connection after a reused keep-alive connection
    /// closed without a word (the server saw them twice; `http_reqs` counts the script's request once).
    public static let httpReqsRetried = "http_reqs_retried"
    /// Counter: requests sent and then cancelled before they ended — cut by the runner's stop (a
    /// user still waiting when the graceful stop ran out) or cancelled by the script (a task it
    /// cancelled): the server may have read them, so its count is `http_reqs + http_reqs_retried
    /// + http_reqs_cut`. Neither failures nor in `http_reqs`.
    public static let httpReqsCut = "http_reqs_cut"
    /// Counter: bytes put on the wire (HTTP requests, WebSocket frames and handshakes; over
    /// https/wss their TLS records, the TLS handshake included).
    public static let dataSent = "data_sent"
    /// Counter: bytes read from the wire (TLS records included, as for ``dataSent``).
    public static let dataReceived = "data_received"
    /// Trend: TCP connect plus opening handshake of each WebSocket.
    public static let wsConnecting = "ws_connecting"
    /// Counter: WebSocket sessions opened.
    public static let wsSessions = "ws_sessions"
    /// Counter: WebSocket sessions the script left open when its iteration threw or the user ended; the
    /// runner closed them (1001 going away). Not an error: a sign the script misses a close.
    public static let wsSessionsLeftOpen = "ws_sessions_left_open"
    /// Trend: how long each WebSocket session lasted (open to close).
    public static let wsSessionDuration = "ws_session_duration"
    /// Counter: WebSocket sessions the server ended — its close frame, a drop without one (1006),
    /// or a close LoadKit sent because the server broke the protocol — whether or not the script
    /// was waiting on the session then (the others the script or the runner closed).
    public static let wsSessionsClosedByServer = "ws_sessions_closed_by_server"
    /// Counter: WebSocket data messages sent.
    public static let wsMsgsSent = "ws_msgs_sent"
    /// Counter: WebSocket data messages received.
    public static let wsMsgsReceived = "ws_msgs_received"

    /// `metric{tag}`: the name under which a tagged sample is also recorded (`http_reqs{name:/items/{id}}`).
    public static func tagged(_ metric: String, _ tag: String) -> String { "\(metric){\(tag)}" }
}

/// Pre-resolved handles of the HTTP built-ins in one recorder (resolved on a user's first request,
/// so runs that send no HTTP carry no empty HTTP metrics).
struct HTTPMetricHandles: Sendable {
    let reqs, queued, retried, dataSent, dataReceived: CounterHandle
    let failed: RateHandle
    let duration, durationExpected, blocked, connecting, tls, sending, waiting, receiving: TrendHandle

    init(_ r: MetricsRecorder) {
        typealias M = BuiltInMetrics
        reqs = r.counter(M.httpReqs); queued = r.counter(M.httpReqsQueued); retried = r.counter(M.httpReqsRetried)
        dataSent = r.counter(M.dataSent); dataReceived = r.counter(M.dataReceived)
        failed = r.rateHandle(M.httpReqFailed)
        duration = r.trend(M.httpReqDuration); durationExpected = r.trend(M.httpReqDurationExpected)
        blocked = r.trend(M.httpReqBlocked); connecting = r.trend(M.httpReqConnecting)
        tls = r.trend(M.httpReqTLSHandshaking); sending = r.trend(M.httpReqSending)
        waiting = r.trend(M.httpReqWaiting); receiving = r.trend(M.httpReqReceiving)
    }
}

extension UserContext: ClientObserver {
    /// The user's one cancellation scope (no handler per request).
    var cancellation: TaskCancellationScope? { cancellationScope }

    func httpExchangeFinished(_ e: HTTPExchange) {
        // A request cancelled with its task — the runner cutting a user at the end of its grace
        // period, or the script cancelling a task of its own — is not a failed request; one
        // already sent reached the server all the same: `http_reqs_cut`, its sends again
        // (`http_reqs_retried`) and its bytes so far, so that the server's count adds up.
        if e.cancelled && (isStopping || Task.isCancelled) {
            // By name, not through `httpHandles`: resolving those would show `http_reqs 0` in a
            // run whose every request was cut (no request ended there).
            let r = recorder
            r.increment(RunnerMetrics.errorsAfterCancel)
            guard e.bytesSent > 0 else { return }   // still queued or connecting: the server saw nothing
            r.increment(BuiltInMetrics.httpReqsCut)
            r.increment(BuiltInMetrics.dataSent, by: Int64(e.bytesSent))
            if e.retries > 0 { r.increment(BuiltInMetrics.httpReqsRetried, by: Int64(e.retries)) }
            if e.bytesReceived > 0 { r.increment(BuiltInMetrics.dataReceived, by: Int64(e.bytesReceived)) }
            return
        }
        let h = httpHandles
        let r = recorder
        let operations = runnerHandles.operations
        // One lock for the dozen values of a request (the hot path of every HTTP scenario), the
        // success's operation count included (``recordSuccess(_:)`` without its own lock).
        // A response's end is its instant; a failure without one reads the clock.
        r.locked(at: e.finishedAt > 0 ? e.finishedAt : monotonicNanos()) { s, at in
            s.increment(h.reqs, second: at.second)
            if e.failure == nil { s.increment(operations, second: at.second) }
            s.rate(h.failed, hit: e.failure != nil)
            if e.bytesSent > 0 { s.increment(h.dataSent, by: Int64(e.bytesSent), second: at.second) }
            if e.bytesReceived > 0 { s.increment(h.dataReceived, by: Int64(e.bytesReceived), second: at.second) }
            if e.queued { s.increment(h.queued, second: at.second) }
            if e.retries > 0 { s.increment(h.retried, by: Int64(e.retries), second: at.second) }
            if e.status != nil {
                let t = e.timings
                s.recordNanos(h.duration, t.duration, at: at, perSecond: true)
                let expected = e.failure == nil
                s.recordNanosInBatch { record in
                    if expected { record(h.durationExpected, t.duration) }
                    record(h.blocked, t.blocked)
                    record(h.connecting, t.connecting)
                    record(h.tls, t.tlsHandshaking)
                    record(h.sending, t.sending)
                    record(h.waiting, t.waiting)
                    record(h.receiving, t.receiving)
                }
            }
        }
        if let name = e.name {
            let tag = "name:\(name)"
            r.increment(BuiltInMetrics.tagged(BuiltInMetrics.httpReqs, tag))
            r.rate(BuiltInMetrics.tagged(BuiltInMetrics.httpReqFailed, tag), hit: e.failure != nil)
            if e.status != nil { r.recordNanos(BuiltInMetrics.tagged(BuiltInMetrics.httpReqDuration, tag), e.timings.duration) }
        }
        if let cap = e.poolCap { engine.notePoolCap(cap) }
        if let failure = e.failure { recordFailure(failure, step: e.failureStep) } else { countSuccessInLedger() }
    }

    func webSocketOpened(handshakeNanos: UInt64, tlsNanos: UInt64?, bytesSent: Int, bytesReceived: Int,
                         countsOperation: Bool) -> (any WebSocketSessionObserver)? {
        let r = recorder
        r.recordNanos(BuiltInMetrics.wsConnecting, handshakeNanos)
        r.increment(BuiltInMetrics.wsSessions)
        r.increment(BuiltInMetrics.dataSent, by: Int64(bytesSent))
        r.increment(BuiltInMetrics.dataReceived, by: Int64(bytesReceived))
        if countsOperation { recordSuccess() }
        _ = handles.webSocket   // resolved now: the session's metrics show from its start
        webSocketSessionStarted()
        return WebSocketSessionMetrics(user: self)
    }

    func streamOpened() -> (any StreamTrafficObserver)? { handles.stream }

    func webSocketFailed(_ error: any Error, endpoint: Endpoint, bytesSent: Int, bytesReceived: Int) {
        // The bytes went on the wire whatever the outcome (as an HTTP request answered 403 does).
        if bytesSent > 0 { recorder.increment(BuiltInMetrics.dataSent, by: Int64(bytesSent)) }
        if bytesReceived > 0 { recorder.increment(BuiltInMetrics.dataReceived, by: Int64(bytesReceived)) }
        if error is CancellationError && (isStopping || Task.isCancelled) {
            recorder.increment(RunnerMetrics.errorsAfterCancel)
            return
        }
        recordFailure(error, step: "WebSocket \(endpoint.path)")
    }
}

/// The WebSocket built-ins' handles in one recorder (see ``RecorderHandles``).
struct WebSocketMetricHandles: Sendable {
    let sent, received, dataSent, dataReceived, closedByServer: CounterHandle
    let duration: TrendHandle

    init(_ r: MetricsRecorder) {
        sent = r.counter(BuiltInMetrics.wsMsgsSent); received = r.counter(BuiltInMetrics.wsMsgsReceived)
        dataSent = r.counter(BuiltInMetrics.dataSent); dataReceived = r.counter(BuiltInMetrics.dataReceived)
        closedByServer = r.counter(BuiltInMetrics.wsSessionsClosedByServer)
        duration = r.trend(BuiltInMetrics.wsSessionDuration)
    }
}

/// `data_sent` / `data_received` of the connections that are neither HTTP nor WebSocket (STOMP
/// straight over TCP), through the recorder's resolved handles: one per recorder
/// (``RecorderHandles/stream``), shared by those connections, which keep it instead of the user's
/// whole context.
final class StreamTrafficMetrics: StreamTrafficObserver, Sendable {
    private let recorder: MetricsRecorder
    // Only the two byte counters: the WebSocket handles would add ws_* metrics (at 0) to the run.
    private let dataSent, dataReceived: CounterHandle

    init(_ r: MetricsRecorder) {
        recorder = r
        dataSent = r.counter(BuiltInMetrics.dataSent)
        dataReceived = r.counter(BuiltInMetrics.dataReceived)
    }

    func traffic(bytesSent: Int, bytesReceived: Int) {
        if bytesSent > 0 { recorder.increment(dataSent, by: Int64(bytesSent)) }
        if bytesReceived > 0 { recorder.increment(dataReceived, by: Int64(bytesReceived)) }
    }
}

/// One WebSocket session's built-ins, fed on the connection's loop: its start, and the
/// recorder's shared handles (not a copy of them per session).
final class WebSocketSessionMetrics: WebSocketSessionObserver, @unchecked Sendable {
    /// The user whose session this is: its recorder's handles, and told when the session ends
    /// (its `connected` mark).
    private let user: UserContext
    private let openedAt = monotonicNanos()

    init(user: UserContext) { self.user = user }

    func traffic(messagesSent: Int, messagesReceived: Int, bytesSent: Int, bytesReceived: Int) {
        let r = user.handles.recorder, h = user.handles.webSocket
        if messagesSent > 0 { r.increment(h.sent, by: Int64(messagesSent)) }
        if messagesReceived > 0 { r.increment(h.received, by: Int64(messagesReceived)) }
        if bytesSent > 0 { r.increment(h.dataSent, by: Int64(bytesSent)) }
        if bytesReceived > 0 { r.increment(h.dataReceived, by: Int64(bytesReceived)) }
    }

    func sessionClosed(_ info: WebSocketCloseInfo) {
        let r = user.handles.recorder, h = user.handles.webSocket
        r.recordNanos(h.duration, monotonicNanos() &- openedAt)
        // The server's end of a session (its close frame, a drop, or a close LoadKit sent because
        // it broke the protocol) is counted whether or not the script was waiting to see it.
        if info.initiatedByPeer || info.detail != nil { r.increment(h.closedByServer) }
        user.webSocketSessionEnded()
    }

    func carriedSessionFailed(_ error: any CountedFailure) -> Bool { user.sessionFailed(error) }

    func carriedSessionConnected() { user.recordSuccess() }
}
