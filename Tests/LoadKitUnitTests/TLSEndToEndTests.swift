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
