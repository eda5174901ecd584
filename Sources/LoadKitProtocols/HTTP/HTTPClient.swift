import Foundation
import Synchronization
import LoadKitTransport

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
/// Credentials a script sends are registered with ``Secrets`` before they go out, so a server
/// echoing one is masked in every output: credential headers (where the ``HTTPHeaders`` are
/// built), credential-named query parameters (where the URL is parsed) and the credential-named
/// fields of JSON and form bodies (`"password": …`, `client_secret=…`; see the README's secrets
/// section for the name rule).
///
/// Per request, the client does one hop to the connection's event loop and one continuation; the
/// request is encoded into a buffer owned by the connection and reused.
public final class HTTPClient: Sendable {
    /// Client settings.
    public struct Configuration: Sendable {
        /// Largest number of open connections per host. Default: no cap — the pool grows to the
        /// number of requests in flight, so a closed-model run measures the server, not a queue
        /// inside the client. A cap requests waited for is reported in the run's environment
        /// (`http_pool_cap`), and a latency breach spent waiting for it is blamed on it.
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
    /// The pools by host (most scripts talk to one host: the last one is compared, not hashed).
    private let pools = Mutex(LastHitMap<PoolKey, HostPool>())
    private let sources: SourceRotation
    // URL strings already parsed: `get(url)` in a loop costs a comparison with the last URL (the
    // same string is usually the same storage) or a dictionary lookup, not a parse.
    private let targets = Mutex(LastHitMap<String, RequestTarget>())

    /// Creates a client.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        sources = SourceRotation(configuration.sourceAddresses)
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
        try await perform(start(request, timeout: timeout))
    }

    /// `GET url`. `name` tags the request's metrics (`http_req_duration{name:/items/{id}}`);
    /// `expecting` overrides which statuses count as success.
    @discardableResult
    nonisolated(nonsending)
    public func get(_ url: String, headers: HTTPHeaders = HTTPHeaders(), name: String? = nil,
                    expecting: ExpectedStatuses? = nil, timeout: Duration? = nil) async throws -> HTTPResponse {
        try await perform(start(.GET, url, headers: headers, body: [], name: name, expecting: expecting, timeout: timeout))
    }

    /// `POST url` with `value` encoded as JSON (`Content-Type: application/json` unless set).
    @discardableResult
    nonisolated(nonsending)
    public func post(_ url: String, json value: some Encodable, headers: HTTPHeaders = HTTPHeaders(),
                     encoder: JSONEncoder = JSONEncoder(), name: String? = nil, expecting: ExpectedStatuses? = nil,
                     timeout: Duration? = nil) async throws -> HTTPResponse {
        var h = headers
        if !h.contains("Content-Type") { h.append("Content-Type", "application/json") }
        let body: [UInt8]
        do { body = Array(try encoder.encode(value)) } catch {
            throw ScriptFailure("cannot encode \(type(of: value)) as JSON: \(error)", kind: "json_encode")
        }
        return try await perform(start(.POST, url, headers: h, body: body, name: name, expecting: expecting, timeout: timeout))
    }

    /// `POST url` with a raw body.
    @discardableResult
    nonisolated(nonsending)
    public func post(_ url: String, body: [UInt8], headers: HTTPHeaders = HTTPHeaders(), name: String? = nil,
                     expecting: ExpectedStatuses? = nil, timeout: Duration? = nil) async throws -> HTTPResponse {
        try await perform(start(.POST, url, headers: headers, body: body, name: name, expecting: expecting, timeout: timeout))
    }

    /// Sends any method with an optional body.
    @discardableResult
    nonisolated(nonsending)
    public func send(_ method: HTTPMethod, _ url: String, body: [UInt8] = [], headers: HTTPHeaders = HTTPHeaders(),
                     name: String? = nil, expecting: ExpectedStatuses? = nil, timeout: Duration? = nil) async throws -> HTTPResponse {
        try await perform(start(method, url, headers: headers, body: body, name: name, expecting: expecting, timeout: timeout))
    }

    /// A request on its way: its pending state, its pool, and the virtual user listening (if any).
    private struct Started {
        let pending: PendingRequest
        let pool: HostPool
        let observer: (any ClientObserver)?
    }

    /// `GET`, `POST`, `send`: the request is built inside the pending request. Built in the async
    /// caller, or even here and handed over, it was copied and the original destroyed — two
    /// dozen reference-count operations a request (the compiler does not forward a large
    /// struct's temporary into an owned argument).
    @inline(never)
    private func start(_ method: HTTPMethod, _ url: String, headers: HTTPHeaders, body: [UInt8], name: String?,
                       expecting: ExpectedStatuses?, timeout: Duration?) throws -> Started {
        // A bare GET (no headers of its own or the client's) is the same bytes every time.
        let bare = method == .GET && body.isEmpty && headers.isEmpty && configuration.defaultHeaders.isEmpty
        let target = try target(url, bareGET: bare)
        let endpoint = target.endpoint
        if endpoint.isTLS && !tlsAvailable {
            // The failure path counts the whole request (its `name` tag included).
            return try start(HTTPRequest(method: method, endpoint: endpoint, headers: headers, body: body, name: name, expecting: expecting),
                             timeout: timeout)
        }
        let observer = ClientObservation.current
        let merged = withDefaultHeaders(headers)
        // The credentials in its body (credential-named JSON or form fields) are registered before
        // it can be sent — and before its clock starts. A request without a body: one comparison.
        RequestSecrets.registerBody(body, headers: merged)
        let pending = PendingRequest(method: method, endpoint: endpoint, headers: merged, body: body,
                                     name: name, expecting: expecting,
                                     timeout: timeout ?? configuration.defaultTimeout, start: monotonicNanos(),
                                     encoded: bare ? target.bareGET : nil)
        return Started(pending: pending, pool: target.pool, observer: observer)
    }

    /// `execute`'s request (a copy of the caller's): fails at once for `https` without TLS
    /// support, else picks its pool, adds the default headers and starts its clock.
    private func start(_ request: consuming HTTPRequest, timeout: Duration?) throws -> Started {
        let observer = ClientObservation.current
        if request.endpoint.isTLS && !tlsAvailable {
            let error = HTTPError.tlsUnavailable(endpoint: request.endpoint.description)
            observer?.httpExchangeFinished(HTTPExchange(request, failure: error))
            throw error
        }
        let pool = pool(for: request.endpoint)
        let limit = timeout ?? configuration.defaultTimeout
        request.headers = withDefaultHeaders(request.headers)
        RequestSecrets.registerBody(request.body, headers: request.headers)
        let start = monotonicNanos()
        return Started(pending: PendingRequest(request: consume request, timeout: limit, start: start), pool: pool, observer: observer)
    }

    /// `headers` with the client's default headers it does not set itself.
    @inline(__always)
    private func withDefaultHeaders(_ headers: HTTPHeaders) -> HTTPHeaders {
        if configuration.defaultHeaders.isEmpty { return headers }
        var h = headers
        for f in configuration.defaultHeaders where !h.contains(f.name) { h.append(f.name, f.value) }
        return h
    }

    /// Sends a started request and waits for its answer, then tells the listener. Inlined, so it
    /// adds no async frame to a request.
    @inline(__always)
    nonisolated(nonsending)
    private func perform(_ started: Started) async throws -> HTTPResponse {
        let pending = started.pending, pool = started.pool, observer = started.observer
        // Cancelling the calling task fails the request at once with CancellationError; a
        // response that still arrives is read and dropped, so the connection stays usable.
        let response: HTTPResponse
        do {
            if let scope = observer?.cancellation, scope.isCurrentTask {
                // A virtual user's own request: its task's scope cancels it (one handler per user).
                defer { scope.leave() }
                response = try await withUnsafeThrowingContinuation { (cont: UnsafeContinuation<HTTPResponse, any Error>) in
                    if !scope.enter(pending) { pending.fail(CancellationError()) }
                    if pending.attach(cont) { pool.submit(pending) }
                }
            } else {
                response = try await withTaskCancellationHandler {
                    try await withUnsafeThrowingContinuation { (cont: UnsafeContinuation<HTTPResponse, any Error>) in
                        if pending.attach(cont) { pool.submit(pending) }
                    }
                } onCancel: {
                    pending.fail(CancellationError())
                }
            }
        } catch {
            observer?.httpExchangeFinished(HTTPExchange(pending, status: nil, timings: nil, failure: error,
                                                        poolCap: configuration.maxConnectionsPerHost))
            throw error
        }
        if let observer {
            let failure = pending.statusFailure(response, expected: configuration.expectedStatuses)
            observer.httpExchangeFinished(HTTPExchange(pending, status: response.status, timings: response.timings, failure: failure,
                                                       poolCap: configuration.maxConnectionsPerHost,
                                                       finishedAt: pending.start &+ response.totalNanos))
        }
        return response
    }

    /// The parsed `url`, from a small per-client cache (at most 256 URL strings; a script that
    /// builds a new URL per request still gets it parsed once per request, no more).
    func endpoint(_ url: String) throws(HTTPError) -> Endpoint { try target(url, bareGET: false).endpoint }

    /// What a request to `url` needs that depends on the URL only: its endpoint, its pool and —
    /// when a bare GET first asks for it — that GET's bytes, from the per-client cache (one lock
    /// and, for the URL asked last, one string comparison a request). A script that builds a URL
    /// per POST does not pay for a GET's bytes it never sends.
    private func target(_ url: String, bareGET: Bool) throws(HTTPError) -> RequestTarget {
        if let t = targets.withLock({ $0.value(for: url) }) { return t }
        let e = try Endpoint(url)
        var bytes: [UInt8]? = nil
        if bareGET {
            var b: [UInt8] = []
            HTTPRequest.encode(method: .GET, endpoint: e, headers: HTTPHeaders(), body: [], into: &b)
            bytes = b
        }
        let t = RequestTarget(endpoint: e, pool: pool(for: e), bareGET: bytes)
        targets.withLock { c in
            if c.count >= 256 { c.removeAll() }
            c.set(t, for: url)
        }
        return t
    }

    /// URL strings in the parse cache (for tests).
    var cachedEndpointCount: Int { targets.withLock { $0.count } }

    /// Closes idle connections and fails waiting requests with `client_shutdown`; requests in
    /// flight finish and their connections close afterwards. Thread-safe, idempotent.
    public func shutdown() {
        // Cached targets hold their pools: a request after this one opens a new pool, as before.
        targets.withLock { $0.removeAll() }
        let all = pools.withLock { p -> [HostPool] in
            let v = p.values
            p.removeAll()
            return v
        }
        for p in all { p.shutdown() }
    }

    /// Number of open (or opening) connections to `url`'s host; for tests and reports.
    public func connectionCount(for url: String) -> Int {
        guard let e = try? Endpoint(url) else { return 0 }
        return pools.withLock { $0.value(for: PoolKey(e)) }?.connectionCount ?? 0
    }

    private func pool(for endpoint: Endpoint) -> HostPool {
        let key = PoolKey(endpoint)
        return pools.withLock { p in
            if let existing = p.value(for: key) { return existing }
            let tls = endpoint.isTLS ? configuration.tls.withServerName(configuration.tls.serverName ?? endpoint.host) : nil
            let created = HostPool(host: endpoint.host, port: endpoint.port, label: endpoint.authority,
                                   configuration: configuration, tls: tls,
                                   nextSource: { [sources] in sources.next() })
            p.set(created, for: key)
            return created
        }
    }

}

/// The configured source addresses, handed out in turn to the connections of all the client's
/// pools. The pools hold it, not the client: a weak reference to the client would give it a side
/// table, and every retain and release of the client — one a request — the runtime's slow path.
final class SourceRotation: Sendable {
    let addresses: [SocketAddress]
    private let counter = Atomic<Int>(0)

    init(_ addresses: [SocketAddress]) { self.addresses = addresses }

    func next() -> SocketAddress? {
        addresses.isEmpty ? nil : addresses[counter.add(1, ordering: .relaxed).oldValue % addresses.count]
    }
}

extension HTTPExchange {
    /// A request that failed before it could be sent.
    init(_ request: borrowing HTTPRequest, failure: any Error) {
        self.init(method: request.method, path: request.endpoint.path, name: request.name, status: nil, failure: failure,
                  timings: HTTPTimings(), bytesSent: 0, bytesReceived: 0, queued: false, retries: 0,
                  cancelled: failure is CancellationError)
    }

    /// A request that was answered (`status`, `timings`) or failed on its way (nil, nil), sent
    /// through a pool capped at `poolCap` connections (kept when the request waited for one).
    init(_ pending: PendingRequest, status: Int?, timings: HTTPTimings?, failure: (any Error)?, poolCap: Int,
         finishedAt: UInt64 = 0) {
        self.init(method: pending.method, path: pending.endpoint.path, name: pending.name,
                  status: status, failure: failure, timings: timings ?? HTTPTimings(),
                  bytesSent: pending.bytesSent, bytesReceived: pending.bytesReceived,
                  queued: pending.queued, poolCap: pending.queued ? poolCap : nil, retries: pending.staleRetries,
                  cancelled: failure is CancellationError, finishedAt: finishedAt)
    }
}

/// A URL's parsed endpoint, its pool and the bytes of a bare `GET` of it (cached per URL string;
/// nil when the request that cached it was not a bare GET: later ones are encoded as any other).
private final class RequestTarget: Sendable {
    let endpoint: Endpoint
    let pool: HostPool
    let bareGET: [UInt8]?

    init(endpoint: Endpoint, pool: HostPool, bareGET: [UInt8]?) {
        self.endpoint = endpoint
        self.pool = pool
        self.bareGET = bareGET
    }
}

/// Which pool a request goes to (no string building per request).

/// A dictionary that remembers its last hit: a caller that asks for the same key again and again
/// (one URL, one host) pays a comparison — usually of the same String storage — not a hash.
struct LastHitMap<Key: Hashable, Value> {
    private var byKey: [Key: Value] = [:]
    // The last hit, key and value apart: a hit compares the key in place and copies only the value.
    private var lastKey: Key?
    private var lastValue: Value?

    /// The value for `key`, remembered as the last hit.
    mutating func value(for key: Key) -> Value? {
        if lastKey == key { return lastValue }
        guard let v = byKey[key] else { return nil }
        lastKey = key
        lastValue = v
        return v
    }

    /// Stores `value` for `key` (and remembers it as the last hit).
    mutating func set(_ value: Value, for key: Key) {
        byKey[key] = value
        lastKey = key
        lastValue = value
    }

    /// Forgets every entry.
    mutating func removeAll() {
        byKey.removeAll(keepingCapacity: true)
        lastKey = nil
        lastValue = nil
    }

    /// Number of entries.
    var count: Int { byKey.count }
    /// Every value, in no particular order.
    var values: [Value] { Array(byKey.values) }
}
