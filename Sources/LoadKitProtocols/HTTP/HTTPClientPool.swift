import Foundation
import Synchronization
import LoadKitTransport

struct PoolKey: Hashable, Sendable {
    let scheme: Endpoint.Scheme
    let host: String
    let port: Int
    init(_ e: Endpoint) { scheme = e.scheme; host = e.host; port = e.port }
}

/// One request on its way: created by `execute`, then owned by whoever holds it (pool queue or
/// connection loop). Resumed exactly once.
final class PendingRequest: CancellableOperation, @unchecked Sendable {
    private struct Completion: ~Copyable {
        var continuation: UnsafeContinuation<HTTPResponse, any Error>?
        var finished = false
        var failure: (any Error)?
    }

    // The request's parts, stored apart and built in place from `get`'s arguments: an
    // `HTTPRequest` built and then stored was copied and its temporary destroyed (the compiler
    // does not forward the large struct), two dozen reference-count operations a request.
    let method: HTTPMethod
    let endpoint: Endpoint
    let headers: HTTPHeaders
    let body: [UInt8]
    let name: String?
    let expectedStatuses: ExpectedStatuses?
    let timeout: Duration
    let start: UInt64
    let deadline: UInt64
    /// The request's bytes when they are known before it starts (a bare GET of a cached URL),
    /// else nil: built from the parts above.
    let encoded: [UInt8]?
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
    package var bytesSent = 0
    package var bytesReceived = 0
    package var queued = false
    var staleRetries = 0
    var requeues = 0

    /// `execute`'s request, its fields copied.
    convenience init(request: borrowing HTTPRequest, timeout: Duration, start: UInt64) {
        self.init(method: request.method, endpoint: request.endpoint, headers: request.headers, body: request.body,
                  name: request.name, expecting: request.expectedStatuses, timeout: timeout, start: start)
    }

    /// A request built in place from its parts (see `HTTPClient.start`: no copy of the request).
    /// The client registers the credentials in its body (``RequestSecrets``) before it takes
    /// `start`, so a large body's scan is not timed as the request's.
    init(method: HTTPMethod, endpoint: Endpoint, headers: HTTPHeaders, body: [UInt8], name: String?,
         expecting: ExpectedStatuses?, timeout: Duration, start: UInt64, encoded: [UInt8]? = nil) {
        self.encoded = encoded
        self.method = method
        self.endpoint = endpoint
        self.headers = headers
        self.body = body
        self.name = name
        self.expectedStatuses = expecting
        self.timeout = timeout
        self.start = start
        self.deadline = start &+ timeout.nanoseconds
    }

    /// The time-out failure; blamed on the load generator if it ran out of descriptors meanwhile.
    var timeoutError: any Error {
        ResourcePressure.attribute(HTTPError.timeout(after: timeout, endpoint: endpoint.description), operationStart: start)
    }

    /// The time-out of a request that never got a connection: every one the capped pool may open
    /// stayed busy (the same kind and side as any time-out; the text says where the time went).
    func queueTimeoutError(connections: Int) -> any Error {
        let queued = HTTPQueueTimeout(timeout: .timeout(after: timeout, endpoint: endpoint.description),
                                      authority: endpoint.authority, connections: connections)
        return ResourcePressure.attribute(queued, operationStart: start)
    }

    /// The `http_<code>` failure for an answer outside the request's expected statuses (or the
    /// client's `expected`), nil for an expected one. Read in place: no copy of the request; the
    /// body is kept by reference for the failure's text.
    func statusFailure(_ response: HTTPResponse, expected: ExpectedStatuses) -> HTTPUnexpectedStatus? {
        let status = response.status
        let ok = expectedStatuses?.contains(status) ?? expected.contains(status)
        if ok { return nil }
        return HTTPUnexpectedStatus(code: status, method: method.rawValue, endpoint: endpoint.description,
                                    reason: response.reason, body: response.body)
    }

    /// Appends the request's wire form to `buffer`.
    func encode(into buffer: inout [UInt8]) {
        if let encoded { buffer.append(contentsOf: encoded); return }
        HTTPRequest.encode(method: method, endpoint: endpoint, headers: headers, body: body, into: &buffer)
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

    /// Cancelled with its task (``TaskCancellationScope``): fails with `CancellationError`.
    package func cancelOperation() { fail(CancellationError()) }

    func succeed(_ response: consuming HTTPResponse) {
        guard let k = take(nil) else { return }
        let now = monotonicNanos()
        response.timeToFirstByteNanos = firstByteAt >= sentAt && sentAt > 0 ? firstByteAt - sentAt : 0
        response.totalNanos = now &- start
        // k6's phases: blocked until the connect started (new connection) or the request was
        // written (reused one); then connect, TLS, send, wait for the first byte, receive.
        let began = connectStartAt > 0 ? connectStartAt : sentAt
        response.timings = HTTPTimings(blocked: began > start ? began - start : 0, connecting: connectNanos, tlsHandshaking: tlsNanos,
                                sending: writtenAt > sentAt ? writtenAt - sentAt : 0,
                                waiting: firstByteAt > writtenAt ? firstByteAt - writtenAt : 0,
                                receiving: now > firstByteAt && firstByteAt > 0 ? now - firstByteAt : 0)
        response.origin = self
        k.resume(returning: consume response)
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
        /// Never above the earliest deadline of a waiting request (`.max` when none waits): a
        /// sweep before it has nothing to expire and reads no waiter — with thousands queued
        /// behind a slow server, reading each one's deadline every 5 ms was a cache miss apiece.
        var earliestDeadline: UInt64 = .max
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
    package let label: String
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
            s.earliestDeadline = min(s.earliestDeadline, task.deadline)
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
            let failedHandshake = tls == nil ? nil : WireBytes()  // its bytes went on the wire too
            do {
                let address = try await SocketAddress.resolve(host: host, port: port)
                task.connectStartAt = monotonicNanos()
                let transport = try await TransportConnector.connect(to: address, from: source,
                                                          timeout: .nanoseconds(Int64(max(remaining, 1_000_000))),
                                                          tls: tls, failedHandshake: failedHandshake, on: loop)
                let tlsNanos = transport.tlsHandshakeNanos ?? 0
                let total = monotonicNanos() &- task.connectStartAt
                task.tlsNanos = tlsNanos
                task.connectNanos = total > tlsNanos ? total - tlsNanos : 0
                let conn = HTTPClientConnection(transport: transport, pool: self)
                loop.execute {
                    transport.start(delegate: conn)
                    conn.run(task)
                }
            } catch {
                connectionGone()
                if let failedHandshake {
                    task.bytesSent += failedHandshake.sent
                    task.bytesReceived += failedHandshake.received
                }
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
        let next = state.withLock { s -> PendingRequest? in
            if s.closed { return nil }
            // The clock only when requests wait (their deadlines), not on every release.
            let now = s.waitersHead < s.waiters.count ? monotonicNanos() : 0
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
        failQueued(expired)
        if let n = next { conn.run(n) } else if state.withLock({ $0.closed }) { conn.closeNow() }
    }

    /// Fails requests whose time-out passed while they waited for a connection.
    private func failQueued(_ expired: [PendingRequest]) {
        for e in expired { e.fail(e.queueTimeoutError(connections: configuration.maxConnectionsPerHost)) }
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
            s.earliestDeadline = .max
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
            // Read only when one may have expired; rebuilt only when one has (no copy of the
            // queue otherwise), and the bound made exact again either way.
            if now >= s.earliestDeadline, s.waitersHead < s.waiters.count {
                var earliest = UInt64.max
                for i in s.waitersHead..<s.waiters.count {
                    let d = s.waiters[i].deadline
                    if d > now { earliest = min(earliest, d) } else { expired.append(s.waiters[i]) }
                }
                if !expired.isEmpty {
                    s.waiters = s.waiters[s.waitersHead...].filter { $0.deadline > now }
                    s.waitersHead = 0
                }
                s.earliestDeadline = earliest
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
        failQueued(expired)
    }

    func shutdown() {
        let (idle, waiting, timer) = state.withLock { s -> ([HTTPClientConnection], [PendingRequest], LoopTimer?) in
            s.closed = true
            let i = s.idle
            s.idle.removeAll()
            let w = Array(s.waiters[s.waitersHead...])
            s.waiters.removeAll()
            s.waitersHead = 0
            s.earliestDeadline = .max
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
