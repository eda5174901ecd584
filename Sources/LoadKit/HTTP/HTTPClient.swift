import Foundation
import Synchronization

/// An HTTP/1.1 client with a keep-alive connection pool per host, built for load generation.
///
/// ```swift
/// let client = HTTPClient()
/// let login = try await client.post("http://127.0.0.1:8080/api/login", json: creds).requireStatus()
/// let token = login.jsonValue(at: "data.accessToken")
/// ```
///
/// Each host (`scheme://host:port`) gets a pool of keep-alive connections that grows to the
/// number of requests in flight — so virtual users never queue inside the client, each in effect
/// owning a connection as in k6 — unless ``Configuration/maxConnectionsPerHost`` caps it (then
/// requests beyond the cap wait, which shows in `http_req_blocked` and `http_reqs_queued`). The
/// timeout of a request covers everything: waiting for a connection, connecting, sending and
/// receiving. A request on a reused connection that the server closed before answering a single
/// byte is retried once on a fresh connection, but only when its method is idempotent.
///
/// Inside a load run, every request records k6's built-in metrics for the virtual user that sent
/// it: `http_reqs`, `http_req_duration` (and its phases `http_req_blocked`, `_connecting`,
/// `_tls_handshaking`, `_sending`, `_waiting`, `_receiving`), `http_req_failed`, `data_sent` and
/// `data_received`; a status outside ``Configuration/expectedStatuses`` counts one `http_<code>`
/// error, blamed on the server (the response is still returned: check it or call
/// ``HTTPResponse/requireStatus(_:)``, which does not count it again).
///
/// Per request, the client does one hop to the connection's event loop and one continuation; the
/// request is encoded into a buffer owned by the connection and reused.
public final class HTTPClient: Sendable {
    /// Client settings.
    public struct Configuration: Sendable {
        /// Largest number of open connections per host. Default: no cap — the pool grows to the
        /// number of requests in flight, so a closed-model run measures the server, not a queue
        /// inside the client. A cap is reported in the run's environment (`http_pool_cap`).
        public var maxConnectionsPerHost: Int = .max
        /// Statuses that count as success (default 200–399, as k6); others count an
        /// `http_<code>` error and a hit in `http_req_failed`. A request can override it.
        public var expectedStatuses: ExpectedStatuses = .default
        /// Timeout of a request when none is given (default 30 s).
        public var defaultTimeout: Duration = .seconds(30)
        /// Largest response body accepted (default 16 MiB); larger ones fail with `http_body_too_large`.
        public var maxResponseBodyBytes: Int = 16 << 20
        /// Limits for response heads.
        package var headLimits: HTTPHeadLimits = HTTPHeadLimits()
        /// Local addresses to connect from, used round-robin (spreads ports over 127.x.y.z).
        public var sourceAddresses: [SocketAddress] = []
        /// Headers added to every request unless the request sets them (e.g. `User-Agent`).
        public var defaultHeaders: HTTPHeaders = HTTPHeaders()
        /// The loops connections run on.
        package var group: EventLoopGroup = .shared
        /// TLS for `https` URLs (needs the `TLS` trait): verification, trusted CA, ALPN. The server
        /// name is each URL's host unless set here. Default ``TLSConfiguration/defaultClient``.
        public var tls: TLSConfiguration = .defaultClient

        /// Default settings.
        public init() {}
    }

    /// The settings this client was created with.
    public let configuration: Configuration
    private let pools = Mutex<[PoolKey: HostPool]>([:])
    private let sourceCounter = Atomic<Int>(0)
    // URL strings already parsed: `get(url)` in a loop costs a dictionary lookup, not a parse.
    private let endpoints = Mutex<[String: Endpoint]>([:])

    /// Creates a client.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Creates a client with the most common settings changed.
    public convenience init(maxConnectionsPerHost: Int, sourceAddresses: [SocketAddress] = []) {
        var c = Configuration()
        c.maxConnectionsPerHost = maxConnectionsPerHost
        c.sourceAddresses = sourceAddresses
        self.init(configuration: c)
    }

    deinit { shutdown() }

    /// Sends `request` and returns its response (any status; see ``HTTPResponse/requireStatus(_:)``).
    ///
    /// Throws ``HTTPError`` (`timeout`, `http_malformed`, `http_body_too_large`, `bad_url`,
    /// `tls_unavailable`) or ``TransportError`` (refused, reset, …) unchanged.
    @discardableResult
    nonisolated(nonsending)
    public func execute(_ request: HTTPRequest, timeout: Duration? = nil) async throws -> HTTPResponse {
        let observer = ClientObservation.current
        let endpoint = request.endpoint
        if endpoint.isTLS && !tlsAvailable {
            let error = HTTPError.tlsUnavailable(endpoint: endpoint.description)
            observer?.httpExchangeFinished(exchange(request, nil, error, nil))
            throw error
        }
        let pool = pool(for: endpoint)
        let limit = timeout ?? configuration.defaultTimeout
        let start = monotonicNanos()
        var request = request
        if !configuration.defaultHeaders.isEmpty {
            for f in configuration.defaultHeaders where !request.headers.contains(f.name) { request.headers.add(f.name, f.value) }
        }
        let pending = PendingRequest(request: request, timeout: limit, start: start)
        // Cancelling the calling task fails the request at once with CancellationError; a
        // response that still arrives is read and dropped, so the connection stays usable.
        let response: HTTPResponse
        do {
            response = try await withTaskCancellationHandler {
                try await withUnsafeThrowingContinuation { (cont: UnsafeContinuation<HTTPResponse, any Error>) in
                    if pending.attach(cont) { pool.submit(pending) }
                }
            } onCancel: {
                pending.fail(CancellationError())
            }
        } catch {
            observer?.httpExchangeFinished(exchange(request, nil, error, pending))
            throw error
        }
        if let observer {
            let expected = request.expectedStatuses ?? configuration.expectedStatuses
            let failure: HTTPError? = expected.contains(response.status) ? nil
                : .status(code: response.status, method: request.method.rawValue, endpoint: request.endpoint.description)
            observer.httpExchangeFinished(exchange(request, response, failure, pending))
        }
        return response
    }

    private func exchange(_ request: HTTPRequest, _ response: HTTPResponse?, _ failure: (any Error)?,
                          _ pending: PendingRequest?) -> HTTPExchange {
        HTTPExchange(method: request.method, path: request.endpoint.path, name: request.name,
                     status: response?.status, failure: failure, timings: response?.timings ?? HTTPTimings(),
                     bytesSent: pending?.bytesSent ?? 0, bytesReceived: pending?.bytesReceived ?? 0,
                     queued: pending?.queued ?? false, cancelled: failure is CancellationError)
    }

    /// `GET url`. `name` tags the request's metrics (`http_req_duration{name:/items/{id}}`);
    /// `expecting` overrides which statuses count as success.
    @discardableResult
    nonisolated(nonsending)
    public func get(_ url: String, headers: HTTPHeaders = HTTPHeaders(), name: String? = nil,
                    expecting: ExpectedStatuses? = nil, timeout: Duration? = nil) async throws -> HTTPResponse {
        try await execute(HTTPRequest(method: .GET, endpoint: try endpoint(url), headers: headers, name: name, expecting: expecting), timeout: timeout)
    }

    /// `POST url` with `value` encoded as JSON (`Content-Type: application/json` unless set).
    @discardableResult
    nonisolated(nonsending)
    public func post(_ url: String, json value: some Encodable, headers: HTTPHeaders = HTTPHeaders(),
                     encoder: JSONEncoder = JSONEncoder(), name: String? = nil, expecting: ExpectedStatuses? = nil,
                     timeout: Duration? = nil) async throws -> HTTPResponse {
        var h = headers
        if !h.contains("Content-Type") { h.add("Content-Type", "application/json") }
        let body: [UInt8]
        do { body = Array(try encoder.encode(value)) } catch {
            throw ScriptFailure("cannot encode \(type(of: value)) as JSON: \(error)", kind: "json_encode")
        }
        return try await execute(HTTPRequest(method: .POST, endpoint: try endpoint(url), headers: h, body: body, name: name, expecting: expecting),
                                 timeout: timeout)
    }

    /// `POST url` with a raw body.
    @discardableResult
    nonisolated(nonsending)
    public func post(_ url: String, body: [UInt8], headers: HTTPHeaders = HTTPHeaders(), name: String? = nil,
                     expecting: ExpectedStatuses? = nil, timeout: Duration? = nil) async throws -> HTTPResponse {
        try await execute(HTTPRequest(method: .POST, endpoint: try endpoint(url), headers: headers, body: body, name: name, expecting: expecting),
                          timeout: timeout)
    }

    /// Sends any method with an optional body.
    @discardableResult
    nonisolated(nonsending)
    public func send(_ method: HTTPMethod, _ url: String, body: [UInt8] = [], headers: HTTPHeaders = HTTPHeaders(),
                     name: String? = nil, expecting: ExpectedStatuses? = nil, timeout: Duration? = nil) async throws -> HTTPResponse {
        try await execute(HTTPRequest(method: method, endpoint: try endpoint(url), headers: headers, body: body, name: name, expecting: expecting),
                          timeout: timeout)
    }

    /// The parsed `url`, from a small per-client cache (at most 256 URL strings; a script that
    /// builds a new URL per request still gets it parsed once per request, no more).
    func endpoint(_ url: String) throws(HTTPError) -> Endpoint {
        if let e = endpoints.withLock({ $0[url] }) { return e }
        let e = try Endpoint(url)
        endpoints.withLock { c in
            if c.count >= 256 { c.removeAll(keepingCapacity: true) }
            c[url] = e
        }
        return e
    }

    /// URL strings in the parse cache (for tests).
    var cachedEndpointCount: Int { endpoints.withLock { $0.count } }

    /// Closes idle connections and fails waiting requests with `client_shutdown`; requests in
    /// flight finish and their connections close afterwards. Thread-safe, idempotent.
    public func shutdown() {
        let all = pools.withLock { p -> [HostPool] in
            let v = Array(p.values)
            p.removeAll()
            return v
        }
        for p in all { p.shutdown() }
    }

    /// Number of open (or opening) connections to `url`'s host; for tests and reports.
    public func connectionCount(for url: String) -> Int {
        guard let e = try? Endpoint(url) else { return 0 }
        return pools.withLock { $0[PoolKey(e)] }?.connectionCount ?? 0
    }

    private func pool(for endpoint: Endpoint) -> HostPool {
        let key = PoolKey(endpoint)
        return pools.withLock { p in
            if let existing = p[key] { return existing }
            let tls = endpoint.isTLS ? configuration.tls.withServerName(configuration.tls.serverName ?? endpoint.host) : nil
            let created = HostPool(host: endpoint.host, port: endpoint.port, label: endpoint.authority,
                                   configuration: configuration, tls: tls,
                                   nextSource: { [weak self] in self?.nextSource() })
            p[key] = created
            return created
        }
    }

    private func nextSource() -> SocketAddress? {
        let s = configuration.sourceAddresses
        guard !s.isEmpty else { return nil }
        return s[sourceCounter.add(1, ordering: .relaxed).oldValue % s.count]
    }
}

/// Which pool a request goes to (no string building per request).
struct PoolKey: Hashable, Sendable {
    let scheme: Endpoint.Scheme
    let host: String
    let port: Int
    init(_ e: Endpoint) { scheme = e.scheme; host = e.host; port = e.port }
}

/// One request on its way: created by `execute`, then owned by whoever holds it (pool queue or
/// connection loop). Resumed exactly once.
final class PendingRequest: @unchecked Sendable {
    private struct Completion: ~Copyable {
        var continuation: UnsafeContinuation<HTTPResponse, any Error>?
        var finished = false
        var failure: (any Error)?
    }

    let request: HTTPRequest
    let timeout: Duration
    let start: UInt64
    let deadline: UInt64
    // Resumed once, by whoever comes first: the connection, the timeout, or cancellation.
    private let completion = Mutex(Completion())
    // Touched only by the current owner (connection loop or pool), never concurrently; read by
    // the caller after it resumed.
    var connectStartAt: UInt64 = 0
    var connectNanos: UInt64 = 0
    var tlsNanos: UInt64 = 0
    var sentAt: UInt64 = 0
    var writtenAt: UInt64 = 0
    var firstByteAt: UInt64 = 0
    var bytesSent = 0
    var bytesReceived = 0
    var queued = false
    var staleRetries = 0
    var requeues = 0

    init(request: HTTPRequest, timeout: Duration, start: UInt64) {
        self.request = request
        self.timeout = timeout
        self.start = start
        self.deadline = start &+ timeout.nanoseconds
    }

    /// The time-out failure; blamed on the load generator if it ran out of descriptors meanwhile.
    var timeoutError: any Error {
        ResourcePressure.attribute(HTTPError.timeout(after: timeout, endpoint: request.endpoint.description), operationStart: start)
    }

    /// True once the caller has its answer (response, error or cancellation).
    var isFinished: Bool { completion.withLock { $0.finished } }

    /// Stores the continuation; false (and the continuation already resumed) when the request
    /// was cancelled before it could be sent.
    func attach(_ cont: UnsafeContinuation<HTTPResponse, any Error>) -> Bool {
        let early = completion.withLock { c -> (any Error)? in
            if c.finished { return c.failure ?? CancellationError() }
            c.continuation = cont
            return nil
        }
        if let e = early { cont.resume(throwing: e); return false }
        return true
    }

    private func take(_ failure: (any Error)?) -> UnsafeContinuation<HTTPResponse, any Error>? {
        completion.withLock { c in
            if c.finished { return nil }
            c.finished = true
            c.failure = failure
            let k = c.continuation
            c.continuation = nil
            return k
        }
    }

    func succeed(_ response: HTTPResponse) {
        guard let k = take(nil) else { return }
        var r = response
        let now = monotonicNanos()
        r.timeToFirstByteNanos = firstByteAt >= sentAt && sentAt > 0 ? firstByteAt - sentAt : 0
        r.totalNanos = now &- start
        // k6's phases: blocked until the connect started (new connection) or the request was
        // written (reused one); then connect, TLS, send, wait for the first byte, receive.
        let began = connectStartAt > 0 ? connectStartAt : sentAt
        r.timings = HTTPTimings(blocked: began > start ? began - start : 0, connecting: connectNanos, tlsHandshaking: tlsNanos,
                                sending: writtenAt > sentAt ? writtenAt - sentAt : 0,
                                waiting: firstByteAt > writtenAt ? firstByteAt - writtenAt : 0,
                                receiving: now > firstByteAt && firstByteAt > 0 ? now - firstByteAt : 0)
        r.requestMethod = request.method
        r.requestEndpoint = request.endpoint
        k.resume(returning: r)
    }

    func fail(_ error: any Error) {
        take(error)?.resume(throwing: error)
    }
}

/// The connections to one host: idle ones, a count of open ones, and requests waiting for one.
final class HostPool: Sendable {
    private struct State: ~Copyable {
        var idle: [HTTPClientConnection] = []
        var open = 0
        var waiters: [PendingRequest] = []
        var waitersHead = 0
        var sweeping = false
        var closed = false
        var sweepTimer: LoopTimer?
    }

    private enum Decision {
        case use(HTTPClientConnection)
        case connect
        case wait
        case closed
    }

    let host: String
    let port: Int
    let label: String
    let configuration: HTTPClient.Configuration
    /// TLS for an `https` pool (server name set), nil for `http`.
    let tls: TLSConfiguration?
    private let nextSource: @Sendable () -> SocketAddress?
    private let state = Mutex(State())

    init(host: String, port: Int, label: String, configuration: HTTPClient.Configuration,
         tls: TLSConfiguration? = nil, nextSource: @escaping @Sendable () -> SocketAddress?) {
        self.host = host
        self.port = port
        self.label = label
        self.configuration = configuration
        self.tls = tls
        self.nextSource = nextSource
    }

    var connectionCount: Int { state.withLock { $0.open } }

    /// Routes a request to an idle connection, a new connection, or the wait queue.
    func submit(_ task: PendingRequest) {
        let cap = max(1, configuration.maxConnectionsPerHost)
        let decision = state.withLock { s -> Decision in
            if s.closed { return .closed }
            if let c = s.idle.popLast() { return .use(c) }
            if s.open < cap { s.open += 1; return .connect }
            task.queued = true
            s.waiters.append(task)
            return .wait
        }
        switch decision {
        case .use(let c):
            // Already on the connection's loop (a task with an EventLoopTaskExecutor preference): no hop.
            if c.loop.inLoop { c.run(task) } else { c.loop.execute { c.run(task) } }
        case .connect: connect(for: task)
        case .wait: ensureSweeper()
        case .closed: task.fail(HTTPError.clientShutdown)
        }
    }

    /// Opens a connection for `task` (an `open` slot is already reserved).
    private func connect(for task: PendingRequest) {
        let source = nextSource()
        let loop = configuration.group.currentLoop ?? configuration.group.next()
        let remaining = task.deadline > monotonicNanos() ? task.deadline - monotonicNanos() : 0
        // On the connection's loop, not Swift's shared pool: a process busy with other work (tests
        // running in parallel) must not hold a new connection back until its request times out.
        Task(executorPreference: loop) { [self] in
            do {
                let address = try await SocketAddress.resolve(host: host, port: port)
                task.connectStartAt = monotonicNanos()
                let tcp = try await TCPConnection.connect(to: address, from: source,
                                                          timeout: .nanoseconds(Int64(max(remaining, 1_000_000))),
                                                          tls: tls, on: loop)
                let tlsNanos = tcp.tlsHandshakeNanos ?? 0
                let total = monotonicNanos() &- task.connectStartAt
                task.tlsNanos = tlsNanos
                task.connectNanos = total > tlsNanos ? total - tlsNanos : 0
                let conn = HTTPClientConnection(tcp: tcp, pool: self)
                loop.execute {
                    tcp.start(delegate: conn)
                    conn.run(task)
                }
            } catch {
                connectionGone()
                if case TransportError.timedOut = error, monotonicNanos() >= task.deadline {
                    task.fail(task.timeoutError)
                } else {
                    task.fail(error)
                }
            }
        }
    }

    /// A connection finished a request and can serve another: give it to the next waiter or park it.
    /// Called on the connection's loop.
    func release(_ conn: HTTPClientConnection) {
        var expired: [PendingRequest] = []
        let now = monotonicNanos()
        let next = state.withLock { s -> PendingRequest? in
            if s.closed { return nil }
            while s.waitersHead < s.waiters.count {
                let w = s.waiters[s.waitersHead]
                s.waitersHead += 1
                if w.isFinished { continue }  // cancelled while waiting
                if w.deadline <= now { expired.append(w); continue }
                compactWaiters(&s)
                return w
            }
            compactWaiters(&s)
            s.idle.append(conn)
            return nil
        }
        for e in expired { e.fail(e.timeoutError) }
        if let n = next { conn.run(n) } else if state.withLock({ $0.closed }) { conn.closeNow() }
    }

    /// A connection closed (or failed to open): free its slot and remove it if idle; if requests
    /// are waiting, open a connection for the first one.
    func connectionClosed(_ conn: HTTPClientConnection) {
        state.withLock { s in
            if let i = s.idle.firstIndex(where: { $0 === conn }) { s.idle.remove(at: i) }
        }
        connectionGone()
    }

    private func connectionGone() {
        let waiter = state.withLock { s -> PendingRequest? in
            s.open -= 1
            guard !s.closed, s.waitersHead < s.waiters.count else { return nil }
            let w = s.waiters[s.waitersHead]
            s.waitersHead += 1
            compactWaiters(&s)
            s.open += 1
            return w
        }
        if let w = waiter { connect(for: w) }
    }

    private func compactWaiters(_ s: inout State) {
        if s.waitersHead == s.waiters.count {
            s.waiters.removeAll(keepingCapacity: true)
            s.waitersHead = 0
        } else if s.waitersHead > 1024 && s.waitersHead * 2 > s.waiters.count {
            s.waiters.removeFirst(s.waitersHead)
            s.waitersHead = 0
        }
    }

    /// Waiting requests time out even when no connection frees up: a timer checks them every 5 ms
    /// while the queue is not empty.
    private func ensureSweeper() {
        let start = state.withLock { s -> Bool in
            if s.sweeping { return false }
            s.sweeping = true
            return true
        }
        guard start else { return }
        let loop = configuration.group.loops[0]
        loop.execute { [self] in
            let timer = loop.scheduleRepeating(every: .milliseconds(5)) { [self] in sweep() }
            state.withLock { $0.sweepTimer = timer }
        }
    }

    private func sweep() {
        let now = monotonicNanos()
        var expired: [PendingRequest] = []
        let timer = state.withLock { s -> LoopTimer? in
            var kept: [PendingRequest] = []
            for i in s.waitersHead..<s.waiters.count {
                let w = s.waiters[i]
                if w.deadline <= now { expired.append(w) } else { kept.append(w) }
            }
            if !expired.isEmpty {
                s.waiters = kept
                s.waitersHead = 0
            }
            if s.waitersHead >= s.waiters.count {
                s.sweeping = false
                let t = s.sweepTimer
                s.sweepTimer = nil
                return t
            }
            return nil
        }
        timer?.cancel()
        for e in expired { e.fail(e.timeoutError) }
    }

    func shutdown() {
        let (idle, waiting, timer) = state.withLock { s -> ([HTTPClientConnection], [PendingRequest], LoopTimer?) in
            s.closed = true
            let i = s.idle
            s.idle.removeAll()
            let w = Array(s.waiters[s.waitersHead...])
            s.waiters.removeAll()
            s.waitersHead = 0
            let t = s.sweepTimer
            s.sweepTimer = nil
            return (i, w, t)
        }
        for w in waiting { w.fail(HTTPError.clientShutdown) }
        for c in idle { c.loop.execute { c.closeNow() } }
        if let t = timer { configuration.group.loops[0].execute { t.cancel() } }
    }
}

/// Drives one client connection: encodes a request, feeds response bytes to the parser,
/// enforces the deadline, and hands the connection back to its pool. Confined to its loop.
final class HTTPClientConnection: ConnectionDelegate, @unchecked Sendable {
    let tcp: TCPConnection
    let pool: HostPool
    var loop: EventLoop { tcp.loop }
    private var parser: HTTPResponseParser
    private var current: PendingRequest?
    private var receivedAny = false
    private var served = 0
    private var writeBuffer: [UInt8] = []
    private var timer: LoopTimer?
    private var timerDeadline: UInt64 = 0
    private var closedReported = false

    init(tcp: TCPConnection, pool: HostPool) {
        self.tcp = tcp
        self.pool = pool
        parser = HTTPResponseParser(limits: pool.configuration.headLimits, maxBodyBytes: pool.configuration.maxResponseBodyBytes)
        writeBuffer.reserveCapacity(512)
    }

    /// Sends `task`'s request. On the loop.
    func run(_ task: PendingRequest) {
        guard tcp.isOpen else {
            // Closed while it sat idle in the pool: nothing was sent, so any method may go again.
            reportClosed()
            task.requeues += 1
            if task.requeues > 8 { task.fail(TransportError.closedByPeer(endpoint: pool.label)) } else { pool.submit(task) }
            return
        }
        let now = monotonicNanos()
        if task.isFinished {  // cancelled before it could be sent
            pool.release(self)
            return
        }
        if now >= task.deadline {
            pool.release(self)
            task.fail(task.timeoutError)
            return
        }
        current = task
        receivedAny = false
        parser.expectResponse(to: task.request.method)
        writeBuffer.removeAll(keepingCapacity: true)
        task.request.encode(into: &writeBuffer)
        task.sentAt = now
        task.bytesSent = writeBuffer.count
        task.bytesReceived = 0
        armTimer(task.deadline, now: now)
        tcp.write(writeBuffer)
        task.writtenAt = monotonicNanos()
        if writeBuffer.count > 64 * 1024 { writeBuffer = [] }
    }

    func connection(_ connection: TCPConnection, didRead bytes: UnsafeRawBufferPointer) {
        guard let task = current else {
            // Bytes with no request outstanding: the stream is out of step; drop the connection.
            tcp.close()
            return
        }
        if !receivedAny {
            receivedAny = true
            task.firstByteAt = monotonicNanos()
        }
        task.bytesReceived += bytes.count
        switch parser.parse(bytes) {
        case .needMore:
            return
        case .done(let response, let used):
            current = nil
            served += 1
            task.bytesReceived -= bytes.count - used  // bytes behind the response are not its own
            let reusable = used == bytes.count && response.status != 101 && response.head.keepAlive
            if reusable { pool.release(self) } else { tcp.close() }
            task.succeed(response)
        case .failure(let error):
            current = nil
            tcp.close()
            task.fail(error)
        }
    }

    func connection(_ connection: TCPConnection, didCloseWith error: TransportError?) {
        timer?.cancel()
        timer = nil
        reportClosed()
        guard let task = current else { return }
        current = nil
        if case .done(let response, _) = parser.finish() {
            task.succeed(response)
            return
        }
        if !receivedAny && served > 0 && task.request.method.isIdempotent && task.staleRetries == 0 {
            // A stale keep-alive connection: the server closed it before reading our request.
            task.staleRetries += 1
            pool.submit(task)
            return
        }
        if receivedAny {
            task.fail(HTTPError.malformed("connection closed before the response was complete"))
        } else {
            task.fail(error ?? TransportError.closedByPeer(endpoint: pool.label))
        }
    }

    func closeNow() { tcp.close() }

    private func reportClosed() {
        guard !closedReported else { return }
        closedReported = true
        pool.connectionClosed(self)
    }

    // One timer per connection, re-armed only when needed: back-to-back requests with the same
    // timeout do not create a timer each.
    private func armTimer(_ deadline: UInt64, now: UInt64) {
        if timer != nil && timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = loop.schedule(after: .nanoseconds(Int64(deadline - now))) { [weak self] in self?.timerFired() }
    }

    private func timerFired() {
        timer = nil
        guard let task = current else { return }
        let now = monotonicNanos()
        if now >= task.deadline {
            current = nil
            tcp.close()  // a late answer must not be read as the next request's response
            task.fail(task.timeoutError)
        } else {
            armTimer(task.deadline, now: now)
        }
    }
}
