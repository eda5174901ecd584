import Testing
import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// A raw TCP peer for tests: one exchange on a fresh connection (see ``RawPeerStream``).
enum RawPeer {
    /// Connects to `address`, sends `bytes`, and waits until `until` holds for everything received
    /// (or the connection closes); then closes.
    static func exchange(_ address: SocketAddress, send bytes: [UInt8], until: @escaping @Sendable ([UInt8]) -> Bool) async throws -> [UInt8] {
        let tcp = try await TCPConnection.connect(to: address, timeout: .seconds(5))
        let (got, _) = try await RawPeerStream.start(tcp, send: bytes, until: until)
        tcp.close()
        return got
    }
}

private func count(_ needle: String, in hay: [UInt8]) -> Int {
    String(decoding: hay, as: UTF8.self).components(separatedBy: needle).count - 1
}

@Suite(.serialized) struct HTTPClientServerTests {
    @Test func fiveThousandRequestsOverFewReusedConnections() async throws {
        let server = try HTTPServer { req in .text("echo \(req.path) \(req.body.count)") }
        defer { server.stop() }
        let client = HTTPClient(maxConnectionsPerHost: 4)
        defer { client.shutdown() }
        let base = "http://127.0.0.1:\(server.port)"
        let request = try HTTPRequest(method: .POST, url: base + "/load", body: Array("12345".utf8))
        // Half the users run on an event loop (the no-hop path), half on the global executor.
        let onLoop = EventLoopTaskExecutor(EventLoopGroup.shared.loops[0])
        let ok = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<8 {
                group.addTask(executorPreference: i % 2 == 0 ? onLoop : nil) {
                    var ok = 0
                    for _ in 0..<625 {
                        let r = try await client.execute(request, timeout: .seconds(5))
                        if r.status == 200 && r.bodyString == "echo /load 5" && r.totalNanos > 0 { ok += 1 }
                    }
                    return ok
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(ok == 5000)
        let open = client.connectionCount(for: base)
        #expect(open >= 1 && open <= 4)
    }

    /// A bare GET goes out as bytes cached per URL; one with headers of its own, or from a client
    /// with default headers, or another method, is built from its parts — each says what it says.
    @Test func bareGetsAndGetsWithHeadersSendWhatTheySay() async throws {
        let server = try HTTPServer { req in
            .text("\(req.method.rawValue) \(req.target) " + req.head.headers.fields.map { "\($0.name)=\($0.value)" }.joined(separator: ";"))
        }
        defer { server.stop() }
        let host = "127.0.0.1:\(server.port)"
        let url = "http://\(host)/items?page=2"
        let plain = HTTPClient()
        defer { plain.shutdown() }
        let first = try await plain.get(url)
        #expect(first.bodyString == "GET /items?page=2 Host=\(host)")
        #expect(first.timings.connecting > 0, "the first request opened the connection")
        // Handed straight to the idle keep-alive connection: it waited for nothing (exactly 0 ns;
        // before, the hand-over's few hundred ns were counted as `blocked`).
        let again = try await plain.get(url)
        #expect(again.bodyString == "GET /items?page=2 Host=\(host)")
        #expect(again.timings.blocked == 0 && again.timings.connecting == 0, "\(again.timings)")
        #expect(try await plain.get(url, headers: ["X-Trace": "7"]).bodyString == "GET /items?page=2 Host=\(host);X-Trace=7")
        // A URL a POST cached first: its GETs are built from their parts, the same bytes.
        let posted = "http://\(host)/posted"
        #expect(try await plain.post(posted, body: Array("x".utf8)).bodyString.hasPrefix("POST /posted Host=\(host);Content-Length=1"))
        #expect(try await plain.get(posted).bodyString == "GET /posted Host=\(host)")
        #expect(try await plain.get(url).bodyString == "GET /items?page=2 Host=\(host)")
        #expect(try await plain.send(.DELETE, url).bodyString == "DELETE /items?page=2 Host=\(host)")
        #expect(try await plain.get("http://\(host)/other").bodyString == "GET /other Host=\(host)")
        var c = HTTPClient.Configuration()
        c.defaultHeaders = ["Authorization": "Bearer t"]
        let withDefaults = HTTPClient(configuration: c)
        defer { withDefaults.shutdown() }
        #expect(try await withDefaults.get(url).bodyString == "GET /items?page=2 Host=\(host);Authorization=Bearer t")
        #expect(try await withDefaults.get(url).bodyString == "GET /items?page=2 Host=\(host);Authorization=Bearer t")
        // After a shutdown the client opens a new pool for the same URL, as before.
        plain.shutdown()
        #expect(try await plain.get(url).bodyString == "GET /items?page=2 Host=\(host)")
        #expect(plain.connectionCount(for: url) == 1)
    }

    @Test func chunkedResponsesHeadAndRouter() async throws {
        var router = Router()
        router.get("/rooms/{id}/big") { req in
            HTTPServerResponse(status: 200, body: Array(repeating: UInt8(ascii: "x"), count: 100_000), chunkSize: 777)
        }
        router.post("/rooms/{id}") { req in .json(["id": req.pathParameters["id"] ?? "", "q": req.query("q") ?? ""]) }
        let server = try HTTPServer(handler: router.handler)
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let base = "http://127.0.0.1:\(server.port)"
        let big = try await client.get(base + "/rooms/7/big").requireStatus()
        #expect(big.body.count == 100_000 && big.headers["Transfer-Encoding"] == "chunked")
        let head = try await client.send(.HEAD, base + "/rooms/7/big")
        #expect(head.status == 200 && head.body.isEmpty)
        let posted = try await client.post(base + "/rooms/a%20b?q=x+y", json: ["hello": "world"]).requireStatus()
        #expect(posted.jsonValue(at: "id") == "a b" && posted.jsonValue(at: "q") == "x y")
        let missing = try await client.get(base + "/nothing")
        #expect(missing.status == 404)
        #expect(throws: HTTPError.self) { try missing.requireStatus() }
        do { try missing.requireStatus() } catch { #expect(error.kind == "http_404" && error.description.contains("GET")) }
        let wrongMethod = try await client.send(.DELETE, base + "/rooms/1")
        #expect(wrongMethod.status == 405)
    }

    @Test func connectionCloseIsHonouredByBothSides() async throws {
        let server = try HTTPServer { req in
            HTTPServerResponse(status: 200, headers: req.path == "/close" ? ["Connection": "close"] : [:], body: Array("ok".utf8))
        }
        defer { server.stop() }
        let client = HTTPClient(maxConnectionsPerHost: 1)
        defer { client.shutdown() }
        let base = "http://127.0.0.1:\(server.port)"
        for i in 0..<20 {
            let r = try await client.get(base + (i % 2 == 0 ? "/close" : "/keep"))
            #expect(r.bodyString == "ok")
        }
        // A client asking for close gets the response and then the server's FIN.
        let raw = try await RawPeer.exchange(server.address, send: Array("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n".utf8),
                                             until: { _ in false })
        #expect(count("HTTP/1.1 200", in: raw) == 1 && count("Connection: close", in: raw) == 1)
    }

    @Test func pipelinedRequestsAnswerInOrder() async throws {
        let server = try HTTPServer { req in
            let n = Int(req.path.dropFirst()) ?? 0
            try? await Task.sleep(for: .milliseconds(30 - n * 10))  // later requests finish first
            return .text("r\(n)")
        }
        defer { server.stop() }
        let wire = Array("GET /0 HTTP/1.1\r\n\r\nGET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n".utf8)
        let raw = try await RawPeer.exchange(server.address, send: wire, until: { count("HTTP/1.1 200", in: $0) == 3 && $0.last == UInt8(ascii: "2") })
        let text = String(decoding: raw, as: UTF8.self)
        let order = ["r0", "r1", "r2"].map { text.range(of: $0)!.lowerBound }
        #expect(order == order.sorted())
    }

    @Test func expectContinueIsAnswered() async throws {
        let server = try HTTPServer { req in .text("got \(req.body.count)") }
        defer { server.stop() }
        let tcp = try await TCPConnection.connect(to: server.address, timeout: .seconds(5))
        defer { tcp.close() }
        let first = try await RawPeerStream.start(tcp, send: Array("POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n".utf8),
                                                  until: { String(decoding: $0, as: UTF8.self).hasSuffix("\r\n\r\n") })
        #expect(String(decoding: first.0, as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
        let rest = await first.1.send(Array("abc".utf8), until: { String(decoding: $0, as: UTF8.self).hasSuffix("got 3") })
        #expect(String(decoding: rest, as: UTF8.self).contains("HTTP/1.1 200 OK"))
    }

    @Test func serverRejectsMalformedAndOversizedRequests() async throws {
        var config = HTTPServer.Configuration()
        config.maxBodyBytes = 100
        config.headLimits = HTTPHeadLimits(maxHeadBytes: 1024, maxLines: 20)
        let server = try HTTPServer(configuration: config) { _ in .text("fine") }
        defer { server.stop() }
        let cases: [(String, String)] = [
            ("GARBAGE\r\n\r\n", "400"),
            ("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", "413"),
            ("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 2000) + "\r\n\r\n", "431"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "400"),
        ]
        for (input, status) in cases {
            let raw = try await RawPeer.exchange(server.address, send: Array(input.utf8), until: { _ in false })
            #expect(String(decoding: raw, as: UTF8.self).hasPrefix("HTTP/1.1 \(status) "), "for \(input.prefix(30))")
        }
    }

    @Test func upgradeHookHandsOverConnectionWithLeftoverBytes() async throws {
        let server = try HTTPServer(upgrade: { req in
            guard req.headers["Upgrade"] == "echo" else { return nil }
            return HTTPUpgrade(headers: ["Upgrade": "echo", "Connection": "Upgrade"]) { tcp, leftover in
                tcp.start(delegate: EchoDelegate())
                tcp.write(leftover)
            }
        }) { _ in .text("declined", status: 426) }
        defer { server.stop() }
        let wire = Array("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nabc".utf8)
        let raw = try await RawPeer.exchange(server.address, send: wire, until: { String(decoding: $0, as: UTF8.self).hasSuffix("\r\n\r\nabc") })
        let text = String(decoding: raw, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n") && text.contains("Upgrade: echo"))
        let declined = try await RawPeer.exchange(server.address, send: Array("GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: other\r\n\r\nGET /next HTTP/1.1\r\n\r\n".utf8),
                                                  until: { count("HTTP/1.1 426", in: $0) == 2 })
        #expect(count("declined", in: declined) == 2)
    }

    /// A server that answers every request after `stall`, and a client with one connection to it.
    private func stallingServerWithOneConnection(answeringAfter stall: Duration) throws -> (HTTPServer, HTTPClient) {
        let server = try HTTPServer { _ in
            try? await Task.sleep(for: stall)
            return .text("late")
        }
        return (server, HTTPClient(maxConnectionsPerHost: 1))
    }

    @Test func timeoutOnStallingServer() async throws {
        let (server, client) = try stallingServerWithOneConnection(answeringAfter: .seconds(3))
        defer { server.stop(); client.shutdown() }
        let url = "http://127.0.0.1:\(server.port)/"
        // Timed in a task on an event loop: the requests' failures resume it there, not on Swift's
        // shared pool, which parallel suites can hold (1.05 s seen for two 200/300 ms time-outs).
        let (results, took) = await Task(executorPreference: EventLoopGroup.shared.next()) {
            let started = ContinuousClock.now
            // The second request waits for the only connection, and gets a new one when the first's
            // time-out closes it: both time out on the wire.
            async let first = capture { try await client.get(url, timeout: .milliseconds(200)) }
            async let second = capture { try await client.get(url, timeout: .milliseconds(300)) }
            let results = [await first, await second]
            return (results, ContinuousClock.now - started)
        }.value
        for result in results {
            switch result {
            case .success: Issue.record("stalled request succeeded")
            case .failure(let e): #expect(e.loadKitKind == "timeout" && e.loadKitSource == .server)
            }
        }
        #expect(took < .seconds(1), "\(took)")
    }

    /// A request that times out before any connection took it says so: with a capped pool the
    /// time went in the client's queue while the server kept every connection busy.
    @Test func aRequestThatNeverGotAConnectionSaysSo() async throws {
        let (server, client) = try stallingServerWithOneConnection(answeringAfter: .seconds(2))
        defer { server.stop(); client.shutdown() }
        let url = "http://127.0.0.1:\(server.port)/slow?token=abc"
        let holder = Task(executorPreference: EventLoopGroup.shared.next()) {
            await capture { try await client.get(url, timeout: .seconds(1)) }
        }
        try await Task.sleep(for: .milliseconds(100))            // the holder has the only connection
        let waiter = await Task(executorPreference: EventLoopGroup.shared.next()) {
            await capture { try await client.get(url, timeout: .milliseconds(200)) }
        }.value
        guard case .failure(let e) = waiter else { Issue.record("the queued request succeeded"); return }
        #expect(e.loadKitKind == "timeout" && e.loadKitSource == .server)
        #expect("\(e)" == "HTTP request to http://127.0.0.1:\(server.port)/slow?… timed out after 200 ms waiting for a "
            + "connection: the client's 1 connection to 127.0.0.1:\(server.port) (maxConnectionsPerHost) stayed busy with earlier requests")
        guard case .failure(let held) = await holder.value else { Issue.record("the stalled request succeeded"); return }
        #expect("\(held)" == "HTTP request to http://127.0.0.1:\(server.port)/slow?… timed out after 1 s")
    }

    /// Queued requests expire on their own time-outs whatever waits ahead of them: a short one
    /// behind a long one fails when its time is up (the pool's sweep skips the queue until the
    /// earliest deadline, so that bound must follow every request that joins), and so does the
    /// next short one after the first expired; the long one keeps waiting.
    @Test func queuedRequestsExpireOnTheirOwnTimeouts() async throws {
        let (server, client) = try stallingServerWithOneConnection(answeringAfter: .seconds(5))
        defer { server.stop(); client.shutdown() }
        let url = "http://127.0.0.1:\(server.port)/slow"
        let loop = EventLoopGroup.shared.next()
        let holder = Task(executorPreference: loop) { await capture { try await client.get(url, timeout: .seconds(4)) } }
        try await Task.sleep(for: .milliseconds(100))            // the holder has the only connection
        let longDone = Counter()
        let long = Task(executorPreference: loop) {
            defer { longDone.increment() }
            return await capture { try await client.get(url, timeout: .seconds(10)) }
        }
        try await Task.sleep(for: .milliseconds(50))             // the long one queues first
        for round in 1...2 {
            let (short, took) = await Task(executorPreference: loop) {
                let started = ContinuousClock.now
                let r = await capture { try await client.get(url, timeout: .milliseconds(250)) }
                return (r, ContinuousClock.now - started)
            }.value
            guard case .failure(let e) = short else { Issue.record("round \(round): the short request succeeded"); continue }
            #expect("\(e)".contains("timed out after 250 ms waiting for a connection"), "round \(round): \(e)")
            #expect(took < .seconds(2), "round \(round): \(took)")
            #expect(longDone.value == 0, "round \(round): the long request ended with the short one")
        }
        client.shutdown()
        guard case .failure = await long.value else { Issue.record("the long request succeeded"); return }
        _ = await holder.value
    }

    @Test func cancellationEndsAPendingRequestAtOnce() async throws {
        let (server, client) = try stallingServerWithOneConnection(answeringAfter: .seconds(2))
        defer { server.stop(); client.shutdown() }
        let url = "http://127.0.0.1:\(server.port)/"
        let started = ContinuousClock.now
        let inFlight = Task { try await client.get(url, timeout: .seconds(10)) }
        let queued = Task { try await client.get(url, timeout: .seconds(10)) }  // waits for the only connection
        try await Task.sleep(for: .milliseconds(100))
        inFlight.cancel()
        queued.cancel()
        for t in [inFlight, queued] {
            do { _ = try await t.value; Issue.record("cancelled request succeeded") } catch {
                #expect(error is CancellationError && error.loadKitKind == "cancelled")
            }
        }
        #expect(ContinuousClock.now - started < .seconds(1))
    }

    @Test func responseSizeLimit() async throws {
        let server = try HTTPServer { _ in HTTPServerResponse(body: Array(repeating: 1, count: 5000)) }
        defer { server.stop() }
        var config = HTTPClient.Configuration()
        config.maxResponseBodyBytes = 1000
        let client = HTTPClient(configuration: config)
        defer { client.shutdown() }
        await #expect(throws: HTTPError.bodyTooLarge(limit: 1000)) { try await client.get("http://127.0.0.1:\(server.port)/") }
    }

    @Test func refusedPortAndTLSAndBadURLAreClassified() async throws {
        let closed = try ClosedPort()
        let port = closed.port
        let client = HTTPClient()
        defer { client.shutdown() }
        do {
            _ = try await client.get("http://127.0.0.1:\(port)/", timeout: .seconds(2))
            Issue.record("refused port answered")
        } catch {
            #expect(error.loadKitKind == "refused" && error.loadKitSource == .server)
        }
        withExtendedLifetime(closed) {}
        #if !TLS  // with the TLS trait, https connects (TLSEndToEndTests)
        await #expect(throws: HTTPError.tlsUnavailable(endpoint: "https://127.0.0.1/")) { try await client.get("https://127.0.0.1/") }
        #endif
        do { _ = try await client.get("nope://x") } catch { #expect(error.loadKitKind == "bad_url") }
    }

    @Test func garbageServerIsMalformed() async throws {
        let listener = try TCPListener { tcp in
            tcp.start(delegate: ReplyOnce(reply: Array("SSH-2.0-OpenSSH\r\n\r\n".utf8), closeAfter: false))
        }
        defer { listener.close() }
        let client = HTTPClient()
        defer { client.shutdown() }
        do {
            _ = try await client.get("http://127.0.0.1:\(listener.address.port)/", timeout: .seconds(2))
            Issue.record("garbage accepted")
        } catch {
            #expect(error.loadKitKind == "http_malformed" && error.loadKitSource == .server)
        }
    }

    @Test func staleKeepAliveRetriesOnlyIdempotentRequests() async throws {
        // Answers the first request of each connection, then closes on the second without a byte.
        let accepted = Counter()
        let listener = try TCPListener { tcp in
            accepted.increment()
            tcp.start(delegate: ReplyOnce(reply: Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8), closeAfter: true))
        }
        defer { listener.close() }
        let client = HTTPClient(maxConnectionsPerHost: 1)
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(listener.address.port)/"
        #expect(try await client.get(url).bodyString == "ok")
        #expect(try await client.get(url).bodyString == "ok")  // stale connection, retried once
        #expect(accepted.value == 2)
        do {
            _ = try await client.post(url, body: [1])
            Issue.record("non-idempotent request was retried")
        } catch {
            #expect(error.loadKitKind == "closed_by_peer" || error.loadKitKind == "reset")
        }
    }

    @Test func sourceAddressesAreUsedRoundRobin() async throws {
        let seen = Seen()
        let server = try HTTPServer(host: "127.0.0.1") { req in
            seen.insert(req.remoteAddress?.host ?? "?")
            return .text("ok")
        }
        defer { server.stop() }
        let client = HTTPClient(maxConnectionsPerHost: 4, sourceAddresses: [SocketAddress(ip: "127.0.0.2", port: 0)!, SocketAddress(ip: "127.0.0.3", port: 0)!])
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(server.port)/"
        // One connection per request (`Connection: close`), so the test does not depend on
        // requests overlapping: each new connection takes the next source address.
        var close = HTTPHeaders()
        close.add("Connection", "close")
        for _ in 0..<4 { _ = try await client.get(url, headers: close).requireStatus() }
        #expect(seen.all.isSuperset(of: ["127.0.0.2", "127.0.0.3"]))
    }
}

/// Replies once per connection to the first bytes; on later input either closes or stays silent.
final class ReplyOnce: ConnectionDelegate, @unchecked Sendable {
    let reply: [UInt8]
    let closeAfter: Bool
    var replied = false
    init(reply: [UInt8], closeAfter: Bool) { self.reply = reply; self.closeAfter = closeAfter }
    func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        if !replied { replied = true; c.write(reply) } else if closeAfter { c.close() }
    }
    func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
}

private func capture<T>(_ body: @Sendable () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}

final class Counter: Sendable {
    private let v = Atomic<Int>(0)
    func increment() { v.add(1, ordering: .relaxed) }
    var value: Int { v.load(ordering: .relaxed) }
}

final class Seen: Sendable {
    private let s = Mutex<Set<String>>([])
    func insert(_ x: String) { s.withLock { _ = $0.insert(x) } }
    var all: Set<String> { s.withLock { $0 } }
}

/// A raw TCP peer kept open across several exchanges: collects bytes until a predicate holds or
/// the connection closes.
final class RawPeerStream: ConnectionDelegate, @unchecked Sendable {
    let tcp: any Transport
    private var data: [UInt8] = []
    private var waiter: (until: ([UInt8]) -> Bool, cont: CheckedContinuation<[UInt8], Never>)?
    private var closed = false
    init(_ tcp: any Transport) { self.tcp = tcp }

    static func start(_ tcp: any Transport, send bytes: [UInt8], until: @escaping @Sendable ([UInt8]) -> Bool) async throws -> ([UInt8], RawPeerStream) {
        let s = RawPeerStream(tcp)
        let got = await s.send(bytes, until: until, starting: true)
        return (got, s)
    }

    func send(_ bytes: [UInt8], until: @escaping @Sendable ([UInt8]) -> Bool, starting: Bool = false) async -> [UInt8] {
        await withCheckedContinuation { (k: CheckedContinuation<[UInt8], Never>) in
            tcp.loop.execute { [self] in
                data = []
                waiter = (until, k)
                if starting { tcp.start(delegate: self) }
                tcp.write(bytes)
            }
        }
    }
    func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) { data.append(contentsOf: bytes); check() }
    func connection(_ c: any Transport, didCloseWith error: TransportError?) { closed = true; check() }
    private func check() {
        guard let w = waiter, closed || w.until(data) else { return }
        waiter = nil
        w.cont.resume(returning: data)
    }
}
