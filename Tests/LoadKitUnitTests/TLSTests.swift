#if TLS
import Testing
import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Certificates made once per test process with the `openssl` CLI (a CA and a server certificate
/// for localhost and 127.0.0.1; a second, unrelated CA; an expired server certificate).
enum TLSTestFixture {
    private static let made = Mutex<[String: Task<TLSTestCertificates, any Error>]>([:])

    /// Made on a thread of their own and awaited: the `openssl` runs take seconds, and waiting for
    /// them on Swift's shared pool (two threads here) held up every other test's timing.
    static func certificates(_ name: String = "main", validDays: Int = 2) async throws -> TLSTestCertificates {
        let making = made.withLock { m in
            if let t = m[name] { return t }
            let t = Task<TLSTestCertificates, any Error> {
                try await withCheckedThrowingContinuation { k in
                    Thread {
                        k.resume(with: Result { try TLSTestCertificates.generate(validDays: validDays, commonName: "LoadKit \(name) CA") })
                    }.start()
                }
            }
            m[name] = t
            return t
        }
        do {
            return try await making.value
        } catch {
            made.withLock { if $0[name] == making { $0[name] = nil } }  // the next test tries again
            throw error
        }
    }

    /// A TLS echo listener on `host` presenting `certs`; the accepted connections are recorded.
    static func echoListener(_ certs: TLSTestCertificates, host: String = "127.0.0.1",
                             alpn: [String] = [], maxVersion: TLSConfiguration.Version = .tls13,
                             accepted: ServerSide? = nil) throws -> TCPListener {
        var config = certs.serverConfiguration.withALPN(alpn)
        config.maximumVersion = maxVersion
        return try TCPListener(host: host, tls: config) { conn in
            let d = ServerEcho()
            accepted?.add(conn, d)
            conn.start(delegate: d)
        }
    }
}

/// Echoes plaintext back and remembers how it was closed.
final class ServerEcho: ConnectionDelegate, @unchecked Sendable {
    let closed = Mutex<(done: Bool, error: TransportError?)>((false, nil))
    func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) { c.write(rawBytes: bytes) }
    func connection(_ c: any Transport, didCloseWith error: TransportError?) {
        closed.withLock { $0 = (true, error) }
    }
}

/// The server side of accepted connections, for assertions.
final class ServerSide: Sendable {
    let items = Mutex<[(any Transport, ServerEcho)]>([])
    func add(_ c: any Transport, _ d: ServerEcho) { items.withLock { $0.append((c, d)) } }
    var first: (any Transport, ServerEcho)? { items.withLock { $0.first } }

    /// Waits (bounded) until the first server connection saw its close.
    func waitClosed(timeout: Duration = .seconds(5)) async -> TransportError?? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let (_, d) = first, case let (true, e) = d.closed.withLock({ $0 }) { return .some(e) }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }
}

/// Sends `payload` and collects the same number of bytes back.
func tlsEcho(_ conn: any Transport, _ payload: [UInt8]) async throws -> [UInt8] {
    let collector = Collector(expected: payload.count)
    return try await withCheckedThrowingContinuation { k in
        conn.loop.execute {
            collector.cont = k
            conn.start(delegate: collector)
            conn.write(payload)
        }
    }
}

/// Expects `body` to fail with a TLS error of `kind` and returns it.
func expectTLSFailure(_ kind: String, _ body: () async throws -> any Transport) async -> TLSError? {
    do {
        let c = try await body()
        c.close()
        Issue.record("expected \(kind), but the handshake succeeded")
        return nil
    } catch let TransportError.tls(e) {
        #expect(e.kind == kind, "\(e)")
        return e
    } catch {
        Issue.record("expected \(kind), got \(error)")
        return nil
    }
}

@Suite struct TLSTests {
    @Test func verifiedHandshakeAgainstCustomCAByName() async throws {
        let certs = try await TLSTestFixture.certificates()
        let listener = try TLSTestFixture.echoListener(certs)
        defer { listener.close() }
        #expect(tlsAvailable)
        let conn = try await TransportConnector.connect(host: "localhost", port: listener.address.port,
                                                   timeout: .seconds(5), tls: certs.clientConfiguration)
        defer { conn.close() }
        #expect(conn.isTLS)
        #expect(conn.tlsVersion == "TLSv1.3")
        #expect((conn.tlsHandshakeNanos ?? 0) > 0)
        let reply = try await tlsEcho(conn, Array("hello over TLS\n".utf8))
        #expect(reply == Array("hello over TLS\n".utf8))
    }

    @Test func verifiedHandshakeByIPAddress() async throws {
        let certs = try await TLSTestFixture.certificates()
        let listener = try TLSTestFixture.echoListener(certs)
        defer { listener.close() }
        // No server name: the certificate's IP entry (127.0.0.1) is checked, and no SNI is sent.
        let conn = try await TransportConnector.connect(to: listener.address, timeout: .seconds(5),
                                                   tls: certs.clientConfiguration)
        defer { conn.close() }
        #expect(try await tlsEcho(conn, [1, 2, 3]) == [1, 2, 3])
    }

    @Test func wrongCAIsRejectedAsUntrusted() async throws {
        let certs = try await TLSTestFixture.certificates()
        let other = try await TLSTestFixture.certificates("other")
        let server = ServerSide()
        let listener = try TLSTestFixture.echoListener(certs, accepted: server)
        defer { listener.close() }
        let e = await expectTLSFailure("tls_cert_untrusted") {
            try await TransportConnector.connect(host: "localhost", port: listener.address.port,
                                            timeout: .seconds(5), tls: other.clientConfiguration)
        }
        #expect(e?.source == .server)
        #expect(e?.description.contains("verify result") == true)
        // The client tells the server why: alert 48 (unknown_ca).
        let serverClose = await server.waitClosed()
        #expect(serverClose??.kind == "tls_alert_48")
    }

    @Test func hostNameMismatchIsRejected() async throws {
        let certs = try await TLSTestFixture.certificates()
        let listener = try TLSTestFixture.echoListener(certs)
        defer { listener.close() }
        let e = await expectTLSFailure("tls_name_mismatch") {
            try await TransportConnector.connect(to: listener.address, timeout: .seconds(5),
                                            tls: certs.clientConfiguration.withServerName("wrong.example"))
        }
        #expect(e?.description.contains("verify result 62") == true)
    }

    @Test func ipAddressMismatchIsRejected() async throws {
        let certs = try await TLSTestFixture.certificates()
        // The certificate names 127.0.0.1, not 127.0.0.2.
        let listener = try TLSTestFixture.echoListener(certs, host: "127.0.0.2")
        defer { listener.close() }
        let e = await expectTLSFailure("tls_name_mismatch") {
            try await TransportConnector.connect(to: listener.address, timeout: .seconds(5), tls: certs.clientConfiguration)
        }
        #expect(e?.description.contains("verify result 64") == true)
    }

    @Test func expiredCertificateIsRejected() async throws {
        let expired = try await TLSTestFixture.certificates("expired", validDays: -1)
        let listener = try TLSTestFixture.echoListener(expired)
        defer { listener.close() }
        _ = await expectTLSFailure("tls_cert_expired") {
            try await TransportConnector.connect(to: listener.address, timeout: .seconds(5), tls: expired.clientConfiguration)
        }
    }

    @Test func systemStoreDoesNotTrustATestCA() async throws {
        let certs = try await TLSTestFixture.certificates()
        let listener = try TLSTestFixture.echoListener(certs)
        defer { listener.close() }
        _ = await expectTLSFailure("tls_cert_untrusted") {
            try await TransportConnector.connect(to: listener.address, timeout: .seconds(5), tls: .client)
        }
    }

    @Test func insecureNoVerificationAcceptsAnyCertificate() async throws {
        let certs = try await TLSTestFixture.certificates()
        let listener = try TLSTestFixture.echoListener(certs)
        defer { listener.close() }
        let conn = try await TransportConnector.connect(to: listener.address, timeout: .seconds(5),
                                                   tls: TLSConfiguration.insecureNoVerification.withServerName("wrong.example"))
        defer { conn.close() }
        #expect(try await tlsEcho(conn, [42]) == [42])
    }

    @Test func echoOneMebibyte() async throws {
        let certs = try await TLSTestFixture.certificates()
        let listener = try TLSTestFixture.echoListener(certs)
        defer { listener.close() }
        let conn = try await TransportConnector.connect(host: "localhost", port: listener.address.port,
                                                   timeout: .seconds(5), tls: certs.clientConfiguration)
        defer { conn.close() }
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 11)) }
        let got = try await tlsEcho(conn, payload)
        #expect(got.count == payload.count)
        #expect(got == payload, "echoed bytes differ")
        // After the burst, the memory BIOs gave their grown buffers back (idle footprint stays small).
        let caps: (read: Int, write: Int) = await withCheckedContinuation { k in
            conn.loop.execute { k.resume(returning: (conn as! TLSTransport).session.bioCapacities) }
        }
        #expect(caps.read <= 4096 && caps.write <= 4096, "BIO buffers kept: \(caps)")
    }

    @Test func alpnAndTLS12() async throws {
        let certs = try await TLSTestFixture.certificates()
        let listener = try TLSTestFixture.echoListener(certs, alpn: TLSConfiguration.http1ALPN, maxVersion: .tls12)
        defer { listener.close() }
        let conn = try await TransportConnector.connect(
            host: "localhost", port: listener.address.port, timeout: .seconds(5),
            tls: certs.clientConfiguration.withALPN(["h2", "http/1.1"]))
        defer { conn.close() }
        #expect(conn.tlsNegotiatedALPN == "http/1.1")
        #expect(conn.tlsVersion == "TLSv1.2")
        #expect(try await tlsEcho(conn, [7, 8]) == [7, 8])
    }

    @Test func tooOldVersionIsAProtocolAlert() async throws {
        let certs = try await TLSTestFixture.certificates()
        let listener = try TLSTestFixture.echoListener(certs, maxVersion: .tls12)
        defer { listener.close() }
        var config = certs.clientConfiguration
        config.minimumVersion = .tls13
        do {
            let c = try await TransportConnector.connect(to: listener.address, timeout: .seconds(5), tls: config)
            c.close()
            Issue.record("a TLS 1.3-only client agreed with a TLS 1.2-only server")
        } catch let TransportError.tls(e) {
            // The server answers protocol_version (70).
            #expect(e.kind == "tls_alert_70", "\(e)")
            #expect(e.source == .server)
        }
    }

    @Test func closeSendsCloseNotify() async throws {
        let certs = try await TLSTestFixture.certificates()
        let server = ServerSide()
        let listener = try TLSTestFixture.echoListener(certs, accepted: server)
        defer { listener.close() }
        let conn = try await TransportConnector.connect(to: listener.address, timeout: .seconds(5), tls: certs.clientConfiguration)
        #expect(try await tlsEcho(conn, [9]) == [9])
        let start = ContinuousClock.now
        conn.close()
        await conn.waitClosed()
        #expect(ContinuousClock.now - start < .seconds(1))
        let serverClose = await server.waitClosed()
        #expect(serverClose??.kind == "closed_by_peer")
        // The server saw a TLS close_notify, not just a FIN.
        let notified: Bool = await withCheckedContinuation { k in
            guard let (sc, _) = server.first else { k.resume(returning: false); return }
            sc.loop.execute { k.resume(returning: (sc as? TLSTransport)?.session.receivedCloseNotify ?? false) }
        }
        #expect(notified)
    }

    @Test func serverWritesBeforeHandshakeEndAreDelivered() async throws {
        let certs = try await TLSTestFixture.certificates()
        let listener = try TCPListener(tls: certs.serverConfiguration) { conn in
            conn.start(delegate: ServerEcho())
            conn.write(Array("greeting\n".utf8))  // before the handshake finished
        }
        defer { listener.close() }
        let conn = try await TransportConnector.connect(to: listener.address, timeout: .seconds(5), tls: certs.clientConfiguration)
        defer { conn.close() }
        let collector = Collector(expected: 9)
        let got: [UInt8] = try await withCheckedThrowingContinuation { k in
            conn.loop.execute { collector.cont = k; conn.start(delegate: collector) }
        }
        #expect(got == Array("greeting\n".utf8))
    }

    @Test func dataAndCloseBeforeStartAreNotLost() async throws {
        let certs = try await TLSTestFixture.certificates()
        // Echoes the first message, then closes (close_notify + FIN).
        final class EchoThenClose: ConnectionDelegate, @unchecked Sendable {
            func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) { c.write(rawBytes: bytes); c.close() }
            func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
        }
        let listener = try TCPListener(tls: certs.serverConfiguration) { $0.start(delegate: EchoThenClose()) }
        defer { listener.close() }
        let conn = try await TransportConnector.connect(to: listener.address, timeout: .seconds(5), tls: certs.clientConfiguration)
        conn.loop.execute { conn.write(Array("ping".utf8)) }  // no delegate yet (writes belong on the loop)
        try await Task.sleep(for: .milliseconds(100))  // the reply and the close arrive meanwhile
        let collector = Collector(expected: 4)
        final class Holder: @unchecked Sendable { var timer: LoopTimer? }
        let holder = Holder()
        defer { conn.loop.execute { holder.timer?.cancel() } }
        let got: [UInt8] = try await withCheckedThrowingContinuation { k in
            conn.loop.execute {
                collector.cont = k
                conn.start(delegate: collector)
                // Bounded: fail instead of hanging if the reply was lost.
                holder.timer = conn.loop.schedule(after: .seconds(3)) {
                    if let k = collector.cont { collector.cont = nil; k.resume(throwing: TransportError.timedOut(endpoint: "test", operation: "read")) }
                }
            }
        }
        #expect(got == Array("ping".utf8))
        await conn.waitClosed()
        #expect(collector.closeError?.kind == "closed_by_peer")
    }

    @Test func writingBytesFromTheLoopBufferIsSafe() async throws {
        // A plain connection's read forwarded to a TLS connection: the plaintext lies in the loop's
        // read buffer, which the TLS layer also uses for outgoing ciphertext.
        let certs = try await TLSTestFixture.certificates()
        let listener = try TLSTestFixture.echoListener(certs)
        defer { listener.close() }
        let conn = try await TransportConnector.connect(to: listener.address, timeout: .seconds(5), tls: certs.clientConfiguration)
        defer { conn.close() }
        let count = 60 * 1024
        let expected = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let collector = Collector(expected: count)
        let got: [UInt8] = try await withCheckedThrowingContinuation { k in
            conn.loop.execute {
                collector.cont = k
                conn.start(delegate: collector)
                let buf = conn.loop.readBuffer
                let region = UnsafeMutableRawBufferPointer(rebasing: buf[(buf.count - count)...])
                expected.withUnsafeBytes { region.copyMemory(from: $0) }
                conn.write(rawBytes: UnsafeRawBufferPointer(region))
            }
        }
        #expect(got.count == expected.count && got == expected, "forwarded bytes differ")
    }

    /// A peer that reads the ClientHello and hangs up (FIN) is a TLS protocol failure naming the
    /// handshake, not a plain "closed by peer" — the TLS layer (not TCP) says so since the seam.
    @Test func aPeerThatHangsUpDuringTheHandshakeIsATLSProtocolFailure() async throws {
        final class HangUp: ConnectionDelegate, @unchecked Sendable {
            func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) { c.shutdownOutput() }
            func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
        }
        let listener = try TCPListener(host: "127.0.0.1") { $0.start(delegate: HangUp()) }
        defer { listener.close() }
        let e = await expectTLSFailure("tls_protocol") {
            try await TransportConnector.connect(to: listener.address, timeout: .seconds(5), tls: .insecureNoVerification)
        }
        #expect("\(String(describing: e))".contains("during the TLS handshake"), "\(String(describing: e))")
    }

    @Test func badCAFileFailsAtOnceAsConfiguration() async throws {
        do {
            _ = try await TransportConnector.connect(host: "127.0.0.1", port: 9, timeout: .seconds(2),
                                                tls: .trustRoots(caFile: "/nonexistent/ca.pem"))
            Issue.record("connect with a missing CA file succeeded")
        } catch let TransportError.tls(e) {
            #expect(e.kind == "tls_configuration")
            #expect(e.source == .loadGenerator)
            #expect(e.description.contains("/nonexistent/ca.pem"))
        }
    }

    /// A loop of its own for a test that times its task: on Swift's shared pool, which the tests
    /// beside it hold, its resumption came seconds late (3.6 s and 7.6 s for a 300 ms time-out).
    /// The group is kept, not only its loop: a released group's loops end once idle, and a
    /// task sent to one then never ran (CI hung on this test).
    static let timingLoops = EventLoopGroup(loops: 1, label: "tls-tests-timing")

    @Test func handshakeTimesOutAgainstASilentServer() async throws {
        // A plain TCP listener that never answers the ClientHello.
        let listener = try TCPListener { conn in conn.start(delegate: ServerEcho.Silent()) }
        defer { listener.close() }
        let took = await withTaskExecutorPreference(Self.timingLoops.loops[0]) {
            let start = ContinuousClock.now
            do {
                let c = try await TransportConnector.connect(to: listener.address, timeout: .milliseconds(300),
                                                        tls: .insecureNoVerification)
                c.close()
                Issue.record("handshake with a silent server succeeded")
            } catch let e as TransportError {
                #expect(e.kind == "timeout")
            } catch {
                Issue.record("expected a time-out, got \(error)")
            }
            return ContinuousClock.now - start
        }
        #expect(took < .seconds(3))
    }

    @Test func plainTextPeerIsAProtocolFailure() async throws {
        // A server that answers the ClientHello with HTTP text.
        let listener = try TCPListener { conn in
            conn.start(delegate: ServerEcho.Silent())
            conn.write(Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".utf8))
        }
        defer { listener.close() }
        do {
            let c = try await TransportConnector.connect(to: listener.address, timeout: .seconds(5), tls: .insecureNoVerification)
            c.close()
            Issue.record("handshake with a plain-text server succeeded")
        } catch let TransportError.tls(e) {
            #expect(e.kind == "tls_protocol", "\(e)")
            #expect(e.source == .server)
        }
    }
}

extension ServerEcho {
    /// Reads and ignores everything.
    final class Silent: ConnectionDelegate, @unchecked Sendable {
        func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {}
        func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
    }
}
#endif
