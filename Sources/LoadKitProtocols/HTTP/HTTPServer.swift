import Synchronization
import LoadKitTransport

/// What an ``HTTPServer`` upgrade hook returns to take a connection over (WebSocket).
///
/// The server writes `HTTP/1.1 101 Switching Protocols` with ``headers``, stops treating the
/// connection as HTTP, and calls ``install`` on the connection's loop with the ``Transport``
/// and any bytes the client sent after the request head (a client may send its first frame
/// right behind the handshake). `install` must call `connection.start(delegate:)` with the new
/// protocol's delegate — that replaces the HTTP delegate, reading continues — and then process
/// the leftover bytes as if they had just been read. From then on the connection belongs to the
/// new protocol: ``HTTPServer/stop()`` does not close it.
package struct HTTPUpgrade: Sendable {
    /// Headers of the 101 response (`Upgrade`, `Connection`, `Sec-WebSocket-Accept`, …).
    public var headers: HTTPHeaders
    /// Installs the new protocol on the connection; runs on the connection's loop.
    public var install: @Sendable (_ connection: any Transport, _ leftover: [UInt8]) -> Void

    /// Creates an upgrade answer.
    public init(headers: HTTPHeaders, install: @escaping @Sendable (_ connection: any Transport, _ leftover: [UInt8]) -> Void) {
        self.headers = headers
        self.install = install
    }
}

/// A small HTTP/1.1 server (server role, for fixtures): keep-alive, pipelining with responses in
/// request order, `Connection: close`, size limits (413, 431), 400 on malformed requests, and an
/// upgrade hook for WebSocket.
///
/// ```swift
/// let server = try HTTPServer(port: 0) { request in .text("hello \(request.path)") }
/// let url = "http://127.0.0.1:\(server.port)/"
/// defer { server.stop() }
/// ```
///
/// The handler runs in a task per request; requests of one connection are handled one after
/// another, so a slow handler delays only its own connection.
package final class HTTPServer: Sendable {
    /// Server limits.
    public struct Configuration: Sendable {
        /// Limits for request heads (exceeded → 431).
        public var headLimits: HTTPHeadLimits = HTTPHeadLimits()
        /// Largest request body (exceeded → 413); default 16 MiB.
        public var maxBodyBytes: Int = 16 << 20
        /// Most requests queued on one connection before it is closed (pipelining flood guard).
        public var maxQueuedRequests: Int = 1024
        /// Default limits.
        public init() {}
    }

    /// Handles one request.
    public typealias Handler = @Sendable (HTTPServerRequest) async -> HTTPServerResponse
    /// Decides whether to upgrade a request carrying `Connection: upgrade`; nil lets ``Handler`` answer it.
    package typealias UpgradeHook = @Sendable (HTTPServerRequest) async -> HTTPUpgrade?

    /// What the server has seen so far, for tests that compare a client's figures with the truth.
    public struct Statistics: Sendable, Equatable {
        /// Connections accepted.
        public var connections: Int
        /// Requests parsed (upgrade requests included).
        public var requests: Int
        /// HTTP bytes read (request heads and bodies; not an upgraded protocol's).
        public var bytesReceived: Int
        /// HTTP bytes written (responses, 100-continue and 101 heads).
        public var bytesSent: Int
    }

    private let listener: TCPListener
    private let connections = ConnectionRegistry()
    private let counters = ServerCounters()

    /// Connections, requests and bytes so far.
    public var statistics: Statistics { counters.snapshot }

    /// The bound address.
    public var address: SocketAddress { listener.address }
    /// The bound port (useful with port 0).
    public var port: Int { listener.address.port }

    /// Starts listening on `host:port` (a numeric address; port 0 picks a free one).
    /// With `tls` (a server ``TLSConfiguration``, `TLS` trait) it serves https (and wss upgrades).
    public init(host: String = "127.0.0.1", port: Int = 0, group: EventLoopGroup = .shared,
                configuration: Configuration = Configuration(), tls: TLSConfiguration? = nil,
                upgrade: UpgradeHook? = nil,
                handler: @escaping Handler) throws {
        let connections = self.connections
        let counters = self.counters
        listener = try TCPListener(host: host, port: port, group: group, tls: tls) { transport in
            connections.add(transport)
            counters.connections.add(1, ordering: .relaxed)
            let conn = HTTPServerConnection(transport: transport, configuration: configuration, handler: handler, upgrade: upgrade,
                                            counters: counters,
                                            forget: { [weak transport] in if let transport { connections.remove(transport) } })
            transport.start(delegate: conn)
        }
    }

    /// Stops accepting and closes every HTTP connection (upgraded ones belong to their protocol).
    public func stop() {
        listener.close()
        for c in connections.removeAll() { c.close() }
    }

    deinit { stop() }
}

/// Running totals of one ``HTTPServer`` (relaxed atomics: exact once the traffic has stopped).
final class ServerCounters: Sendable {
    let connections = Atomic<Int>(0)
    let requests = Atomic<Int>(0)
    let bytesReceived = Atomic<Int>(0)
    let bytesSent = Atomic<Int>(0)

    var snapshot: HTTPServer.Statistics {
        HTTPServer.Statistics(connections: connections.load(ordering: .relaxed), requests: requests.load(ordering: .relaxed),
                              bytesReceived: bytesReceived.load(ordering: .relaxed), bytesSent: bytesSent.load(ordering: .relaxed))
    }
}

/// The open HTTP connections of a server, so ``HTTPServer/stop()`` can close them.
final class ConnectionRegistry: Sendable {
    private let map = Mutex<[ObjectIdentifier: any Transport]>([:])
    func add(_ c: any Transport) { map.withLock { $0[ObjectIdentifier(c)] = c } }
    func remove(_ c: any Transport) { map.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(c)) } }
    func removeAll() -> [any Transport] {
        map.withLock { m in
            let v = Array(m.values)
            m.removeAll()
            return v
        }
    }
}

/// One server connection: parses requests, runs the handler for each in order, writes responses.
/// Confined to the connection's loop.
final class HTTPServerConnection: ConnectionDelegate, @unchecked Sendable {
    private let transport: any Transport
    private let configuration: HTTPServer.Configuration
    private let handler: HTTPServer.Handler
    private let upgrade: HTTPServer.UpgradeHook?
    private let forget: @Sendable () -> Void
    private let counters: ServerCounters
    private var parser: HTTPRequestParser
    private var queue: [HTTPServerRequest] = []
    private var busy = false
    private var closing = false       // a final response was queued; ignore further input
    private var upgrading = false     // an upgrade hook is running; hold bytes back
    private var held: [UInt8] = []
    private var sentContinue = false
    private var out: [UInt8] = []

    init(transport: any Transport, configuration: HTTPServer.Configuration, handler: @escaping HTTPServer.Handler,
         upgrade: HTTPServer.UpgradeHook?, counters: ServerCounters, forget: @escaping @Sendable () -> Void) {
        self.transport = transport
        self.counters = counters
        self.configuration = configuration
        self.handler = handler
        self.upgrade = upgrade
        self.forget = forget
        parser = HTTPRequestParser(limits: configuration.headLimits, maxBodyBytes: configuration.maxBodyBytes)
    }

    func connection(_ connection: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        if closing { return }
        counters.bytesReceived.add(bytes.count, ordering: .relaxed)
        if upgrading || !held.isEmpty {
            held.append(contentsOf: bytes)
            return
        }
        feed(bytes)
    }

    private func feed(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count && !closing {
            switch parser.parse(UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            case .needMore:
                if !sentContinue, let h = parser.headAwaitingBody, h.headers["Expect"].map({ asciiCaseInsensitiveEquals($0, "100-continue") }) == true {
                    // curl and others wait for this before sending a large body.
                    sentContinue = true
                    write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
                }
                return
            case .done(var request, let used):
                offset += used
                sentContinue = false
                request.remoteAddress = transport.peerAddress
                if upgrade != nil && request.headers.containsToken("upgrade", in: "Connection") && request.headers.contains("Upgrade") {
                    // Everything after this request belongs to the upgraded protocol (or, if the
                    // hook declines, to HTTP again); keep it aside until the hook decides.
                    upgrading = true
                    held.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset...]))
                    enqueue(request)
                    return
                }
                enqueue(request)
            case .failure(let error):
                let status: Int
                switch error {
                case .headTooLarge: status = 431
                case .bodyTooLarge: status = 413
                default: status = 400
                }
                failAndClose(status: status, reason: error.description)
                return
            }
        }
    }

    private func enqueue(_ request: HTTPServerRequest) {
        if queue.count >= configuration.maxQueuedRequests {
            failAndClose(status: 503, reason: "too many pipelined requests")
            return
        }
        counters.requests.add(1, ordering: .relaxed)
        queue.append(request)
        if !busy { next() }
    }

    private func next() {
        guard !queue.isEmpty, !closing else { busy = false; return }
        busy = true
        let request = queue.removeFirst()
        let handler = self.handler
        let isUpgrade = upgrading && queue.isEmpty && request.headers.containsToken("upgrade", in: "Connection")
        let hook = isUpgrade ? upgrade : nil
        // The handler runs on the connection's loop: a fixture answers on time even while the
        // process's shared thread pool is busy (tests running in parallel).
        Task(executorPreference: transport.loop) { [self] in
            if let hook, let up = await hook(request) {
                transport.loop.execute { self.completeUpgrade(up) }
                return
            }
            let response = await handler(request)
            transport.loop.execute { self.respond(response, to: request, wasUpgrade: isUpgrade) }
        }
    }

    private func respond(_ response: HTTPServerResponse, to request: HTTPServerRequest, wasUpgrade: Bool) {
        guard transport.isOpen else { return }
        let keepAlive = request.head.keepAlive && !response.headers.containsToken("close", in: "Connection")
        out.removeAll(keepingCapacity: true)
        response.encode(into: &out, keepAlive: keepAlive, headRequest: request.method == .HEAD)
        write(out)
        if out.capacity > 256 * 1024 { out = [] }
        if !keepAlive {
            closeGracefully()
            return
        }
        if wasUpgrade {
            // The hook declined: the held bytes are HTTP again.
            upgrading = false
            let rest = held
            held = []
            busy = false
            rest.withUnsafeBytes { feed($0) }
            if !busy { next() }
            return
        }
        next()
    }

    private func completeUpgrade(_ up: HTTPUpgrade) {
        guard transport.isOpen else { return }
        out.removeAll(keepingCapacity: true)
        HTTPServerResponse(status: 101, headers: up.headers).encode(into: &out)
        write(out)
        closing = true  // stop HTTP processing on this delegate
        forget()
        let leftover = held
        held = []
        up.install(transport, leftover)
    }

    private func write(_ bytes: [UInt8]) {
        counters.bytesSent.add(bytes.count, ordering: .relaxed)
        transport.write(bytes)
    }

    private func failAndClose(status: Int, reason: String) {
        guard !closing else { return }
        out.removeAll(keepingCapacity: true)
        HTTPServerResponse.text(reason + "\n", status: status).encode(into: &out, keepAlive: false)
        write(out)
        closeGracefully()
    }

    // Send FIN after the response and close for good a little later (closing at once with
    // unread input would make the kernel send RST, which can destroy the response in flight).
    private func closeGracefully() {
        closing = true
        queue.removeAll()
        transport.shutdownOutput()
        transport.loop.schedule(after: .seconds(2)) { [transport] in transport.close() }
    }

    func connection(_ connection: any Transport, didCloseWith error: TransportError?) {
        closing = true
        queue.removeAll()
        forget()
    }
}

/// A minimal router: method plus path pattern with `{name}` segments.
///
/// ```swift
/// var router = Router()
/// router.get("/api/rooms/{id}") { req in .text("room \(req.pathParameters["id"]!)") }
/// let server = try HTTPServer(port: 0, handler: router.handler)
/// ```
package struct Router: Sendable {
    private struct Route: Sendable {
        let method: HTTPMethod
        let segments: [Substring]
        let handler: HTTPServer.Handler
    }
    private var routes: [Route] = []

    /// An empty router (every request answers 404).
    public init() {}

    /// Adds a route; `pattern` segments written `{name}` match any one segment.
    public mutating func add(_ method: HTTPMethod, _ pattern: String, _ handler: @escaping HTTPServer.Handler) {
        routes.append(Route(method: method, segments: pattern.split(separator: "/"), handler: handler))
    }

    /// Adds a GET route.
    public mutating func get(_ pattern: String, _ handler: @escaping HTTPServer.Handler) { add(.GET, pattern, handler) }
    /// Adds a POST route.
    public mutating func post(_ pattern: String, _ handler: @escaping HTTPServer.Handler) { add(.POST, pattern, handler) }

    /// Routes a request: the first route whose method and pattern match; 405 when only the method
    /// differs, 404 when nothing matches.
    public func handle(_ request: HTTPServerRequest) async -> HTTPServerResponse {
        let parts = request.head.path.split(separator: "/")
        var pathMatched = false
        for r in routes {
            guard let params = match(r.segments, parts) else { continue }
            guard r.method == request.method || (r.method == .GET && request.method == .HEAD) else { pathMatched = true; continue }
            var req = request
            req.pathParameters = params
            return await r.handler(req)
        }
        return pathMatched ? .text("method not allowed\n", status: 405) : .text("not found\n", status: 404)
    }

    /// The router as a server handler.
    public var handler: HTTPServer.Handler {
        let copy = self
        return { await copy.handle($0) }
    }

    private func match(_ pattern: [Substring], _ parts: [Substring]) -> [String: String]? {
        guard pattern.count == parts.count else { return nil }
        var params: [String: String] = [:]
        for (p, s) in zip(pattern, parts) {
            if p.hasPrefix("{") && p.hasSuffix("}") {
                params[String(p.dropFirst().dropLast())] = percentDecode(s, plusAsSpace: false)
            } else if p != s {
                return nil
            }
        }
        return params
    }
}
