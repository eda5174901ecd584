import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
    /// connections and, on each, sends the request again as soon as the previous response is
    /// complete, until `duration` has passed.
    ///
    /// Built for throughput: the request is encoded once, and each share of the connections (one
    /// per loop of the client's group) is driven by its own thread blocking in `poll(2)`, reading
    /// responses into one buffer, parsing them with the client's ``HTTPResponseParser`` and writing
    /// the next request from the same iteration — no task, continuation, dispatch source or thread
    /// hop per request. (Driving the same exchange through the loops' dispatch sources costs about
    /// three extra system calls and a thread hand-off per response: `loadkit bench http --mode tasks`.)
    /// Connections are opened with ``TCPConnection`` (source addresses of the configuration apply).
    /// Use it for throughput tests and constant-concurrency load where every user repeats one
    /// request; scenario scripts use ``execute(_:timeout:)``.
    ///
    /// A connection whose exchange fails (closed, malformed response, no answer within `timeout`)
    /// counts the failure and is replaced by a new one, so a run always lasts `duration`.
    public func closedLoop(_ request: HTTPRequest, connections: Int, duration: Duration,
                           timeout: Duration? = nil) async throws -> HTTPClosedLoopResult {
        if request.endpoint.isTLS { throw HTTPError.tlsUnavailable(endpoint: request.endpoint.description) }
        let address = try await request.endpoint.resolve()
        var wire: [UInt8] = []
        var req = request
        for f in configuration.defaultHeaders where !req.headers.contains(f.name) { req.headers.add(f.name, f.value) }
        req.encode(into: &wire)
        let limit = (timeout ?? configuration.defaultTimeout).nanoseconds
        let n = max(1, connections)
        let shards = max(1, min(configuration.group.loops.count, n))
        let sources = configuration.sourceAddresses
        let config = configuration

        // Open every connection first (bounded by the request timeout), then start the clock.
        var opened: [[TCPConnection]] = Array(repeating: [], count: shards)
        var connectFailures: [String: Int] = [:]
        try await withThrowingTaskGroup(of: (Int, Result<TCPConnection, any Error>).self) { g in
            for i in 0..<n {
                let loop = config.group.loops[i % shards]
                let source = sources.isEmpty ? nil : sources[i % sources.count]
                g.addTask {
                    do {
                        return (i % shards, .success(try await TCPConnection.connect(to: address, from: source,
                                                                                 timeout: .nanoseconds(Int64(limit)), on: loop)))
                    } catch { return (i % shards, .failure(error)) }
                }
            }
            for try await (shard, r) in g {
                switch r {
                case .success(let c): opened[shard].append(c)
                case .failure(let e): connectFailures[(e as? any ClassifiedError)?.kind ?? "connect", default: 0] += 1
                }
            }
        }
        guard opened.contains(where: { !$0.isEmpty }) else {
            throw TransportError.from(errno: ECONNREFUSED, call: "connect", endpoint: request.endpoint.description)
        }
        let start = monotonicNanos()
        let end = start &+ duration.nanoseconds
        var total = HTTPClosedLoopResult()
        total.connectFailures = connectFailures
        await withTaskGroup(of: HTTPClosedLoopResult.self) { g in
            for (i, conns) in opened.enumerated() where !conns.isEmpty {
                let poller = ClosedLoopPoller(connections: conns, wire: wire, method: req.method, address: address,
                                              source: sources.isEmpty ? nil : sources[i % sources.count],
                                              loop: config.group.loops[i], configuration: config,
                                              timeoutNanos: limit, end: end)
                g.addTask { await poller.run() }
            }
            for await r in g { total.merge(r) }
        }
        total.elapsedSeconds = Double(monotonicNanos() &- start) / 1e9
        return total
    }
}

/// One thread driving a share of a closed-loop run's connections with `poll(2)`.
final class ClosedLoopPoller: @unchecked Sendable {
    private struct Conn {
        var tcp: TCPConnection?
        var parser: HTTPResponseParser
        var sentAt: UInt64 = 0
        var inFlight = false
        var unsent = 0          // bytes of the request still to write (partial send)
    }

    private let wire: [UInt8]
    private let method: HTTPMethod
    private let address: SocketAddress
    private let source: SocketAddress?
    private let loop: EventLoop
    private let configuration: HTTPClient.Configuration
    private let timeoutNanos: UInt64
    private let end: UInt64
    private var conns: [Conn] = []
    private var fds: [pollfd] = []
    private var result = HTTPClosedLoopResult()
    // Replacement connections opened off-thread, adopted by the poll thread.
    private let inbox = Mutex<[TCPConnection]>([])
    private let reconnectFailures = Mutex<[String: Int]>([:])

    init(connections: [TCPConnection], wire: [UInt8], method: HTTPMethod, address: SocketAddress, source: SocketAddress?,
         loop: EventLoop, configuration: HTTPClient.Configuration, timeoutNanos: UInt64, end: UInt64) {
        self.wire = wire
        self.method = method
        self.address = address
        self.source = source
        self.loop = loop
        self.configuration = configuration
        self.timeoutNanos = timeoutNanos
        self.end = end
        for c in connections {
            var parser = HTTPResponseParser(limits: configuration.headLimits, maxBodyBytes: configuration.maxResponseBodyBytes)
            parser.expectResponse(to: method)
            conns.append(Conn(tcp: c, parser: parser))
            fds.append(pollfd(fd: c.fd, events: Int16(POLLIN), revents: 0))
        }
    }

    /// Runs the exchange on a dedicated thread until the end time; returns this share's result.
    func run() async -> HTTPClosedLoopResult {
        await withCheckedContinuation { (cont: CheckedContinuation<HTTPClosedLoopResult, Never>) in
            let t = Thread { [self] in cont.resume(returning: loopUntilEnd()) }
            t.name = "loadkit.closed-loop"
            t.start()
        }
    }

    private func loopUntilEnd() -> HTTPClosedLoopResult {
        let bufferSize = 64 * 1024
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        for i in conns.indices { send(i, now: monotonicNanos()) }
        var lastSweep = monotonicNanos()
        while true {
            let now = monotonicNanos()
            if now >= end { break }
            adoptReplacements()
            let wait = Int32(min(50, (end - now) / 1_000_000 + 1))
            let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), wait) }
            if ready < 0 && errno != EINTR { break }
            if ready > 0 {
                var left = Int(ready)
                var i = 0
                while left > 0 && i < fds.count {
                    let ev = fds[i].revents
                    if ev != 0 {
                        left -= 1
                        fds[i].revents = 0
                        if ev & Int16(POLLOUT) != 0 { flush(i) }
                        if ev & Int16(POLLIN | POLLERR | POLLHUP) != 0 { readable(i, buffer) }
                    }
                    i += 1
                }
            }
            let t = monotonicNanos()
            if t &- lastSweep > 100_000_000 {
                lastSweep = t
                for i in conns.indices where conns[i].inFlight && t &- conns[i].sentAt > timeoutNanos { fail(i, "timeout") }
            }
        }
        for i in conns.indices { drop(i) }
        for c in inbox.withLock({ let a = $0; $0.removeAll(); return a }) { c.close() }
        for (k, v) in reconnectFailures.withLock({ $0 }) { result.connectFailures[k, default: 0] += v }
        return result
    }

    @inline(__always)
    private func send(_ i: Int, now: UInt64) {
        guard let tcp = conns[i].tcp else { return }
        conns[i].sentAt = now
        conns[i].inFlight = true
        let n = wire.withUnsafeBytes { systemSend(tcp.fd, $0.baseAddress, $0.count) }
        if n == wire.count { return }
        if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { fail(i, "connection_reset"); return }
        conns[i].unsent = wire.count - max(0, n)
        fds[i].events = Int16(POLLIN | POLLOUT)
    }

    private func flush(_ i: Int) {
        guard let tcp = conns[i].tcp, conns[i].unsent > 0 else { fds[i].events = Int16(POLLIN); return }
        let off = wire.count - conns[i].unsent
        let n = wire.withUnsafeBytes { systemSend(tcp.fd, $0.baseAddress! + off, conns[i].unsent) }
        if n > 0 { conns[i].unsent -= n }
        else if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { fail(i, "connection_reset"); return }
        if conns[i].unsent == 0 { fds[i].events = Int16(POLLIN) }
    }

    private func readable(_ i: Int, _ buffer: UnsafeMutableRawBufferPointer) {
        guard let tcp = conns[i].tcp else { return }
        while true {
            let n = read(tcp.fd, buffer.baseAddress, buffer.count)
            if n > 0 {
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                guard conns[i].inFlight else { fail(i, "http_malformed"); return }
                switch conns[i].parser.parse(bytes) {
                case .needMore:
                    break
                case .done(let response, let used):
                    let now = monotonicNanos()
                    conns[i].inFlight = false
                    result.responses += 1
                    result.statusCounts[response.status, default: 0] += 1
                    result.latency.record(Int64(truncatingIfNeeded: (now &- conns[i].sentAt &+ 500) / 1000))
                    if used != n || !response.head.keepAlive { drop(i); replace(i); return }
                    conns[i].parser.expectResponse(to: method)
                    if now < end { send(i, now: now) }
                case .failure(let e):
                    fail(i, e.kind)
                    return
                }
                if n < buffer.count { return }
                continue
            }
            if n == 0 {
                if conns[i].inFlight, case .done = conns[i].parser.finish() { result.responses += 1; conns[i].inFlight = false }
                fail(i, conns[i].inFlight ? "connection_closed" : nil)
                return
            }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return }
            fail(i, e == ECONNRESET ? "connection_reset" : "read_error")
            return
        }
    }

    /// Counts a failure (if any), closes the connection and opens a replacement.
    private func fail(_ i: Int, _ kind: String?) {
        if let kind { result.failures[kind, default: 0] += 1 }
        drop(i)
        replace(i)
    }

    private func drop(_ i: Int) {
        conns[i].inFlight = false
        conns[i].unsent = 0
        fds[i].fd = -1
        fds[i].events = Int16(POLLIN)
        conns[i].tcp?.close()
        conns[i].tcp = nil
    }

    private func replace(_ i: Int) {
        guard monotonicNanos() < end else { return }
        let address = address, source = source, loop = loop, timeout = timeoutNanos
        Task { [self] in
            do {
                let c = try await TCPConnection.connect(to: address, from: source, timeout: .nanoseconds(Int64(timeout)), on: loop)
                inbox.withLock { $0.append(c) }
            } catch {
                let kind = (error as? any ClassifiedError)?.kind ?? "connect"
                reconnectFailures.withLock { $0[kind, default: 0] += 1 }
            }
        }
    }

    private func adoptReplacements() {
        let fresh = inbox.withLock { i -> [TCPConnection] in
            if i.isEmpty { return [] }
            let a = i; i.removeAll(); return a
        }
        var k = 0
        for slot in conns.indices where conns[slot].tcp == nil && k < fresh.count {
            var parser = HTTPResponseParser(limits: configuration.headLimits, maxBodyBytes: configuration.maxResponseBodyBytes)
            parser.expectResponse(to: method)
            conns[slot] = Conn(tcp: fresh[k], parser: parser)
            fds[slot] = pollfd(fd: fresh[k].fd, events: Int16(POLLIN), revents: 0)
            k += 1
            send(slot, now: monotonicNanos())
        }
        while k < fresh.count { fresh[k].close(); k += 1 }
    }
}
