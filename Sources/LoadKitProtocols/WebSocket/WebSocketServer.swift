import LoadKitTransport

/// The server role of a WebSocket: a ``WebSocketConnection`` with role `.server` (it requires
/// masked frames and sends unmasked ones). Same send, callback, handler and close API as the client.
package typealias WebSocketServerConnection = WebSocketConnection

/// Accepting WebSocket upgrades in the server role (fixtures).
///
/// Two ways in:
/// - ``upgrade(_:request:leftover:supportedSubprotocols:extraHeaders:maxMessageSize:)`` when an
///   HTTP server already parsed the request head (its upgrade hook);
/// - ``accept(_:supportedSubprotocols:maxMessageSize:handshakeTimeout:authorize:onOpen:)`` on a
///   freshly accepted ``Transport`` that should speak only WebSocket (reads the request itself).
package enum WebSocketServer {
    /// What `authorize` answers for a request it refuses: an HTTP status and a body (the reason,
    /// e.g. `INVALID_TICKET`).
    public struct Refusal: Sendable, Hashable {
        /// HTTP status, e.g. 401 or 403.
        public var status: Int
        /// Response body (text).
        public var body: String
        /// Content type of the body.
        public var contentType: String
        /// Creates a refusal.
        public init(status: Int, body: String = "", contentType: String = "text/plain") {
            self.status = status
            self.body = body
            self.contentType = contentType
        }

        var responseBytes: [UInt8] {
            let b = Array(body.utf8)
            let s = "HTTP/1.1 \(status) \(status == 401 ? "Unauthorized" : status == 403 ? "Forbidden" : "Refused")\r\n"
                + "Content-Type: \(contentType)\r\nContent-Length: \(b.count)\r\nConnection: close\r\n\r\n"
            return Array(s.utf8) + b
        }
    }

    /// Upgrades `transport` whose request head was already read: validates it, writes the 101 answer and
    /// returns the started server connection; on an invalid request writes 400/426, closes and
    /// returns nil. `leftover` are bytes read after the head (first frames). On the loop.
    public static func upgrade(_ transport: any Transport, request: HTTPRequestHead, leftover: [UInt8] = [],
                               supportedSubprotocols: [String] = [], extraHeaders: [(String, String)] = [],
                               maxMessageSize: Int = 16 << 20) -> WebSocketServerConnection? {
        switch WebSocketHandshake.accept(request, supportedSubprotocols: supportedSubprotocols, extraHeaders: extraHeaders) {
        case .failure(let rejection):
            refuse(transport, bytes: rejection.responseBytes)
            return nil
        case .success(let acceptance):
            transport.write(acceptance.responseBytes)
            let ws = WebSocketConnection(transport: transport, role: .server, subprotocol: acceptance.subprotocol,
                                         maxMessageSize: maxMessageSize)
            ws.start(initialBytes: leftover)
            return ws
        }
    }

    /// Reads the upgrade request from a freshly accepted connection (call from the listener's
    /// `onAccept`, on the loop), asks `authorize` (nil = accept), and on success calls `onOpen`
    /// on the loop with the started connection and the request (path, query, headers).
    /// Connections that send no complete request within `handshakeTimeout` are closed.
    public static func accept(_ transport: any Transport, supportedSubprotocols: [String] = [],
                              maxMessageSize: Int = 16 << 20, handshakeTimeout: Duration = .seconds(10),
                              authorize: @escaping (HTTPRequestHead) -> Refusal? = { _ in nil },
                              onOpen: @escaping (WebSocketServerConnection, HTTPRequestHead) -> Void) {
        let d = ServerHandshakeDelegate(subprotocols: supportedSubprotocols, maxMessageSize: maxMessageSize,
                                        authorize: authorize, onOpen: onOpen)
        transport.start(delegate: d)
        d.timer = transport.loop.schedule(after: handshakeTimeout) { [weak transport] in transport?.close() }
    }

    // Sends a refusal and closes once it is written (the client usually closes first).
    static func refuse(_ transport: any Transport, bytes: [UInt8]) {
        transport.write(bytes)
        transport.shutdownOutput()
        transport.loop.schedule(after: .seconds(2)) { transport.close() }
    }
}

/// Reads one upgrade request head on the loop, then hands over to a ``WebSocketConnection``.
final class ServerHandshakeDelegate: ConnectionDelegate, @unchecked Sendable {
    private var parser = HTTPRequestHeadParser(limits: HTTPHeadLimits(maxHeadBytes: 16 * 1024, maxLines: 128))
    private let subprotocols: [String]
    private let maxMessageSize: Int
    private let authorize: (HTTPRequestHead) -> WebSocketServer.Refusal?
    private let onOpen: (WebSocketServerConnection, HTTPRequestHead) -> Void
    private var done = false
    var timer: LoopTimer?

    init(subprotocols: [String], maxMessageSize: Int, authorize: @escaping (HTTPRequestHead) -> WebSocketServer.Refusal?,
         onOpen: @escaping (WebSocketServerConnection, HTTPRequestHead) -> Void) {
        self.subprotocols = subprotocols
        self.maxMessageSize = maxMessageSize
        self.authorize = authorize
        self.onOpen = onOpen
    }

    func connection(_ transport: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        guard !done else { return }
        switch parser.parse(bytes) {
        case .needMore:
            return
        case .failure(let e):
            done = true
            timer?.cancel()
            WebSocketServer.refuse(transport, bytes: WebSocketHandshake.Rejection(status: 400, message: "\(e)").responseBytes)
        case .done(let head, let consumed):
            done = true
            timer?.cancel()
            if let refusal = authorize(head) {
                WebSocketServer.refuse(transport, bytes: refusal.responseBytes)
                return
            }
            let rest = Array(UnsafeRawBufferPointer(rebasing: bytes[consumed...]))
            if let ws = WebSocketServer.upgrade(transport, request: head, leftover: [], supportedSubprotocols: subprotocols,
                                                maxMessageSize: maxMessageSize) {
                onOpen(ws, head)
                // Frames that came with the request go in after the fixture has set its callbacks.
                if !rest.isEmpty { ws.feed(rest) }
            }
        }
    }

    func connection(_ transport: any Transport, didCloseWith error: TransportError?) {
        timer?.cancel()
    }
}

extension WebSocketServer {
    /// The answer for ``HTTPServer``'s upgrade hook: a WebSocket upgrade of `request`, or nil when
    /// it is not a valid WebSocket upgrade request (the HTTP handler then answers it, e.g. 400, or
    /// 401 with a reason for a refused ticket — decide that before calling this).
    ///
    /// `onOpen` runs on the connection's loop with the started server connection; set its
    /// callbacks or handler there. Frames the client sent right behind the request are processed
    /// after `onOpen` returns.
    ///
    /// ```swift
    /// let server = try HTTPServer(port: 0, upgrade: { request in
    ///     guard validTicket(request) else { return nil }          // handler answers 401
    ///     return WebSocketServer.httpUpgrade(for: request) { ws, _ in
    ///         ws.setCallbacks(onMessage: { m in if case .text(let t) = m { ws.sendOnLoop(text: t) } })
    ///     }
    /// }, handler: { _ in .text("INVALID_TICKET", status: 401) })
    /// ```
    public static func httpUpgrade(for request: HTTPServerRequest, supportedSubprotocols: [String] = [],
                                   maxMessageSize: Int = 16 << 20,
                                   onOpen: @escaping @Sendable (WebSocketServerConnection, HTTPServerRequest) -> Void) -> HTTPUpgrade? {
        guard case .success(let checked) = WebSocketHandshake.check(request.head, supportedSubprotocols: supportedSubprotocols) else {
            return nil
        }
        var headers = HTTPHeaders()
        headers.append("Upgrade", "websocket")
        headers.append("Connection", "Upgrade")
        headers.append("Sec-WebSocket-Accept", WebSocketHandshakeKeys.accept(forKey: checked.key))
        if let p = checked.chosen { headers.append("Sec-WebSocket-Protocol", p) }
        let chosen = checked.chosen
        return HTTPUpgrade(headers: headers) { transport, leftover in
            let ws = WebSocketConnection(transport: transport, role: .server, subprotocol: chosen, maxMessageSize: maxMessageSize)
            ws.start()
            onOpen(ws, request)
            if !leftover.isEmpty { ws.feed(leftover) }
        }
    }
}
