import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// TLS error classification and the trait-off behaviour (these run in every build).
@Suite struct TLSErrorTests {
    @Test func verifyResultsAreClassified() {
        #expect(TLSError.fromVerifyResult(10, reason: "certificate has expired", endpoint: "h:443").kind == "tls_cert_expired")
        #expect(TLSError.fromVerifyResult(9, reason: "certificate is not yet valid", endpoint: "h:443").kind == "tls_cert_expired")
        #expect(TLSError.fromVerifyResult(62, reason: "hostname mismatch", endpoint: "h:443").kind == "tls_name_mismatch")
        #expect(TLSError.fromVerifyResult(64, reason: "IP address mismatch", endpoint: "h:443").kind == "tls_name_mismatch")
        let untrusted = TLSError.fromVerifyResult(20, reason: "unable to get local issuer certificate", endpoint: "h:443")
        #expect(untrusted.kind == "tls_cert_untrusted")
        #expect(untrusted.source == .server)
        #expect(untrusted.description.contains("verify result 20"))
        #expect(TLSError.alert(code: 40, reason: "handshake failure", endpoint: "h:443").kind == "tls_alert_40")
        #expect(TransportError.tls(.protocolFailure(reason: "x", endpoint: "h")).kind == "tls_protocol")
        #expect(TransportError.tls(.unavailable("TLS")).source == .loadGenerator)
    }

    #if !TLS
    /// An `https` request without the TLS trait is counted with its whole request: its `name`
    /// tag and method reach the listener (the built-in metrics), not a bare method and URL.
    @Test func tlsUnavailableExchangeKeepsTheRequestsNameTag() async throws {
        final class Heard: ClientObserver, @unchecked Sendable {
            var exchanges: [HTTPExchange] = []
            func httpExchangeFinished(_ exchange: HTTPExchange) { exchanges.append(exchange) }
            func webSocketOpened(handshakeNanos: UInt64, tlsNanos: UInt64?, bytesSent: Int, bytesReceived: Int,
                                 countsOperation: Bool) -> (any WebSocketSessionObserver)? { nil }
            func webSocketFailed(_ error: any Error, endpoint: Endpoint, bytesSent: Int, bytesReceived: Int) {}
            func streamOpened() -> (any StreamTrafficObserver)? { nil }
            var cancellation: TaskCancellationScope? { nil }
        }
        let heard = Heard()
        let client = HTTPClient()
        await ClientObservation.$current.withValue(heard) {
            _ = try? await client.get("https://127.0.0.1/items/7", name: "/items/{id}")
        }
        #expect(heard.exchanges.count == 1)
        #expect(heard.exchanges.first?.name == "/items/{id}" && heard.exchanges.first?.label == "/items/{id}")
        #expect(heard.exchanges.first?.status == nil && heard.exchanges.first?.failure != nil)
    }

    @Test func tlsWithoutTheTraitFailsAtOnceWithInstructions() async throws {
        #expect(!tlsAvailable)
        let start = ContinuousClock.now
        do {
            // Port 9 (discard) on loopback: nothing is contacted, the call fails before connecting.
            _ = try await TransportConnector.connect(host: "127.0.0.1", port: 9, timeout: .seconds(5), tls: .client)
            Issue.record("a TLS connect succeeded without the TLS trait")
        } catch let TransportError.tls(e) {
            #expect(e.kind == "tls_unavailable")
            #expect(e.source == .loadGenerator)
            #expect(e.description.contains("swift test --traits TLS"))
            #expect(e.description.contains("traits: [\"TLS\"]"))
        }
        #expect(ContinuousClock.now - start < .milliseconds(500))
        #expect(throws: TransportError.self) { try TCPListener(tls: .server(certificateChainFile: "c", privateKeyFile: "k")) { _ in } }
        #expect(throws: TLSError.self) { try TLSConfiguration.requireAvailable(for: "https") }
    }
    #endif
}
