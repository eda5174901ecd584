import Synchronization
import LoadKitTransport
import LoadKitProtocols
import LoadKitEngine

/// Metric names the STOMP chat worker records (seed 000/001; the Prometheus endpoint exports them
/// as `stomp_load_test_<name>_total`, `…_ms`, `…_seconds`).
public enum StompChatMetrics {
    /// Trend: TCP connect + WebSocket upgrade, per connection.
    public static let websocketConnect = "websocket_connect"
    /// Trend: CONNECT → CONNECTED.
    public static let stompConnect = "stomp_connect"
    /// Trend: TLS handshake alone (wss targets, `TLS` trait), part of `websocket_connect`.
    public static let tlsHandshake = "tls_handshake"
    /// Trend: own SEND → own MESSAGE back (RTT).
    public static let messageLatency = "message_latency"
    /// Counter: SEND frames written.
    public static let messagesSent = BuiltInMetrics.messagesSent
    /// Counter: MESSAGE frames received (every broadcast, N:N).
    public static let messagesReceived = BuiltInMetrics.messagesReceived
    /// Counter: own messages received back (RTT samples).
    public static let messagesEchoed = "messages_echoed"
    /// Counter: messages still pending when the run ended (younger than the time-out; not failures).
    public static let messagesPendingAtStop = "messages_pending_at_stop"
    /// Trend: how long each WebSocket connection stayed up (µs; Prometheus in seconds).
    public static let connectionDuration = "connection_duration"
    /// Trend: the same, under seed 001's Prometheus name `websocket_duration_seconds`.
    public static let websocketDuration = "websocket_duration"
    /// Counter: reconnect attempts (every try after a failure).
    public static let connectionRetries = "connection_retries"
    /// Counter: successful reconnects.
    public static let reconnects = "reconnects"
    /// Trend: from losing the connection (or the first failed attempt) to subscribed again, back-off included.
    public static let reconnectionTime = "reconnection_time"
    /// Gauge: connections subscribed now.
    public static let activeConnections = "active_connections"
    /// Gauge: workers between a failure and their next successful connection.
    public static let activeReconnections = "active_reconnections"
    /// Rate: workers that ended connected with every message echoed (seed 000's success rate).
    public static let workerSuccess = "worker_success"
}

extension StompChatConfiguration {
    /// One chat worker's whole life (seed 000/001), for `LoadTest.run`: connect over WebSocket
    /// (`websocket_connect`), STOMP CONNECT (`stomp_connect`), SUBSCRIBE to the room, then SEND a
    /// JSON message every ``messageInterval`` until the run stops. Every MESSAGE is counted
    /// (`messages_received`) on the event loop; the worker's own messages, recognised by their id,
    /// give the RTT (`message_latency`); messages not back within ``messageTimeout`` are failures
    /// (`message_timeout`), and messages in flight when the connection drops are lost
    /// (`message_lost`, counted at the drop). A dropped WebSocket, a failed handshake or a send on a closed session
    /// triggers a reconnect with ``reconnect``'s back-off (`connection_retries`,
    /// `reconnection_time`) when enabled; otherwise the worker stays down until the run ends (and
    /// `connections_held` shows it). The worker is marked connected while subscribed.
    ///
    /// Call ``prepared(http:timeout:)`` first so ``token`` and ``roomId`` are known.
    public func runWorker(_ user: VirtualUser) async throws {
        let worker = try ChatWorker.make(self, user)
        await worker.run()
    }
}

/// What every worker of one configuration shares (parsed template, headers, destinations and
/// the settings a worker reads), built once instead of per worker: 10,000 workers would otherwise
/// hold 10,000 copies.
private final class ChatWorkerShared: Sendable {
    let c: StompChatConfiguration
    let template: MessageTemplate
    let connectHeaders: [(String, String)]
    let webSocketHeaders: [(String, String)]
    let topics: [String: (topic: String, destination: String)]
    // Built once, not per connect: a connect's async contexts keep what they pass down for the
    // whole handshake (thousands at once in a ramp), and fields of this object are borrowed, not
    // copied into them.
    let webSocketURL: String
    let stompConfiguration: StompClientConfiguration

    private static let cache = Mutex<ChatWorkerShared?>(nil)

    private init(_ c: StompChatConfiguration) throws {
        self.c = c
        template = try MessageTemplate(c.messageTemplate)
        connectHeaders = c.effectiveConnectHeaders
        webSocketHeaders = c.effectiveWebSocketHeaders
        var topics: [String: (topic: String, destination: String)] = [:]
        for r in c.roomIds.isEmpty ? [""] : c.roomIds { topics[r] = (c.topic(room: r), c.publishDestination(room: r)) }
        self.topics = topics
        webSocketURL = c.webSocketURL
        stompConfiguration = StompClientConfiguration(host: c.stompHost, connectHeaders: connectHeaders, heartBeat: c.heartBeat)
    }

    /// The shared values for `c` (the last configuration's are reused while it is unchanged).
    static func of(_ c: StompChatConfiguration) throws -> ChatWorkerShared {
        if let hit = cache.withLock({ $0 }), hit.c.sharesWorkerSettings(with: c) { return hit }
        let v = try ChatWorkerShared(c)
        cache.withLock { $0 = v }
        return v
    }
}

extension StompChatConfiguration {
    /// Whether this configuration and `b` agree on everything a chat worker reads (so its workers
    /// may share `b`'s ``ChatWorkerShared``: the URL, STOMP configuration, headers and topics built
    /// from it). Compared field by field, with no allocation: every worker of a run asks (a key
    /// array of the fields' texts, 100 rooms included, cost each worker 6 KB of short-lived
    /// allocations, holes left between the long-lived objects of the workers that connected
    /// meanwhile — `bench chat`'s RSS). A field the worker starts reading must be added here;
    /// `ChatWorkerSettingsTests` changes each one in turn.
    func sharesWorkerSettings(with b: StompChatConfiguration) -> Bool {
        func same(_ x: [(String, String)], _ y: [(String, String)]) -> Bool {
            x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        }
        let a = self
        return a.messageTemplate == b.messageTemplate && a.subscribeDestination == b.subscribeDestination
            && a.publishDestination == b.publishDestination && a.authHeader == b.authHeader
            && a.authScheme == b.authScheme && a.token == b.token && a.authIn == b.authIn
            && a.secure == b.secure && a.host == b.host && a.port == b.port && a.webSocketPath == b.webSocketPath
            && a.stompHost == b.stompHost && a.contentType == b.contentType && a.runTag == b.runTag
            && a.heartBeat == b.heartBeat && a.messageInterval == b.messageInterval
            && a.messageTimeout == b.messageTimeout && a.connectTimeout == b.connectTimeout
            && a.drainAtStop == b.drainAtStop && a.reconnect == b.reconnect && a.subscribeReceipt == b.subscribeReceipt
            && a.roomIds == b.roomIds && a.subprotocols == b.subprotocols
            && same(a.connectHeaders, b.connectHeaders) && same(a.webSocketHeaders, b.webSocketHeaders)
    }
}

/// One worker's state. Kept in an object so the worker's task frames stay small: a task keeps
/// the memory of its deepest stack for its whole life (measured: ≈ 3 KB of frames per worker
/// when this state lived in one large async function).
private final class ChatWorker: @unchecked Sendable {
    let user: VirtualUser
    let shared: ChatWorkerShared
    let matcher: StompEchoMatcher
    let h: Handles
    // The messages sent and not yet seen back, shared with the MESSAGE handler on the loop.
    let pending = Mutex(StompPendingMessages())
    // When and why the current connection closed (nil while open; reset for each connection).
    // Boxed: 16 bytes in the worker while open, instead of an object per connection with the
    // cause inline (`bench chat`).
    let closedInfo = Mutex<ClosedInfo?>(nil)

    var failures = 0                 // consecutive failed attempts
    var seq: UInt64 = 0
    var timeouts = 0
    var lostMessages = 0
    var connectedAt: UInt64 = 0
    var outageStart: UInt64?         // first failure of the current outage
    // The flags last, packed behind the optional's tag byte.
    var reconnecting = false
    var gaveUp = false
    var endedConnected = false

    typealias Lost = (at: UInt64, cause: (any ClassifiedError)?)

    // Not inlined into the async caller: keeps the configuration copy out of its frame.
    @inline(never)
    static func make(_ c: StompChatConfiguration, _ user: VirtualUser) throws -> ChatWorker { try ChatWorker(c, user) }

    var c: StompChatConfiguration { shared.c }

    init(_ c: StompChatConfiguration, _ user: VirtualUser) throws {
        self.user = user
        shared = try ChatWorkerShared.of(c)
        matcher = StompEchoMatcher(runTag: c.runTag, workerId: user.id)
        h = Handles.of(user.recorder)
    }

    var rec: MetricsRecorder { user.recorder }

    // Looked up when needed (a SUBSCRIBE per connection, a SEND per interval) rather than kept
    // in every worker.
    var room: String { c.room(forWorker: user.id) }
    var topic: String { shared.topics[room]?.topic ?? c.topic(room: room) }
    var destination: String { shared.topics[room]?.destination ?? c.publishDestination(room: room) }

    // The async functions below keep only what crosses an await in their frames (the task holds
    // its deepest stack for its whole life); the rest is in synchronous helpers.
    func run() async {
        begin()
        // A cancelled task ends too: its connect returns nil at once, so looping on would spin.
        while !user.isStopping && !Task.isCancelled {
            if failures > 0 {
                guard let delay = nextDelay() else { gaveUp = true; break }
                if !(await user.sleep(for: delay)) { break }
                rec.increment(h.retries)
            }
            guard let client = await connect() else {
                if c.reconnect == nil { gaveUp = true; break }
                continue
            }
            if await session(client) { break }
            if c.reconnect == nil { gaveUp = true; break }
        }
        setReconnecting(false)
        if gaveUp {
            // Seed semantics: without reconnect a failed worker stays down until the run ends.
            while !user.isStopping && !Task.isCancelled { _ = await user.sleep(for: .seconds(3600)) }
        }
        end()
    }

    @inline(never)
    private func begin() {
        // Present from the start in the Prometheus exposition, also when nobody reconnects.
        rec.adjustGauge(StompChatMetrics.activeReconnections, by: 0)
        rec.adjustGauge(StompChatMetrics.activeConnections, by: 0)
    }

    @inline(never)
    private func nextDelay() -> Duration? {
        guard let policy = c.reconnect, let delay = policy.delay(attempt: failures) else { return nil }
        setReconnecting(true)
        return delay
    }

    @inline(never)
    private func end() {
        if gaveUp {
            expire(now: monotonicNanos())
            let left = pending.withLock { $0.removeAll() }
            if left > 0 { user.count(StompChatMetrics.messagesPendingAtStop, by: Int64(left)) }
        }
        rec.rate(h.success, hit: endedConnected && !gaveUp && timeouts == 0 && lostMessages == 0)
    }

    private func setReconnecting(_ on: Bool) {
        guard on != reconnecting else { return }
        reconnecting = on
        rec.adjustGauge(StompChatMetrics.activeReconnections, by: on ? 1 : -1)
    }

    private func expire(now: UInt64) {
        let gone = pending.withLock { $0.expire(now: now, timeout: c.messageTimeout) }
        for s in gone { user.fail(StompMessageTimeout(messageId: matcher.messageId(seq: s), timeout: c.messageTimeout), step: "message") }
        timeouts += gone.count
    }

    private func failed(_ error: any Error, step: String) {
        user.fail(error, step: step)
        failures += 1
        if outageStart == nil { outageStart = monotonicNanos() }
    }

    /// WebSocket upgrade, CONNECT → CONNECTED, SUBSCRIBE; nil (failure recorded) when any fails.
    /// In a short task: the deep connect path never lands in the worker's own task. The worker
    /// waits for it on a continuation and is cancelled through its task's cancellation scope
    /// (the runner cancels both): awaiting the task's value under a cancellation handler took the
    /// worker's task allocator into a third 1 KB slab, kept for the worker's life.
    @inline(never)
    private func connect() async -> StompClient? {
        let loop = EventLoop.current ?? EventLoopGroup.shared.next()
        guard let scope = ClientObservation.current?.cancellation, scope.isCurrentTask else {
            return (try? await inShortTask(on: loop) { [self] in await connectNow(on: loop).map(UncheckedSendable.init) })??.value
        }
        if Task.isCancelled { return nil }
        let attempt = ConnectAttempt()
        let client = await withUnsafeContinuation { (c: UnsafeContinuation<UncheckedSendable<StompClient>?, Never>) in
            attempt.task = Task(executorPreference: loop) { [self] in c.resume(returning: await connectNow(on: loop).map(UncheckedSendable.init)) }
            if !scope.enter(attempt) { attempt.cancelOperation() }
        }
        scope.leave()
        return client?.value
    }

    /// The WebSocket and STOMP handshakes, then SUBSCRIBE. One function: the connect's arguments
    /// are fields of the shared settings object, borrowed (a copy of the configuration or a URL
    /// built here would sit in this context for as long as the handshakes wait — thousands at once
    /// in a ramp against a slow server), and a second level would add its own context. The connect
    /// task's frames then fit two 1 KB allocator slabs, not three (malloc probe, `bench chat`).
    private func connectNow(on loop: EventLoop) async -> StompClient? {
        let client: StompClient
        do {
            let s = shared
            // Already in a short task of its own (`connect()`): connected in it, not in a second one.
            client = try await StompClient.connectNow(webSocket: s.webSocketURL, configuration: s.stompConfiguration,
                                                      timeout: s.c.connectTimeout, wsHeaders: s.webSocketHeaders,
                                                      subprotocols: s.c.subprotocols, on: loop)
        } catch {
            failed(error, step: error is StompError ? StompChatMetrics.stompConnect : StompChatMetrics.websocketConnect)
            return nil
        }
        rec.recordNanos(h.wsConnect, client.webSocketConnectNanos)
        rec.recordNanos(h.stompConnect, client.stompConnectNanos)
        if let tls = client.tlsHandshakeNanos { rec.recordNanos(StompChatMetrics.tlsHandshake, tls) }
        // The connect is one operation: the STOMP client counted it at CONNECTED.
        do {
            // The handler reads only the worker's constants (`let`s), so it captures the worker
            // rather than a copy of each (one pointer in its context instead of five).
            let settings = shared
            try await client.subscribe(destination: topic, id: "sub-1", receipt: settings.c.subscribeReceipt,
                                       timeout: settings.c.connectTimeout) { [self] msg in
                received(msg)
            }
        } catch {
            failed(error, step: "subscribe")
            client.close()
            return nil
        }
        return client
    }

    /// A MESSAGE (on the event loop): counted; the worker's own gives the RTT.
    private func received(_ msg: StompMessage) {
        let now = monotonicNanos()
        rec.increment(h.received)
        guard let s = msg.body.withUnsafeBytes({ matcher.seq(in: $0) }),
              let rtt = pending.withLock({ $0.echoed(seq: s, at: now) }) else { return }
        rec.recordNanos(h.latency, rtt)
        rec.increment(h.echoed)
        rec.increment(h.operations)
    }

    /// One connected session: SEND every interval until the run stops (true: the worker is done)
    /// or the connection is lost (false: reconnect or give up).
    @inline(never)
    private func session(_ client: StompClient) async -> Bool {
        let closed = connected(client)
        if let lost = await sendUntilLost(client, closed) {
            lose(client, lost)
            return false
        }
        await leave(client)
        return true
    }

    @inline(never)
    private func connected(_ client: StompClient) -> UserSignal {
        // An earlier connection's close was handled (lost) before this one was made: its
        // callback has run and cannot run again.
        closedInfo.withLock { $0 = nil }
        let closed = UserSignal()
        client.whenClosed { [self] cause in
            closedInfo.withLock { $0 = ClosedInfo(at: monotonicNanos(), cause: cause) }
            closed.fire()   // the send loop ends now, not at its next tick
        }
        connectedAt = monotonicNanos()
        if let s = outageStart {
            rec.recordNanos(h.reconnectionTime, connectedAt &- s)
            rec.increment(h.reconnects)
            outageStart = nil
        }
        failures = 0
        setReconnecting(false)
        user.markConnected(true)
        rec.adjustGauge(StompChatMetrics.activeConnections, by: 1)
        return closed
    }

    @inline(never)
    private func sendUntilLost(_ client: StompClient, _ closed: UserSignal) async -> Lost? {
        // SENDs do not throw (a send on a closed session is the close the signal reports). The
        // loop is `every`'s, written out here: parked one frame shallower (see nextTick).
        var ticks = Ticks(every: c.messageInterval)
        while !user.isStopping && !closed.hasFired {
            send(client)
            if !(await user.nextTick(&ticks, unless: closed)) { break }
        }
        // The loop ended: the connection closed (its signal), or the run is stopping.
        return closedInfo.withLock { $0.map { ($0.at, $0.cause) } }
    }

    /// Lost: a drop, or a send on a closed session. Count it; the caller reconnects or gives up.
    @inline(never)
    private func lose(_ client: StompClient, _ l: Lost) {
        let d = l.at > connectedAt ? l.at - connectedAt : 0
        rec.recordNanos(h.duration, d)
        rec.recordNanos(h.wsDuration, d)
        rec.adjustGauge(StompChatMetrics.activeConnections, by: -1)
        user.markConnected(false)
        let cause = l.cause ?? StompError.closed("the server closed the connection")
        user.fail(cause, step: "connection")
        // What was in flight will not come back on this connection: lost, counted now.
        let inFlight = pending.withLock { $0.takeAll() }
        for s in inFlight {
            user.fail(StompMessageLost(messageId: matcher.messageId(seq: s), cause: cause.kind), step: "message")
        }
        lostMessages += inFlight.count
        client.close()
        failures = 1
        outageStart = l.at
    }

    @inline(never)
    private func send(_ client: StompClient) {
        expire(now: monotonicNanos())
        seq += 1
        let body = shared.template.render(messageId: matcher.messageId(seq: seq), roomId: room, workerId: user.id,
                                          seq: seq, timestampMillis: wallClockMillis())
        pending.withLock { $0.sent(seq: seq, at: monotonicNanos()) }
        client.send(destination: destination, body: body, contentType: c.contentType)
        rec.increment(h.sent)
    }

    /// The run is ending: give the last echoes a moment, then leave politely. Not inlined: its
    /// locals would sit in the session's frame while the worker is parked.
    @inline(never)
    private func leave(_ client: StompClient) async {
        let drainEnd = monotonicNanos() &+ c.drainAtStop.nanoseconds
        var pause: UInt64 = 10_000_000
        while pending.withLock({ $0.count }) > 0, closedInfo.withLock({ $0 }) == nil, monotonicNanos() < drainEnd, !Task.isCancelled {
            try? await EventLoop.sleep(for: .nanoseconds(Int64(min(pause, drainEnd &- min(drainEnd, monotonicNanos())))))
            pause = min(pause * 2, 200_000_000)
        }
        expire(now: monotonicNanos())
        let left = pending.withLock { $0.removeAll() }
        if left > 0 { user.count(StompChatMetrics.messagesPendingAtStop, by: Int64(left)) }
        endedConnected = closedInfo.withLock({ $0 }) == nil
        let d = monotonicNanos() &- connectedAt
        rec.recordNanos(h.duration, d)
        rec.recordNanos(h.wsDuration, d)
        rec.adjustGauge(StompChatMetrics.activeConnections, by: -1)
        user.markConnected(false)
        await client.disconnect(timeout: .seconds(1))
    }
}

/// A worker's connect in flight, cancelled with the worker's task (through its scope).
private final class ConnectAttempt: CancellableOperation, @unchecked Sendable {
    var task: Task<Void, Never>?   // set before the attempt is registered, never after
    func cancelOperation() { task?.cancel() }
}

/// When and why a worker's connection closed.
private final class ClosedInfo: Sendable {
    let at: UInt64
    let cause: (any ClassifiedError)?
    init(at: UInt64, cause: (any ClassifiedError)?) { self.at = at; self.cause = cause }
}

/// Pre-resolved metric handles of one recorder (the MESSAGE handler runs per frame on the loop),
/// one object per recorder shared by the workers recording into it: as a value, the 13 handles
/// sat in every worker and again in its MESSAGE handler's context (≈ 0.2 KB per worker).
private final class Handles: Sendable {
    let wsConnect, stompConnect, latency, duration, wsDuration, reconnectionTime: TrendHandle
    let sent, received, echoed, operations, retries, reconnects: CounterHandle
    let success: RateHandle
    init(_ r: MetricsRecorder) {
        wsConnect = r.trend(StompChatMetrics.websocketConnect)
        stompConnect = r.trend(StompChatMetrics.stompConnect)
        latency = r.trend(StompChatMetrics.messageLatency)
        duration = r.trend(StompChatMetrics.connectionDuration)
        wsDuration = r.trend(StompChatMetrics.websocketDuration)
        reconnectionTime = r.trend(StompChatMetrics.reconnectionTime)
        sent = r.counter(StompChatMetrics.messagesSent)
        received = r.counter(StompChatMetrics.messagesReceived)
        echoed = r.counter(StompChatMetrics.messagesEchoed)
        operations = r.counter(RunnerMetrics.operations)
        // Resolved up front so the reports always carry them (`connection_retries_total,0`).
        retries = r.counter(StompChatMetrics.connectionRetries)
        reconnects = r.counter(StompChatMetrics.reconnects)
        success = r.rateHandle(StompChatMetrics.workerSuccess)
    }

    /// A recorder's handles, weakly keyed: a later recorder at a freed one's address is not
    /// taken for it.
    private struct Entry: @unchecked Sendable {
        weak var recorder: MetricsRecorder?
        let handles: Handles
    }
    private static let cache = Mutex<[ObjectIdentifier: Entry]>([:])

    /// The handles of `r` (resolved by its first worker, shared by the rest).
    static func of(_ r: MetricsRecorder) -> Handles {
        cache.withLock { c in
            if let e = c[ObjectIdentifier(r)], e.recorder === r { return e.handles }
            c = c.filter { $0.value.recorder != nil }   // recorders of finished runs
            let h = Handles(r)
            c[ObjectIdentifier(r)] = Entry(recorder: r, handles: h)
            return h
        }
    }
}
