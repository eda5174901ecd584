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
    @Test func httpsKeepAliveReusesOneTLSConnection() async throws {
        let certs = try TLSTestFixture.certificates()
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
        let certs = try TLSTestFixture.certificates()
        let other = try TLSTestFixture.certificates("other")
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
        let certs = try TLSTestFixture.certificates()
        let listener = try TCPListener(tls: certs.serverConfiguration) { tcp in
            WebSocketServer.accept(tcp) { ws, _ in
                ws.setCallbacks(onMessage: { m in
                    switch m {
                    case .text(let t): ws.sendOnLoop(text: t)
                    case .binary(let b): ws.sendOnLoop(binary: b)
                    }
                }, onClose: { _ in })
            }
        }
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
    /// successful session counts — plaintext, the bytes of its request that left this process in
    /// whole TLS records — not plaintext less the ciphertext still queued (reviewer: the units were
    /// mixed). The peer completes TLS, then reads nothing until the client has given up (a 24 MiB
    /// header keeps most of the request queued); it then reads what reached it and counts the
    /// plaintext it could decrypt, which must be what the client counted.
    @Test func failedWssHandshakeCountsThePlaintextThePeerCouldRead() async throws {
        final class PlaintextCounter: ConnectionDelegate, @unchecked Sendable {
            let counts = Mutex((bytesIn: 0, closed: false))
            func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) { counts.withLock { $0.bytesIn += bytes.count } }
            func connection(_ c: any Transport, didCloseWith error: TransportError?) { counts.withLock { $0.closed = true } }
        }
        let certs = try TLSTestFixture.certificates()
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
        #expect(m.counters["data_sent"] == Int64(read.bytesIn), "the peer decrypted \(read.bytesIn) bytes")
        #expect(m.counters["data_received"] == nil, "nothing came back")
    }

    @Test func fixtureServesHTTPS() async throws {
        let certs = try TLSTestFixture.certificates()
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
        let certs = try TLSTestFixture.certificates()
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
