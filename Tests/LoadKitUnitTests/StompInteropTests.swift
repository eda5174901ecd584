import Testing
import Foundation
import Synchronization
@testable import LoadKit

/// Runs only against an independent broker named by `STOMP_INTEROP_TCP=host:port` (e.g. coilmq
/// from PyPI: `coilmq -b 127.0.0.1 -p 61613`, which wants the machine's FQDN as `host`; override
/// with `STOMP_INTEROP_VHOST`) and/or `STOMP_INTEROP_WS=ws://host:port/path`.
@Suite(.serialized)
struct StompInteropTests {
    static let env = ProcessInfo.processInfo.environment

    private func roundTrip(_ c: StompClient) async throws {
        let inbox = StompInbox()
        let topic = "/topic/loadkit-interop-\(UInt32.random(in: 0...UInt32.max))"
        _ = try await c.subscribe(destination: topic, receipt: true) { inbox.add($0) }
        try await c.send(destination: topic, body: Array("hello: interop\nline".utf8), contentType: "text/plain",
                         headers: [("x-escaped", "a:b\\c")], receipt: true)
        c.send(destination: topic, text: "second")
        #expect(await inbox.wait(for: 2) == ["hello: interop\nline", "second"])
        await c.disconnect()
        #expect(await c.waitClosed() == nil)
    }

    @Test(.enabled(if: env["STOMP_INTEROP_TCP"] != nil))
    func independentBrokerOverTCP() async throws {
        let parts = Self.env["STOMP_INTEROP_TCP"]!.split(separator: ":")
        let c = try await StompClient.connect(tcpHost: String(parts[0]), port: Int(parts[1])!, connectHeaders: [("login", "guest"), ("passcode", "guest")],
                                              vhost: Self.env["STOMP_INTEROP_VHOST"] ?? ProcessInfo.processInfo.hostName,
                                              heartBeat: (.seconds(1), .seconds(1)), timeout: .seconds(5))
        try await roundTrip(c)
    }

    @Test(.enabled(if: env["STOMP_INTEROP_WS"] != nil))
    func independentBrokerOverWebSocket() async throws {
        let c = try await StompClient.connect(webSocket: Self.env["STOMP_INTEROP_WS"]!, connectHeaders: [("login", "guest"), ("passcode", "guest")],
                                              heartBeat: (.seconds(1), .seconds(1)), timeout: .seconds(5))
        try await roundTrip(c)
    }

    /// Serves the test broker (server-role codec) on `STOMP_INTEROP_SERVE_PORT` for
    /// `STOMP_INTEROP_SERVE_SECONDS` (default 20) so an independent client (stomp.py) can be run
    /// against it; `STOMP_INTEROP_SERVE_WS=1` serves STOMP over WebSocket at `/stomp` instead.
    @Test(.enabled(if: env["STOMP_INTEROP_SERVE_PORT"] != nil))
    func serveForIndependentClients() async throws {
        let broker = try StompTestBroker(webSocket: Self.env["STOMP_INTEROP_SERVE_WS"] == "1",
                                         port: Int(Self.env["STOMP_INTEROP_SERVE_PORT"]!)!)
        defer { broker.close() }
        try await Task.sleep(for: .seconds(Int(Self.env["STOMP_INTEROP_SERVE_SECONDS"] ?? "") ?? 20))
    }
}
