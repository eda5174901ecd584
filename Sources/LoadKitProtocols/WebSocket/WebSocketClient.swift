import LoadKitTransport

/// A WebSocket client connection (RFC 6455): connect with the opening handshake, then send and
/// receive messages with async/await, or with callbacks on the loop for hot paths.
///
/// ```swift
/// let ws = try await WebSocketClient.connect("ws://127.0.0.1:8080/ws?ticket=abc",
///                                           headers: [("Authorization", "Bearer …")],
///                                           timeout: .seconds(5))
/// try await ws.send(text: #"{"type":"PING"}"#)
/// let reply = try await ws.receive()            // throws ws_close_<code> once the server closed
/// await ws.close(code: 1000, reason: "done")
/// ```
///
/// Lower level: ``connection`` is the loop-confined ``WebSocketConnection`` (handler hook,
/// `sendOnLoop`), for protocols such as STOMP.
public final class WebSocketClient: @unchecked Sendable {
    /// The open connection (handler hook, loop-side sends, idle time, close info).
    package let connection: WebSocketConnection
    /// The endpoint connected to.
    public let endpoint: Endpoint
    /// TCP connect plus upgrade time in nanoseconds (the `websocket_connect` metric).
    public let handshakeNanos: UInt64
    /// TLS handshake time in nanoseconds for `wss` (the `tls_handshake` metric), nil for `ws`.
    public let tlsHandshakeNanos: UInt64?
    /// The subprotocol the server selected, or nil.
    public var subprotocol: String? { connection.subprotocol }
    /// The loop the connection is confined to.
    public var loop: EventLoop { connection.loop }

    init(connection: WebSocketConnection, endpoint: Endpoint, handshakeNanos: UInt64, tlsHandshakeNanos: UInt64? = nil) {
        self.connection = connection
        self.endpoint = endpoint
        self.handshakeNanos = handshakeNanos
        self.tlsHandshakeNanos = tlsHandshakeNanos
    }

    /// Connects to a `ws://` URL (`host:port/path` without scheme is taken as `ws`).
    /// See the `Endpoint` variant.
    public static func connect(_ url: String, headers: [(String, String)] = [], subprotocols: [String] = [],
                               timeout: Duration = .seconds(10), maxMessageSize: Int = 16 << 20,
                               source: SocketAddress? = nil, closeTimeout: Duration = .seconds(5),
                               tls: TLSConfiguration? = nil,
                               on loop: EventLoop = EventLoop.current ?? EventLoopGroup.shared.next()) async throws -> WebSocketClient {
        let endpoint = try Endpoint(url, defaultScheme: .ws)
        return try await connect(endpoint, headers: headers, subprotocols: subprotocols, timeout: timeout,
                                 maxMessageSize: maxMessageSize, source: source, closeTimeout: closeTimeout,
                                 tls: tls, on: loop)
    }

    /// Opens TCP (optionally from a `source` address) and performs the opening handshake within
    /// `timeout`: fresh `Sec-WebSocket-Key`, `headers` added as given (Authorization, Origin, …;
    /// the values of credential headers are registered with ``Secrets`` first, see
    /// ``Secrets/registerHeader(_:_:)``),
    /// `subprotocols` offered; checks status 101, Upgrade/Connection, `Sec-WebSocket-Accept` and
    /// that a selected subprotocol was offered. `closeTimeout` bounds the closing handshake.
    ///
    /// `wss` uses `tls` (default ``TLSConfiguration/defaultClient``) and needs the `TLS` trait.
    /// Throws ``TransportError`` for connect failures, ``HTTPError/tlsUnavailable(endpoint:)`` for
    /// `wss`, and ``WebSocketError``: `ws_handshake_<status>` (with up to ~200 bytes of the body,
    /// e.g. `INVALID_TICKET`), `ws_handshake_invalid`, `ws_handshake_timeout`, `ws_handshake_closed`.
    public static func connect(_ endpoint: Endpoint, headers: [(String, String)] = [], subprotocols: [String] = [],
                               timeout: Duration = .seconds(10), maxMessageSize: Int = 16 << 20,
                               source: SocketAddress? = nil, closeTimeout: Duration = .seconds(5),
                               tls: TLSConfiguration? = nil,
                               on loop: EventLoop = EventLoop.current ?? EventLoopGroup.shared.next()) async throws -> WebSocketClient {
        // In a task of its own: the connect path's frames do not stay in the caller's allocator
        // (the task inherits the caller's task-locals, so its metrics still go to the caller's user).
        try await inShortTask(on: loop) {
            try await connectNow(endpoint, headers: headers, subprotocols: subprotocols, timeout: timeout,
                                 maxMessageSize: maxMessageSize, source: source, closeTimeout: closeTimeout,
                                 tls: tls.map(TLSSettings.init), on: loop)
        }
    }

    // The connect path's steps are not inlined into one another: an async function's context
    // holds every value any inlined step keeps across an await, and a connect's contexts live
    // until it ends — with thousands in flight (a ramp against a slow server) their sum stays
    // behind as free chunks between the long-lived objects (`bench chat`'s RSS over its heap).
    // `tls` comes by reference (``TLSSettings``; nil: the default client configuration).
    @inline(never)
    static func connectNow(_ endpoint: Endpoint, headers: [(String, String)], subprotocols: [String],
                           timeout: Duration, maxMessageSize: Int, source: SocketAddress?, closeTimeout: Duration = .seconds(5),
                           tls: TLSSettings?, countsOperation: Bool = true, on loop: EventLoop) async throws -> WebSocketClient {
        let observer = ClientObservation.current
        let wire = WireBytes()
        do {
            // The transport first, in a function of its own whose context is gone by the
            // handshake (which can wait long on a busy server).
            let (transport, start) = try await openTransport(endpoint, timeout: timeout, source: source, tls: tls, wire: wire, on: loop)
            return try await handshake(over: transport, endpoint: endpoint, headers: headers, subprotocols: subprotocols,
                                       timeout: timeout, maxMessageSize: maxMessageSize,
                                       closeTimeout: closeTimeout, observer: observer, countsOperation: countsOperation,
                                       start: start, wire: wire)
        } catch {
            // A refused, timed-out or dropped handshake still put bytes on the wire: count them.
            observer?.webSocketFailed(error, endpoint: endpoint, bytesSent: wire.sent, bytesReceived: wire.received)
            throw error
        }
    }

    /// TCP (and TLS for `wss`) to `endpoint`, and when the connect began: after the name was
    /// resolved (the handshake's time and budget count from there, not the lookup). A failed TLS
    /// handshake leaves its bytes in `wire`.
    @inline(never)
    private static func openTransport(_ endpoint: Endpoint, timeout: Duration, source: SocketAddress?, tls: TLSSettings?,
                                      wire: WireBytes, on loop: EventLoop) async throws -> (any Transport, start: UInt64) {
        if endpoint.isTLS { return try await openTLS(endpoint, timeout: timeout, source: source, tls: tls, wire: wire, on: loop) }
        // Plain `ws`: nothing of TLS's configuration in this (smaller) context.
        let address = try await endpoint.resolve()
        let start = monotonicNanos()
        return (try await TCPConnection.connect(to: address, from: source, timeout: timeout, on: loop), start)
    }

    @inline(never)
    private static func openTLS(_ endpoint: Endpoint, timeout: Duration, source: SocketAddress?,
                                tls: TLSSettings?, wire: WireBytes, on loop: EventLoop) async throws -> (any Transport, start: UInt64) {
        if !tlsAvailable { throw HTTPError.tlsUnavailable(endpoint: endpoint.description) }
        // `tls` or the default client configuration, verified for the URL's host.
        let given = tls?.configuration
        let tlsConfig = (given ?? .defaultClient).withServerName(given?.serverName ?? endpoint.host)
        let address = try await endpoint.resolve()
        let start = monotonicNanos()
        return (try await TransportConnector.connect(to: address, from: source, timeout: timeout, tls: tlsConfig,
                                                     failedHandshake: wire, on: loop), start)
    }

    /// The opening handshake over an open `transport` (TCP, TLS, or an in-memory pair in tests),
    /// to be done within `timeout` of `start` (when the connect began: the budget covers both).
    /// When it fails, `wire` holds the bytes it wrote and read (for `data_sent`/`data_received`).
    @inline(never)
    static func handshake(over transport: any Transport, endpoint: Endpoint, headers: [(String, String)],
                          subprotocols: [String], timeout: Duration, maxMessageSize: Int,
                          closeTimeout: Duration, observer: (any ClientObserver)?, countsOperation: Bool = true,
                          start: UInt64, wire: WireBytes? = nil) async throws -> WebSocketClient {
        let tlsNanos = transport.tlsHandshakeNanos
        // Started by a plain function: this context, which waits as long as the server takes,
        // keeps only what is needed after the wait (see `connectNow`).
        let connection: WebSocketConnection = try await withCheckedThrowingContinuation { cont in
            startHandshake(over: transport, endpoint: endpoint, headers: headers, subprotocols: subprotocols, timeout: timeout,
                           maxMessageSize: maxMessageSize, closeTimeout: closeTimeout,
                           observer: observer, countsOperation: countsOperation, start: start, tlsNanos: tlsNanos, wire: wire, cont: cont)
        }
        let client = WebSocketClient(connection: connection, endpoint: endpoint, handshakeNanos: monotonicNanos() &- start, tlsHandshakeNanos: tlsNanos)
        observer?.sessionOpened(connection, heldBy: client)
        return client
    }

    @inline(never)
    private static func startHandshake(over transport: any Transport, endpoint: Endpoint, headers: [(String, String)],
                                       subprotocols: [String], timeout: Duration, maxMessageSize: Int,
                                       closeTimeout: Duration, observer: (any ClientObserver)?, countsOperation: Bool,
                                       start: UInt64, tlsNanos: UInt64?,
                                       wire: WireBytes?, cont: CheckedContinuation<WebSocketConnection, any Error>) {
        let loop = transport.loop
        let deadline = start &+ timeout.nanoseconds, now = monotonicNanos()
        let remaining = Duration.nanoseconds(Int64(deadline > now ? deadline - now : 0))
        // Credential headers (Authorization, X-Api-Key, Cookie, …) are registered before they are
        // sent: a server echoing them (a 403 body, a close reason) is masked in every output.
        for (name, value) in headers { Secrets.registerHeader(name, value) }
        let request = WebSocketHandshake.clientRequest(endpoint: endpoint, headers: headers, subprotocols: subprotocols)
        loop.execute {
            let hs = ClientHandshakeDelegate(request: request, endpoint: endpoint, maxMessageSize: maxMessageSize,
                                             closeTimeout: closeTimeout, cont: cont, observer: observer,
                                             countsOperation: countsOperation, start: start, tlsNanos: tlsNanos, wire: wire)
            transport.start(delegate: hs)
            transport.write(request.bytes)
            hs.timer = loop.schedule(after: remaining) { [weak hs] in
                let timedOut = WebSocketError(kind: "ws_handshake_timeout", source: .server,
                                              message: "WebSocket handshake with \(endpoint) timed out after \(timeout.readable)")
                hs?.fail(ResourcePressure.attribute(timedOut, operationStart: start), transport)
            }
        }
    }

    // MARK: sending

    /// Sends a text message; throws `ws_closed` / `ws_close_<code>` when the connection is closing
    /// or closed. Resumes once the frame is queued on the socket (not when the peer has it).
    public func send(text: String) async throws {
        try await onLoopThrowing { c in c.sendOnLoop(text: text) }
    }

    /// Sends a binary message; see ``send(text:)``.
    public func send(binary: [UInt8]) async throws {
        try await onLoopThrowing { c in c.sendOnLoop(binary: binary) }
    }

    /// Sends a ping (payload at most 125 bytes); the pong updates ``WebSocketConnection/lastPongNanos``.
    public func ping(_ payload: [UInt8] = []) async throws {
        let p = Array(payload.prefix(125))
        try await onLoopThrowing { c in p.withUnsafeBytes { c.sendOnLoop(.ping, payload: $0) } }
    }

    private func onLoopThrowing(_ body: @escaping @Sendable (WebSocketConnection) -> Bool) async throws {
        let c = connection
        let backlog = try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Int, any Error>) in
            c.loop.execute {
                if body(c) { cont.resume(returning: c.transport.bufferedBytes) } else {
                    cont.resume(throwing: c.endingInfo.map { WebSocketConnection.error(for: $0) } ?? WebSocketError.closedLocally)
                }
            }
        }
        // Back-pressure: when the socket does not keep up, wait until the queue is written.
        if backlog > 1 << 20 { try await c.transport.writeAndFlush([]) }
    }

    // MARK: receiving

    /// The next message (buffered if it arrived earlier). Throws `ws_close_<code>` (source server)
    /// once the server closed, `ws_close_1006` after an abrupt drop, `ws_closed` after our close.
    /// With `timeout`, throws `ws_receive_timeout` when nothing arrives in time; task cancellation
    /// throws `CancellationError`. The connection stays usable after either.
    public func receive(timeout: Duration? = nil) async throws -> WebSocketMessage {
        guard let timeout else { return try await connection.receive() }
        do {
            return try await connection.receive(timeout: timeout)
        } catch let e as WebSocketError where e.kind == WebSocketError.receiveTimeoutKind {
            // Which server fell silent: a run's examples otherwise name only the step.
            throw WebSocketError(kind: e.kind, source: e.source, message: "no WebSocket message from \(endpoint) within \(timeout.readable)")
        }
    }

    /// Hot-path alternative to ``receive()``: `onMessage` and `onClose` run on the loop (no task per
    /// message). Messages already buffered are delivered first. Thread-safe.
    public func setCallbacks(onMessage: @escaping (WebSocketMessage) -> Void,
                             onClose: @escaping (WebSocketCloseInfo) -> Void = { _ in }) {
        connection.setCallbacks(onMessage: onMessage, onClose: onClose)
    }

    // MARK: closing

    /// Performs the closing handshake (bounded by the connect call's `closeTimeout`) and returns how the
    /// connection ended.
    @discardableResult
    public func close(code: UInt16 = WebSocketCloseCode.normal, reason: String = "") async -> WebSocketCloseInfo {
        await connection.close(code: code, reason: reason)
    }

    /// Resumes when the connection has closed (either side), with how it ended.
    public func waitClosed() async -> WebSocketCloseInfo { await connection.waitClosed() }
}

/// Reads the server's answer to the upgrade request, on the loop; on success hands the TCP
/// connection (and any bytes behind the 101 head) to a new ``WebSocketConnection``.
final class ClientHandshakeDelegate: ConnectionDelegate, @unchecked Sendable {
    private var parser = HTTPResponseHeadParser(limits: HTTPHeadLimits(maxHeadBytes: 16 * 1024, maxLines: 128))
    private let request: WebSocketHandshake.ClientRequest
    private let endpoint: Endpoint
    private let maxMessageSize: Int
    private let closeTimeout: Duration
    private var cont: CheckedContinuation<WebSocketConnection, any Error>?
    var timer: LoopTimer?
    // A rejected handshake: collect a little of the body for the error message.
    private var rejected: HTTPResponseHead?
    private var body: [UInt8] = []
    private var bodyWanted = 0
    // Built-in metrics of the virtual user opening the connection (nil outside a load run).
    private let observer: (any ClientObserver)?
    // False when a protocol over the WebSocket (STOMP) counts its own connect as the operation.
    private let countsOperation: Bool
    private let start: UInt64
    private let tlsNanos: UInt64?
    private var headBytes = 0
    // Every byte read so far (head, body of a rejection, anything behind a malformed head).
    private var bytesRead = 0
    private let wire: WireBytes?

    init(request: WebSocketHandshake.ClientRequest, endpoint: Endpoint, maxMessageSize: Int, closeTimeout: Duration,
         cont: CheckedContinuation<WebSocketConnection, any Error>, observer: (any ClientObserver)? = nil,
         countsOperation: Bool = true, start: UInt64 = 0, tlsNanos: UInt64? = nil, wire: WireBytes? = nil) {
        self.closeTimeout = closeTimeout
        self.request = request
        self.endpoint = endpoint
        self.maxMessageSize = maxMessageSize
        self.cont = cont
        self.observer = observer
        self.countsOperation = countsOperation
        self.start = start
        self.tlsNanos = tlsNanos
        self.wire = wire
    }

    func connection(_ transport: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        guard cont != nil else { return }
        bytesRead += bytes.count
        if let head = rejected {
            body.append(contentsOf: bytes.prefix(bodyWanted - body.count))
            if body.count >= bodyWanted { failRejected(head, transport) }
            return
        }
        switch parser.parse(bytes) {
        case .needMore:
            headBytes += bytes.count
            return
        case .failure(let e):
            fail(WebSocketError.handshakeInvalid("\(e)"), transport)
        case .done(let head, let consumed):
            headBytes += consumed
            let rest = UnsafeRawBufferPointer(rebasing: bytes[consumed...])
            if head.status != 101 {
                rejected = head
                let length = head.headers["Content-Length"].flatMap { Int($0.trimmingASCIISpaces()) }
                bodyWanted = min(length ?? 200, 200)
                body.append(contentsOf: rest.prefix(bodyWanted))
                if body.count >= bodyWanted { failRejected(head, transport); return }
                // Don't let a slow or chunked body turn the rejection into a timeout: report
                // the status with whatever of the body arrives within a short grace period.
                timer?.cancel()
                timer = transport.loop.schedule(after: .milliseconds(200)) { [weak self, weak transport] in
                    guard let self, let transport, let head = self.rejected else { return }
                    self.failRejected(head, transport)
                }
                return
            }
            do {
                let proto = try WebSocketHandshake.validate(response: head, for: request)
                let ws = WebSocketConnection(transport: transport, role: .client, subprotocol: proto, maxMessageSize: maxMessageSize,
                                             closeTimeout: closeTimeout)
                timer?.cancel()
                let k = cont
                cont = nil
                // TLS's bytes so far (its handshake, the upgrade's records) count with the upgrade's.
                let tls = transport.takeWireOverhead()
                ws.sessionObserver = observer?.webSocketOpened(handshakeNanos: monotonicNanos() &- start, tlsNanos: tlsNanos,
                                                               bytesSent: request.bytes.count + tls.sent,
                                                               bytesReceived: headBytes + tls.received,
                                                               countsOperation: countsOperation)
                ws.start(initialBytes: Array(rest))
                k?.resume(returning: ws)
            } catch {
                fail(error, transport)
            }
        }
    }

    func connection(_ transport: any Transport, didCloseWith error: TransportError?) {
        guard cont != nil else { return }
        if let head = rejected { failRejected(head, transport); return }
        if let error, error.kind != "closed_by_peer" { fail(error, transport); return }
        fail(WebSocketError(kind: "ws_handshake_closed", source: .server,
                            message: "\(endpoint) closed the connection before answering the WebSocket handshake"), transport)
    }

    private func failRejected(_ head: HTTPResponseHead, _ transport: any Transport) {
        fail(WebSocketError.handshakeStatus(head.status, reason: head.reason, body: WebSocketHandshake.bodyExcerpt(body),
                                            authority: endpoint.authority), transport)
    }

    func fail(_ error: any Error, _ transport: any Transport) {
        guard let k = cont else { return }
        cont = nil
        timer?.cancel()
        timer = nil
        if let wire {
            // What left this process: the request and what TLS put on the wire around it (its
            // handshake, the records), less what still waits in the send queue.
            let tls = transport.takeWireOverhead()
            wire.sent = max(0, request.bytes.count + tls.sent - transport.bufferedWireBytes)
            wire.received = bytesRead + tls.received
        }
        transport.close()
        k.resume(throwing: error)
    }
}

/// A TLS configuration passed down the WebSocket connect path by reference. A connect's steps
/// each keep what they pass on for as long as the step below waits, and a `TLSConfiguration?`
/// is ≈ 80 bytes of every such context even for plain `ws` (nil): thousands of connects in
/// flight during a ramp held those bytes in their tasks' allocator slabs.
package final class TLSSettings: Sendable {
    package let configuration: TLSConfiguration
    package init(_ configuration: TLSConfiguration) { self.configuration = configuration }
}
