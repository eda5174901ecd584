import Synchronization
import LoadKitTransport

/// A STOMP 1.2 client connection over plain TCP (and WebSocket, see `StompClient+WebSocket`).
///
/// Confined to one ``EventLoop``: received frames are parsed and MESSAGE handlers run on the loop
/// without task hops, so a handler must be quick (record a timestamp, match an id). Public
/// methods are thread-safe; the async ones suspend only the caller.
///
/// Failures arrive as a ``ClassifiedError``: a ``StompError`` (ERROR frame → `stomp_error`,
/// silent server → `stomp_heartbeat_timeout`, malformed frames → `stomp_malformed`), a
/// ``TransportError`` (reset, closed by peer) or the WebSocket layer's close error. Inside a load
/// run, a connected session's failure is counted for its virtual user when it happens; a
/// transport's error then reaches the script as a ``StompError`` of the same kind and side.
public final class StompClient: @unchecked Sendable {
    /// The loop that owns this connection.
    package let loop: EventLoop
    /// Nanoseconds the transport took to open (TCP connect, or TCP connect + WebSocket handshake).
    public internal(set) var transportConnectNanos: UInt64 = 0
    /// Nanoseconds of the WebSocket connect (TCP + upgrade); 0 over plain TCP.
    public internal(set) var webSocketConnectNanos: UInt64 = 0
    /// TLS handshake time for `wss` (the `tls_handshake` metric), nil without TLS.
    public internal(set) var tlsHandshakeNanos: UInt64?
    /// The WebSocket subprotocol the server selected (`v12.stomp`, …); nil over TCP or when none.
    public internal(set) var webSocketSubprotocol: String?
    /// Nanoseconds from writing CONNECT to receiving CONNECTED.
    public private(set) var stompConnectNanos: UInt64 = 0
    /// The negotiated heart-beats (valid after connect).
    public var heartBeat: StompHeartBeat { session.heartBeatClock.heartBeat }
    /// The STOMP version the server chose (valid after connect).
    public var version: String? { session.version }

    // Loop-confined state.
    var session: StompClientSession
    var parser: StompFrameParser
    var transport: StompTransport = .none
    var subscriptions = Subscriptions()
    // `whenClosed` callbacks: the first inline (a chat worker registers one), more in an array.
    private var closeCallback: (@Sendable ((any ClassifiedError)?) -> Void)?
    private var moreCloseCallbacks: [@Sendable ((any ClassifiedError)?) -> Void] = []
    // The loop's shared heart-beat ticker this client is registered with (nil when none).
    private var heartBeatTicker: StompHeartBeatTicker?
    /// Position in the ticker's client list (maintained by the ticker).
    var heartBeatSlot = -1
    private var closed = false
    /// `closed`, readable from any thread (``EndingSession``; 1 byte, in the padding after it).
    private let ended = Atomic<Bool>(false)
    /// SEND frames dropped because the session was not connected (fire-and-forget sends).
    public var droppedSends = 0

    // What only the connect, a receipt, the disconnect, a `waitClosed` or the close needs, in an
    // object of its own that exists only meanwhile (and after the close, for its cause): a
    // connection held open carries one pointer for it, not ≈ 0.1 KB (`bench chat`).
    private var coldState: Cold?
    private final class Cold {
        var connectWaiter: CheckedContinuation<Void, any Error>?
        // Timers must be kept: a discarded LoopTimer cancels itself when released.
        var connectTimer: LoopTimer?
        var connectStarted: UInt64 = 0
        var receiptWaiters: [String: ReceiptWaiter] = [:]
        var disconnectWaiters: [CheckedContinuation<Void, Never>] = []
        var disconnectTimer: LoopTimer?
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
        var cause: (any ClassifiedError)?

        var isIdle: Bool {
            connectWaiter == nil && connectTimer == nil && receiptWaiters.isEmpty && disconnectWaiters.isEmpty
                && disconnectTimer == nil && closeWaiters.isEmpty && cause == nil
        }
    }

    /// The cold state, made on first use (on the loop).
    private var cold: Cold {
        if let c = coldState { return c }
        let c = Cold()
        coldState = c
        return c
    }

    /// Drops the cold state once nothing in it is needed (on the loop).
    private func releaseColdIfIdle() {
        if let c = coldState, c.isIdle { coldState = nil }
    }

    /// Why the connection closed (nil while open, or after a graceful close). On the loop.
    private var cause: (any ClassifiedError)? { coldState?.cause }

    private let handlers = Mutex<Handlers?>(nil)
    // Immutable: a setter replaces it. Nil (8 bytes) when no handler was ever set.
    private final class Handlers: Sendable {
        let onError: (@Sendable (any ClassifiedError) -> Void)?
        let onClose: (@Sendable ((any ClassifiedError)?) -> Void)?
        init(onError: (@Sendable (any ClassifiedError) -> Void)?, onClose: (@Sendable ((any ClassifiedError)?) -> Void)?) {
            self.onError = onError
            self.onClose = onClose
        }
    }

    private struct ReceiptWaiter {
        var done: (Result<Void, any Error>) -> Void
        var timer: LoopTimer
        func resume(throwing error: any Error) { timer.cancel(); done(.failure(error)) }
        func resume() { timer.cancel(); done(.success(())) }
    }

    struct Subscription {
        var id: String
        var handler: @Sendable (StompMessage) -> Void
    }

    /// The client's subscriptions (ids unique): the first inline — a chat worker has one, which
    /// then costs no array and no copy of its id's bytes — the others in an array.
    struct Subscriptions {
        private var first: Subscription?
        private var more: [Subscription] = []

        /// Adds `s`, replacing a subscription with the same id.
        mutating func add(_ s: Subscription) {
            remove(id: s.id)
            if first == nil { first = s } else { more.append(s) }
        }

        mutating func remove(id: String) {
            if first?.id == id { first = more.isEmpty ? nil : more.removeFirst() }
            if !more.isEmpty { more.removeAll { $0.id == id } }
        }

        mutating func removeAll() {
            first = nil
            more = []
        }

        /// The handler of the subscription whose id is `id` (the bytes of a MESSAGE's header).
        func handler(for id: ArraySlice<UInt8>) -> (@Sendable (StompMessage) -> Void)? {
            if let f = first, id.elementsEqual(f.id.utf8) { return f.handler }
            for s in more where id.elementsEqual(s.id.utf8) { return s.handler }
            return nil
        }
    }

    init(loop: EventLoop, configuration: StompClientConfiguration, limits: StompFrameParser.Limits) {
        self.loop = loop
        // Credential CONNECT headers (passcode, Authorization, api keys) are registered before
        // they are sent: a broker echoing them anywhere later is masked in every output.
        for (name, value) in configuration.connectHeaders { Secrets.registerHeader(name, value) }
        session = StompClientSession(configuration: configuration)
        parser = StompFrameParser(peer: .server, limits: limits)
    }

    // MARK: connecting

    /// Connects over plain TCP and completes the STOMP handshake (CONNECT → CONNECTED) within `timeout`.
    package static func connect(tcp address: SocketAddress, configuration: StompClientConfiguration,
                               timeout: Duration = .seconds(10), source: SocketAddress? = nil,
                               limits: StompFrameParser.Limits = .init(),
                               on loop: EventLoop = EventLoop.current ?? EventLoopGroup.shared.next()) async throws -> StompClient {
        // In a task on the connection's loop, as over WebSocket: the connect is timed there, so a
        // caller that Swift's shared pool resumes late (a busy process) does not count that wait
        // as connect time nor take it out of the CONNECT budget.
        try await inShortTask(on: loop) {
            let start = monotonicNanos()
            let conn = try await TCPConnection.connect(to: address, from: source, timeout: timeout, on: loop)
            let client = StompClient(loop: loop, configuration: configuration, limits: limits)
            client.transportConnectNanos = monotonicNanos() &- start
            let remaining = max(.milliseconds(1), timeout - .nanoseconds(Int64(client.transportConnectNanos)))
            let user = ClientObservation.current
            let stream = StompTCPStream(conn, client: client, traffic: user?.streamOpened(), user: user)
            try await client.handshake(timeout: remaining) {
                client.transport = .tcp(stream)
                conn.start(delegate: stream)
            }
            return client
        }
    }

    /// Resolves `host` and connects over TCP; see ``connect(tcp:configuration:timeout:source:limits:on:)``.
    public static func connect(tcpHost host: String, port: Int, connectHeaders: [(String, String)] = [],
                               vhost: String? = nil,
                               heartBeat: (send: Duration, receive: Duration) = (.seconds(10), .seconds(10)),
                               timeout: Duration = .seconds(10), source: SocketAddress? = nil,
                               on loop: EventLoop = EventLoop.current ?? EventLoopGroup.shared.next()) async throws -> StompClient {
        let address = try await SocketAddress.resolve(host: host, port: port)
        let config = StompClientConfiguration(host: vhost ?? host, connectHeaders: connectHeaders, heartBeat: heartBeat)
        return try await connect(tcp: address, configuration: config, timeout: timeout, source: source, on: loop)
    }

    /// Attaches the transport (in `attach`, on the loop), sends CONNECT and waits for CONNECTED.
    func handshake(timeout: Duration, attach: @escaping @Sendable () -> Void) async throws {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            loop.execute { [self] in
                let cold = cold
                cold.connectWaiter = cont
                attach()
                guard !closed else { return }  // attach can fail synchronously
                cold.connectStarted = monotonicNanos()
                write(frame: session.connectFrame(now: cold.connectStarted))
                // Holds the client strongly until it fires or is cancelled (at CONNECTED or the
                // close, within `timeout` in every case): a weak reference would give every client
                // a side table for its whole life (32 bytes per held connection).
                cold.connectTimer = loop.schedule(after: timeout) { [self] in
                    fail(StompError.timeout("CONNECT (no CONNECTED within \(timeout.readable))"))
                }
            }
        }
    }

    // MARK: callbacks

    /// Called once, on the loop, when the session fails (before ``onClose``).
    public var onError: (@Sendable (any ClassifiedError) -> Void)? {
        get { handlers.withLock { $0?.onError } }
        set { handlers.withLock { $0 = Handlers(onError: newValue, onClose: $0?.onClose) } }
    }

    /// Called once, on the loop, when the connection is closed: nil after a graceful DISCONNECT
    /// or local close, else the cause.
    public var onClose: (@Sendable ((any ClassifiedError)?) -> Void)? {
        get { handlers.withLock { $0?.onClose } }
        set { handlers.withLock { $0 = Handlers(onError: $0?.onError, onClose: newValue) } }
    }

    // MARK: closing

    /// Sends DISCONNECT with a receipt, waits for it at most `timeout`, then closes. Never throws:
    /// a failed or slow server just gets closed.
    public func disconnect(timeout: Duration = .seconds(2)) async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            loop.execute { [self] in
                if closed { cont.resume(); return }
                cold.disconnectWaiters.append(cont)
                guard session.state == .connected else {
                    if session.state != .disconnecting { closeTransport(cause: nil) }
                    return
                }
                write(frame: session.disconnectFrame())
                cold.disconnectTimer = loop.schedule(after: timeout) { [weak self] in self?.closeTransport(cause: nil) }
            }
        }
    }

    /// Closes the transport at once without DISCONNECT (thread-safe).
    public func close() {
        loop.execute { [self] in closeTransport(cause: nil) }
    }

    /// Resumes when the connection is closed for any reason; returns the cause (nil when graceful).
    @discardableResult
    public func waitClosed() async -> (any ClassifiedError)? {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            loop.execute { [self] in if closed { cont.resume() } else { cold.closeWaiters.append(cont) } }
        }
        return await withCheckedContinuation { (cont: CheckedContinuation<UncheckedSendable<(any ClassifiedError)?>, Never>) in
            loop.execute { [self] in cont.resume(returning: UncheckedSendable(cause)) }
        }.value
    }

    /// Calls `body` once, on the loop, when the connection closes — at once if it already has —
    /// with the cause (nil when graceful). Unlike ``waitClosed()`` it needs no task of its own.
    package func whenClosed(_ body: @escaping @Sendable ((any ClassifiedError)?) -> Void) {
        loop.runOrExecute { [self] in
            if closed {
                body(cause)
            } else if closeCallback == nil {
                closeCallback = body
            } else {
                moreCloseCallbacks.append(body)
            }
        }
    }

    // MARK: loop-side machinery

    func notConnected() -> StompError {
        // The session's own end, again: the same side and kind (and count) as when it happened.
        if let cause { return StompError.endedEarlier(by: cause) }
        return StompError.closed(closed ? "connection closed" : "not connected (state \(session.state))")
    }

    func write(frame: StompFrame) {
        var out = loop.takeEncodeBuffer(1)
        StompFrameEncoder.encode(frame, into: &out)
        flush(out)
    }

    /// Writes an encoded frame and hands the loop's buffer back (no send buffer per connection).
    func flush(_ out: [UInt8]) {
        session.bytesSent(now: monotonicNanos())
        out.withUnsafeBytes { transport.write($0) }
        loop.returnEncodeBuffer(1, out)
    }

    func awaitReceipt(_ id: String, timeout: Duration, _ done: @escaping (Result<Void, any Error>) -> Void) {
        let timer = loop.schedule(after: timeout) { [weak self] in
            guard let self, let w = coldState?.receiptWaiters.removeValue(forKey: id) else { return }
            w.resume(throwing: StompError.timeout("RECEIPT \(id) (not received within \(timeout.readable))"))
            releaseColdIfIdle()
        }
        cold.receiptWaiters[id] = ReceiptWaiter(done: done, timer: timer)
    }

    /// Called by the transport with received bytes (on the loop).
    func handleBytes(_ bytes: UnsafeRawBufferPointer) {
        guard !closed else { return }
        let now = monotonicNanos()
        session.bytesReceived(now: now)
        do {
            try parser.parse(bytes) { frame in
                // Hot path: MESSAGE while connected goes straight to its handler.
                if frame.command == .message, session.state == .connected || session.state == .disconnecting {
                    deliver(frame)
                } else {
                    handle(session.received(frame, now: now))
                }
            }
        } catch let e as StompError {
            fail(e)
        } catch {
            fail(StompError.malformed("\(error)", source: .server))
        }
    }

    private func deliver(_ frame: StompFrame) {
        guard let sub = frame.headerValueBytes("subscription") else {
            fail(StompError.unexpected("MESSAGE without subscription header", source: .server))
            return
        }
        if let handler = subscriptions.handler(for: sub) {
            handler(StompMessage(frame: frame))
            return
        }
        // Unknown subscription: most likely already unsubscribed; ignore.
    }

    private func handle(_ action: StompClientSession.Action) {
        switch action {
        case .none:
            break
        case .message(let frame):
            deliver(frame)
        case .connected(_, let hb):
            stompConnectNanos = monotonicNanos() &- (coldState?.connectStarted ?? 0)
            // Over WebSocket the connect is the operation (the open alone was not counted): now,
            // before anything else in this read can end the session.
            if case .webSocket(let ws) = transport { ws.sessionObserver?.carriedSessionConnected() }
            coldState?.connectTimer?.cancel()
            coldState?.connectTimer = nil
            if let t = hb.tickIntervalMillis {
                // One timer per loop and period for all its clients, not one per connection:
                // 19,000 idle connections cost two timer wake-ups a second instead of thousands.
                let ticker = StompHeartBeatTicker.ticker(for: loop, periodMillis: min(t, StompHeartBeatTicker.maxPeriodMillis))
                ticker.add(self)
                heartBeatTicker = ticker
            }
            coldState?.connectWaiter?.resume()
            coldState?.connectWaiter = nil
            releaseColdIfIdle()
        case .receipt(let id):
            coldState?.receiptWaiters.removeValue(forKey: id)?.resume()
            releaseColdIfIdle()
        case .disconnected:
            closeTransport(cause: nil)
        case .failed(let e):
            fail(e)
        }
    }

    /// Heart-beat tick from the loop's ticker (on the loop).
    func heartBeatTick(now: UInt64, periodMillis: UInt64) {
        guard !closed else { return }
        switch session.tick(now: now, periodMillis: periodMillis) {
        case .none: break
        case .sendHeartBeat: StompFrameEncoder.heartBeat.withUnsafeBytes { transport.write($0) }
        case .peerSilent: fail(session.failure ?? StompError.timeout("heart-beat"))
        }
    }

    /// Ends the session with `error` as the cause (first cause wins) and closes the transport.
    ///
    /// A connected session that fails here failed by the server's doing or the peer's bytes, not
    /// by a call of the script's (those throw to their caller): inside a load run it is counted
    /// for the virtual user now, once — a script that only sends (fire-and-forget) would never
    /// see it — and every copy the script sees later (`onError`, `waitClosed()`, a call on the
    /// dead session) carries the count's occurrence, so none is counted again.
    func fail(_ error: any ClassifiedError) {
        guard !closed else { return }
        var error = error
        // Connected (CONNECTED came) and not winding down on the script's DISCONNECT; the session's
        // own state already reads closed for an ERROR it parsed.
        let connected = stompConnectNanos > 0 && (coldState?.disconnectWaiters.isEmpty ?? true)
        // Not the script's doing: a close LoadKit made for the script (`ws_closed`, the runner
        // closing a session it left open) is no failure of the session.
        if connected, error.source != .script {
            // The copies the script sees must carry the count's occurrence: a STOMP or WebSocket
            // error keeps its type; a transport's (TCP reset, FIN) becomes a StompError with its
            // kind, side and text.
            let occurrence = nextFailureOccurrence()
            let counted: any CountedFailure
            switch error {
            case var s as StompError: s.occurrence = occurrence; counted = s
            case var w as WebSocketError: w.occurrence = occurrence; counted = w
            default:
                var s = StompError(kind: error.kind, source: error.source, message: error.description)
                s.occurrence = occurrence
                counted = s
            }
            if transport.reportFailure(counted) { error = counted }
        }
        if let s = error as? StompError { session.fail(s) } else { session.markClosed() }
        if cause == nil { cold.cause = error }
        handlers.withLock { $0?.onError }?(error)
        closeTransport(cause: error)
    }

    /// The transport closed (on the loop). `error` nil means a local, orderly close.
    func transportClosed(error: (any ClassifiedError)?) {
        guard !closed else { return }
        // After our DISCONNECT, an orderly close stands in for the RECEIPT some brokers never send
        // (STOMP 1.2 §DISCONNECT): a WebSocket close 1000/1001 or a TCP FIN. A drop (1006, reset) is not.
        let orderlyAfterDisconnect = session.state == .disconnecting && Self.isOrderlyClose(error)
        let graceful = (session.state == .closed && session.failure == nil) || orderlyAfterDisconnect
        if let error, !graceful {
            fail(error)
        } else if !graceful && session.state != .idle {
            fail(StompError.droppedByServer())
        } else {
            closeTransport(cause: nil)
        }
    }

    static func isOrderlyClose(_ error: (any ClassifiedError)?) -> Bool {
        switch error {
        case nil: return true
        case let w as WebSocketError: return w.closeCode == WebSocketCloseCode.normal || w.closeCode == WebSocketCloseCode.goingAway
        case let t as TransportError: if case .closedByPeer = t { return true } else { return false }
        default: return false
        }
    }

    func closeTransport(cause closeCause: (any ClassifiedError)?) {
        guard !closed else { return }
        closed = true
        ended.store(true, ordering: .relaxed)
        if session.state != .closed { session.markClosed() }
        if cause == nil, let closeCause { cold.cause = closeCause }
        heartBeatTicker?.remove(self)
        heartBeatTicker = nil
        let c = coldState
        c?.connectTimer?.cancel()
        c?.connectTimer = nil
        c?.disconnectTimer?.cancel()
        c?.disconnectTimer = nil
        let t = transport
        transport = .none
        // The server's failure ended it (ERROR, silence, a bad frame): a WebSocket session then
        // counts as ended by the server, though LoadKit sent the close frame.
        // Not for a time-out (no CONNECTED in time): the client gave up, the server ended nothing.
        t.close(serverFailure: closeCause.flatMap { $0.source == .server && $0.kind != StompError.timeoutKind ? $0.kind : nil })
        let err: any Error = cause ?? StompError.closed("connection closed")
        c?.connectWaiter?.resume(throwing: err)
        c?.connectWaiter = nil
        if let waiters = c?.receiptWaiters, !waiters.isEmpty {
            c?.receiptWaiters.removeAll()
            for (_, w) in waiters { w.resume(throwing: err) }
        }
        subscriptions.removeAll()
        handlers.withLock { $0?.onClose }?(cause)
        if let ws = c?.disconnectWaiters, !ws.isEmpty {
            c?.disconnectWaiters.removeAll()
            for w in ws { w.resume() }
        }
        if let ws = c?.closeWaiters, !ws.isEmpty {
            c?.closeWaiters.removeAll()
            for w in ws { w.resume() }
        }
        releaseColdIfIdle()
        let first = closeCallback, more = moreCloseCallbacks
        closeCallback = nil
        moreCloseCallbacks = []
        first?(cause)
        for c in more { c(cause) }
    }
}

extension StompClient: EndingSession {
    /// True once the connection is closed (``EndingSession``: a kept client that ended is made again).
    package var hasEnded: Bool { ended.load(ordering: .relaxed) }
}

/// The byte pipe under a STOMP client.
