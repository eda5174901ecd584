#if TLS
import Testing
import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport
import LoadKitFixtures

/// https, wss and STOMP over wss through TLS listeners with a test CA (trait `TLS` only).
@Suite struct TLSEndToEndTests {
    /// A wss server that echoes every message.
    static func wssEchoServer(_ certs: TLSTestCertificates) throws -> TCPListener {
        try TCPListener(tls: certs.serverConfiguration) { tcp in
            WebSocketServer.accept(tcp) { ws, _ in
                ws.setCallbacks(onMessage: { m in
                    switch m {
                    case .text(let t): ws.sendOnLoop(text: t)
                    case .binary(let b): ws.sendOnLoop(binary: b)
                    }
                }, onClose: { _ in })
            }
        }
    }

    /// An https server (presenting the main test certificate) behind a counting relay, and a
    /// client trusting `trust`'s CA.
    static func httpsBehindARelay(trusting trust: TLSTestCertificates) async throws -> (server: HTTPServer, relay: CountingRelay, client: HTTPClient) {
        let server = try HTTPServer(tls: try await TLSTestFixture.certificates().serverConfiguration) { req in .text("hello \(req.head.target)") }
        var config = HTTPClient.Configuration()
        config.tls = trust.clientConfiguration
        return (server, try CountingRelay(to: server.address), HTTPClient(configuration: config))
    }

    /// `data_sent` and `data_received` are what the relay carried each way.
    static func expectTheRelaysCount(_ m: MetricsSnapshot, _ seen: CountingRelay.Counts, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(m.counters["data_sent"] == Int64(seen.clientToServer), "the relay carried \(seen.clientToServer) bytes up",
                sourceLocation: sourceLocation)
        #expect(m.counters["data_received"] == Int64(seen.serverToClient), "the relay carried \(seen.serverToClient) bytes down",
                sourceLocation: sourceLocation)
    }

    @Test func httpsKeepAliveReusesOneTLSConnection() async throws {
        let certs = try await TLSTestFixture.certificates()
        let server = try HTTPServer(tls: certs.serverConfiguration) { req in .text("hello \(req.head.target)") }
        defer { server.stop() }
        var config = HTTPClient.Configuration()
        config.tls = certs.clientConfiguration.withALPN(TLSConfiguration.http1ALPN)
        config.maxConnectionsPerHost = 4
        let client = HTTPClient(configuration: config)
        defer { client.shutdown() }
        let url = "https://localhost:\(server.port)"
        for i in 0..<20 {
            let r = try await client.get("\(url)/item/\(i)", timeout: .seconds(5))
            #expect(r.status == 200)
            #expect(r.bodyString == "hello /item/\(i)")
        }
        // Sequential requests share one kept-alive TLS connection.
        #expect(client.connectionCount(for: url) == 1)
    }

    @Test func httpsRejectsAnUntrustedServer() async throws {
        let certs = try await TLSTestFixture.certificates()
        let other = try await TLSTestFixture.certificates("other")
        let server = try HTTPServer(tls: certs.serverConfiguration) { _ in .text("never") }
        defer { server.stop() }
        var config = HTTPClient.Configuration()
        config.tls = other.clientConfiguration
        let client = HTTPClient(configuration: config)
        defer { client.shutdown() }
        do {
            _ = try await client.get("https://localhost:\(server.port)/", timeout: .seconds(5))
            Issue.record("https with an untrusted certificate succeeded")
        } catch {
            #expect(error.loadKitKind == "tls_cert_untrusted")
            #expect(error.loadKitSource == .server)
        }
    }

    @Test func wssEcho() async throws {
        let certs = try await TLSTestFixture.certificates()
        let listener = try Self.wssEchoServer(certs)
        defer { listener.close() }
        let ws = try await WebSocketClient.connect("wss://localhost:\(listener.address.port)/echo", timeout: .seconds(5),
                                                   tls: certs.clientConfiguration)
        #expect((ws.tlsHandshakeNanos ?? 0) > 0)
        try await ws.send(text: "over wss")
        #expect(try await ws.receive() == .text("over wss"))
        let big = (0..<(256 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        try await ws.send(binary: big)
        #expect(try await ws.receive() == .binary(big), "256 KiB binary echo")
        await ws.close(code: 1000, reason: "done")
    }

    /// A wss handshake that fails with its request still queued counts in `data_sent` what a
    /// successful session counts — the bytes on the wire: the TLS handshake and the ciphertext of
    /// its request that left this process, not what was still queued. The peer completes TLS,
    /// then reads nothing until the client has given up (a 24 MiB header keeps most of the
    /// request queued); it then reads what reached it, which must be what the client counted, and
    /// decrypts less than the whole request.
    @Test func failedWssHandshakeCountsTheBytesThePeerRead() async throws {
        final class PlaintextCounter: ConnectionDelegate, @unchecked Sendable {
            let counts = Mutex((bytesIn: 0, closed: false))
            func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) { counts.withLock { $0.bytesIn += bytes.count } }
            func connection(_ c: any Transport, didCloseWith error: TransportError?) { counts.withLock { $0.closed = true } }
        }
        let certs = try await TLSTestFixture.certificates()
        let accepted = Mutex<[any Transport]>([])
        // No delegate yet: once its handshake is done the peer leaves the rest in the socket.
        let listener = try TCPListener(tls: certs.serverConfiguration) { tls in accepted.withLock { $0.append(tls) } }
        defer { listener.close() }
        let padding = String(repeating: "p", count: 24 << 20)
        let url = "wss://localhost:\(listener.address.port)/ws"
        let result = try await LoadTest("wss-unread-bytes", burst: 1).reports(false).progress(false).exclusive(false).run { _ in
            _ = try await WebSocketClient.connect(url, headers: [("X-Padding", padding)], timeout: .seconds(1), tls: certs.clientConfiguration)
        }
        let m = result.metrics
        #expect(m.errors["ws_handshake_timeout"]?.count == 1, "\(m.errors)")

        let peer = try #require(accepted.withLock { $0.first })
        let counter = PlaintextCounter()
        peer.start(delegate: counter)
        let deadline = monotonicNanos() + 20_000_000_000
        while !counter.counts.withLock({ $0.closed }) && monotonicNanos() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let read = counter.counts.withLock { $0 }
        #expect(read.closed, "the peer saw the client close")
        #expect(read.bytesIn > 0 && read.bytesIn < padding.utf8.count, "part of the request stayed queued: \(read.bytesIn) bytes read")
        // The peer's own count of its socket's bytes: the TLS layer's, beneath the plaintext.
        let wire = try #require((peer as? TLSTransport)?.wireBytes)
        #expect(wire.received > read.bytesIn)
        #expect(m.counters["data_sent"] == Int64(wire.received), "the peer read \(wire.received) bytes")
        #expect(m.counters["data_received"] == Int64(wire.sent), "only the peer's TLS handshake came back: \(wire.sent) bytes")
    }

    /// `data_sent` / `data_received` of an https run are the bytes on the wire, as k6 counts
    /// them: every TLS record (handshake, record headers and tags) as well as the HTTP bytes
    /// inside. A raw TCP relay between client and server counts them independently.
    @Test func httpsDataSentAndReceivedAreTheBytesOnTheWire() async throws {
        let (server, relay, client) = try await Self.httpsBehindARelay(trusting: try await TLSTestFixture.certificates())
        defer { server.stop(); client.shutdown() }
        let url = "https://localhost:\(relay.port)/item"
        // A count of requests, not a time: a timed hold made only 10 requests in CI's busy
        // parallel TLS run (three handshakes in a debug build beside the 24 MiB tests).
        let result = try await LoadTest("https-wire-bytes", burst: 3).reports(false).progress(false).exclusive(false)
            .run { _ in for _ in 0..<5 { try await client.get(url, timeout: .seconds(5)).requireStatus() } }
        let seen = await relay.settled()   // before the client closes its kept-alive connections
        let m = result.metrics
        let plaintext = server.statistics
        #expect(m.counters["http_reqs"] == 15 && m.errors.isEmpty, "\(m.counters["http_reqs"] ?? 0) requests, \(m.errors)")
        // Three users at once take up to three kept-alive connections (fewer if one finished first).
        #expect((1...3).contains(seen.connections), "\(seen.connections) connections")
        #expect(seen.clientToServer > plaintext.bytesReceived && seen.serverToClient > plaintext.bytesSent, "TLS adds bytes")
        Self.expectTheRelaysCount(m, seen)
    }

    /// The same for wss: the handshakes (TLS, then the upgrade) and every frame's records.
    @Test func wssDataSentAndReceivedAreTheBytesOnTheWire() async throws {
        let certs = try await TLSTestFixture.certificates()
        let listener = try Self.wssEchoServer(certs)
        defer { listener.close() }
        let relay = try CountingRelay(to: listener.address)
        let url = "wss://localhost:\(relay.port)/echo"
        let big = (0..<(100 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        // Kept open past the run: a closing handshake still in flight would race the count.
        let kept = Mutex<[WebSocketClient]>([])
        let result = try await LoadTest("wss-wire-bytes", burst: 2).reports(false).progress(false).exclusive(false).run { _ in
            let ws = try await WebSocketClient.connect(url, timeout: .seconds(5), tls: certs.clientConfiguration)
            kept.withLock { $0.append(ws) }
            for i in 0..<5 {
                try await ws.send(text: "message \(i)")
                _ = try await ws.receive(timeout: .seconds(5))
            }
            try await ws.send(binary: big)
            #expect(try await ws.receive(timeout: .seconds(5)) == .binary(big))
        }
        let seen = await relay.settled()
        let m = result.metrics
        #expect(m.counters["ws_msgs_received"] == 12 && m.errors.isEmpty, "\(m.errors)")
        #expect(seen.connections == 2)
        Self.expectTheRelaysCount(m, seen)
        for ws in kept.withLock({ $0 }) { await ws.close() }
    }

    /// A TLS handshake that fails (an untrusted certificate) put bytes on the wire all the same —
    /// the ClientHello and the client's alert up, the server's flight down — and they count, for
    /// https as for wss.
    @Test func aFailedTLSHandshakeCountsItsBytes() async throws {
        let other = try await TLSTestFixture.certificates("other")
        let (server, relay, client) = try await Self.httpsBehindARelay(trusting: other)
        defer { server.stop(); client.shutdown() }
        let result = try await LoadTest("tls-failed-bytes", burst: 2).reports(false).progress(false).exclusive(false).run { user in
            if user.index == 0 {
                _ = try await client.get("https://localhost:\(relay.port)/", timeout: .seconds(5))
            } else {
                _ = try await WebSocketClient.connect("wss://localhost:\(relay.port)/ws", timeout: .seconds(5), tls: other.clientConfiguration)
            }
        }
        let seen = await relay.settled()
        let m = result.metrics
        #expect(m.errors["tls_cert_untrusted"]?.count == 2, "\(m.errors)")
        #expect(seen.connections == 2 && seen.clientToServer > 0 && seen.serverToClient > 0)
        Self.expectTheRelaysCount(m, seen)
    }

    @Test func fixtureServesHTTPS() async throws {
        let certs = try await TLSTestFixture.certificates()
        var options = FixtureOptions()
        options.tls = certs.serverConfiguration
        let concert = try await ConcertFixture.start(options)
        #expect(concert.url.hasPrefix("https://"))
        var config = HTTPClient.Configuration()
        config.tls = certs.clientConfiguration
        let client = HTTPClient(configuration: config)
        defer { client.shutdown() }
        let r = try await client.get(concert.url + "/admin/totals", timeout: .seconds(5))
        #expect(r.status == 200)
        await concert.stop()
    }

    @Test func stompOverWSS() async throws {
        let certs = try await TLSTestFixture.certificates()
        let broker = try StompTestBroker(webSocket: true, tls: certs.serverConfiguration)
        defer { broker.close() }
        let url = "wss://localhost:\(broker.address.port)/stomp"
        let a = try await StompClient.connect(webSocket: url, connectHeaders: [("login", "u")], heartBeat: (.zero, .zero),
                                              timeout: .seconds(5), tls: certs.clientConfiguration)
        #expect((a.tlsHandshakeNanos ?? 0) > 0)
        let inbox = StompInbox()
        _ = try await a.subscribe(destination: "/topic/tls", receipt: true) { inbox.add($0) }
        for i in 0..<50 { a.send(destination: "/topic/tls", text: "m\(i)") }
        let got = await inbox.wait(for: 50)
        #expect(got == (0..<50).map { "m\($0)" })
        await a.disconnect()
        #expect(await a.waitClosed() == nil)
    }
}
#endif
