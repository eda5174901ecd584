import Synchronization

/// The outcome of ``HTTPClient/closedLoop(_:connections:duration:timeout:)``.
public struct HTTPClosedLoopResult: Sendable {
    /// Responses received (any status).
    public var responses: Int = 0
    /// Responses by status code.
    public var statusCounts: [Int: Int] = [:]
    /// Failed exchanges by error kind (`timeout`, `http_malformed`, `connection_reset`, …).
    public var failures: [String: Int] = [:]
    /// Request-to-response latency in microseconds (request written → response complete).
    public var latency = Histogram()
    /// Connections that could not be opened, by error kind.
    public var connectFailures: [String: Int] = [:]
    /// Seconds from the first request to the end of the run.
    public var elapsedSeconds: Double = 0

    /// Responses per second over the run.
    public var responsesPerSecond: Double { elapsedSeconds > 0 ? Double(responses) / elapsedSeconds : 0 }

    mutating func merge(_ o: HTTPClosedLoopResult) {
        responses += o.responses
        for (k, v) in o.statusCounts { statusCounts[k, default: 0] += v }
        for (k, v) in o.failures { failures[k, default: 0] += v }
        for (k, v) in o.connectFailures { connectFailures[k, default: 0] += v }
        latency.merge(o.latency)
    }
}

extension HTTPClient {
    /// Drives `request` in a closed loop, like `wrk -cN`: opens `connections` keep-alive
    /// connections on the client's loops and, on each, sends the request again as soon as the
    /// previous response is complete, until `duration` has passed.
    ///
    /// The exchange runs at loop level — the response parser's completion writes the next request
    /// from the same read callback — so a request costs no task, continuation or thread hop.
    /// Requests are encoded once. Use it for throughput tests and constant-concurrency load where
    /// every user repeats one request; scenario scripts use ``execute(_:timeout:)``.
    ///
    /// A connection whose exchange fails (closed, malformed response, no answer within `timeout`)
    /// counts the failure and reconnects, so a run always lasts `duration`.
    public func closedLoop(_ request: HTTPRequest, connections: Int, duration: Duration,
                           timeout: Duration? = nil) async throws -> HTTPClosedLoopResult {
        if request.endpoint.isTLS { throw HTTPError.tlsUnavailable(endpoint: request.endpoint.description) }
        let address = try await request.endpoint.resolve()
        var wire: [UInt8] = []
        var req = request
        for f in configuration.defaultHeaders where !req.headers.contains(f.name) { req.headers.add(f.name, f.value) }
        req.encode(into: &wire)
        let limit = (timeout ?? configuration.defaultTimeout).nanoseconds
        let run = ClosedLoopRun(request: req, wire: wire, address: address, configuration: configuration,
                                timeoutNanos: limit, sources: configuration.sourceAddresses)
        return try await run.start(connections: max(1, connections), duration: duration)
    }
}

/// One closed-loop run: its drivers and the merged result.
final class ClosedLoopRun: Sendable {
    let request: HTTPRequest
    let wire: [UInt8]
    let address: SocketAddress
    let configuration: HTTPClient.Configuration
    let timeoutNanos: UInt64
    let sources: [SocketAddress]
    private let state = Mutex<(result: HTTPClosedLoopResult, remaining: Int, cont: CheckedContinuation<HTTPClosedLoopResult, Never>?)>(
        (HTTPClosedLoopResult(), 0, nil))

    init(request: HTTPRequest, wire: [UInt8], address: SocketAddress, configuration: HTTPClient.Configuration,
         timeoutNanos: UInt64, sources: [SocketAddress]) {
        self.request = request
        self.wire = wire
        self.address = address
        self.configuration = configuration
        self.timeoutNanos = timeoutNanos
        self.sources = sources
    }

    func start(connections: Int, duration: Duration) async throws -> HTTPClosedLoopResult {
        let start = monotonicNanos()
        let end = start &+ duration.nanoseconds
        var result = await withCheckedContinuation { (cont: CheckedContinuation<HTTPClosedLoopResult, Never>) in
            state.withLock { $0.remaining = connections; $0.cont = cont }
            for i in 0..<connections {
                let loop = configuration.group.next()
                let source = sources.isEmpty ? nil : sources[i % sources.count]
                loop.execute { [self] in
                    ClosedLoopDriver(run: self, loop: loop, source: source, end: end).connect()
                }
            }
        }
        result.elapsedSeconds = Double(monotonicNanos() &- start) / 1e9
        return result
    }

    /// A driver finished (after `end`); the last one resumes the caller.
    func finished(_ r: HTTPClosedLoopResult) {
        let cont = state.withLock { s -> (CheckedContinuation<HTTPClosedLoopResult, Never>, HTTPClosedLoopResult)? in
            s.result.merge(r)
            s.remaining -= 1
            guard s.remaining == 0, let c = s.cont else { return nil }
            s.cont = nil
            return (c, s.result)
        }
        if let (c, r) = cont { c.resume(returning: r) }
    }
}

/// Drives one connection of a closed-loop run; confined to its loop.
final class ClosedLoopDriver: ConnectionDelegate, @unchecked Sendable {
    private let run: ClosedLoopRun
    private let loop: EventLoop
    private let source: SocketAddress?
    private let end: UInt64
    private var tcp: TCPConnection?
    private var parser: HTTPResponseParser
    private var result = HTTPClosedLoopResult()
    private var sentAt: UInt64 = 0
    private var inFlight = false
    private var done = false
    private var watchdog: LoopTimer?

    init(run: ClosedLoopRun, loop: EventLoop, source: SocketAddress?, end: UInt64) {
        self.run = run
        self.loop = loop
        self.source = source
        self.end = end
        parser = HTTPResponseParser(limits: run.configuration.headLimits, maxBodyBytes: run.configuration.maxResponseBodyBytes)
        parser.expectResponse(to: run.request.method)
    }

    /// Opens the connection (again after a failure) and sends the first request. On the loop.
    func connect() {
        guard monotonicNanos() < end else { finish(); return }
        let timeout = Duration.nanoseconds(Int64(min(run.timeoutNanos, UInt64(Int64.max))))
        let box = UncheckedSendable(self)
        Task {
            do {
                let c = try await TCPConnection.connect(to: run.address, from: source, timeout: timeout, on: loop)
                loop.execute { box.value.attach(c) }
            } catch {
                let kind = (error as? any ClassifiedError)?.kind ?? "connect"
                loop.execute {
                    let d = box.value
                    d.result.connectFailures[kind, default: 0] += 1
                    // Back off a little so a refusing server is not hammered in a tight loop.
                    d.loop.schedule(after: .milliseconds(10)) { d.connect() }
                }
            }
        }
    }

    private func attach(_ c: TCPConnection) {
        tcp = c
        parser = HTTPResponseParser(limits: run.configuration.headLimits, maxBodyBytes: run.configuration.maxResponseBodyBytes)
        parser.expectResponse(to: run.request.method)
        c.start(delegate: self)
        if watchdog == nil {
            // One coarse timer per connection (not per request) catches unanswered requests.
            let period = Duration.nanoseconds(Int64(max(10_000_000, min(run.timeoutNanos / 4, 1_000_000_000))))
            watchdog = loop.scheduleRepeating(every: period) { [weak self] in self?.checkDeadline() }
        }
        sendNext()
    }

    @inline(__always)
    private func sendNext() {
        guard let tcp, tcp.isOpen else { return }
        sentAt = monotonicNanos()
        guard sentAt < end else { finish(); return }
        inFlight = true
        run.wire.withUnsafeBytes { tcp.write(rawBytes: $0) }
    }

    func connection(_ connection: TCPConnection, didRead bytes: UnsafeRawBufferPointer) {
        guard inFlight else { fail("http_malformed", close: true); return }
        switch parser.parse(bytes) {
        case .needMore:
            return
        case .done(let response, let used):
            inFlight = false
            let now = monotonicNanos()
            result.responses += 1
            result.statusCounts[response.status, default: 0] += 1
            result.latency.record(Int64(truncatingIfNeeded: (now &- sentAt &+ 500) / 1000))
            if used != bytes.count || !response.head.keepAlive {
                // Extra bytes or a server closing: start over on a fresh connection.
                connection.close()
                return
            }
            parser.expectResponse(to: run.request.method)
            sendNext()
        case .failure(let e):
            fail(e.kind, close: true)
        }
    }

    func connection(_ connection: TCPConnection, didCloseWith error: TransportError?) {
        guard connection === tcp else { return }
        tcp = nil
        if inFlight {
            inFlight = false
            if case .done = parser.finish() { result.responses += 1 } else {
                result.failures[error?.kind ?? "connection_closed", default: 0] += 1
            }
        }
        if done { return }
        connect()
    }

    private func fail(_ kind: String, close: Bool) {
        inFlight = false
        result.failures[kind, default: 0] += 1
        if close { tcp?.close() }
    }

    private func checkDeadline() {
        let now = monotonicNanos()
        if inFlight, now &- sentAt > run.timeoutNanos { fail("timeout", close: true) }
        if !inFlight, tcp == nil, now >= end { finish() }
        if now >= end &+ run.timeoutNanos { finish() }
    }

    private func finish() {
        guard !done else { return }
        done = true
        watchdog?.cancel()
        watchdog = nil
        let c = tcp
        tcp = nil
        c?.close()
        run.finished(result)
    }
}
