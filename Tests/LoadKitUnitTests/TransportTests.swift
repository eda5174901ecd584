import Testing
import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Echoes every byte back (server role for transport tests).
final class EchoDelegate: ConnectionDelegate, @unchecked Sendable {
    func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) { c.write(rawBytes: bytes) }
    func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
}

/// Collects bytes until `expected` have arrived (client side).
final class Collector: ConnectionDelegate, @unchecked Sendable {
    var data: [UInt8] = []
    var expected: Int
    var cont: CheckedContinuation<[UInt8], any Error>?
    var closeError: TransportError?
    init(expected: Int) { self.expected = expected }
    func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        data.append(contentsOf: bytes)
        if data.count >= expected, let k = cont { cont = nil; k.resume(returning: data) }
    }
    func connection(_ c: any Transport, didCloseWith error: TransportError?) {
        closeError = error
        if let k = cont { cont = nil; k.resume(throwing: error ?? TransportError.closedLocally) }
    }
}

@Suite struct TransportTests {
    @Test func echoRoundTripLargePayload() async throws {
        let listener = try TCPListener { conn in conn.start(delegate: EchoDelegate()) }
        defer { listener.close() }
        let conn = try await TCPConnection.connect(to: listener.address, timeout: .seconds(5))
        let payload = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let collector = Collector(expected: payload.count)
        let got: [UInt8] = try await withCheckedThrowingContinuation { k in
            conn.loop.execute {
                collector.cont = k
                conn.start(delegate: collector)
                conn.write(payload)
            }
        }
        #expect(got == payload)
        conn.close()
    }

    @Test func refusedIsClassifiedAsServer() async throws {
        let closed = try ClosedPort()
        do {
            _ = try await TCPConnection.connect(to: closed.address, timeout: .seconds(2))
            Issue.record("connect to a closed port succeeded")
        } catch let e as TransportError {
            #expect(e.kind == "refused")
            #expect(e.source == .server)
        }
        withExtendedLifetime(closed) {}
    }

    @Test func peerCloseIsReported() async throws {
        let listener = try TCPListener { conn in conn.close() }
        defer { listener.close() }
        let conn = try await TCPConnection.connect(to: listener.address, timeout: .seconds(5))
        let collector = Collector(expected: 1)
        await #expect(throws: TransportError.self) {
            let _: [UInt8] = try await withCheckedThrowingContinuation { k in
                conn.loop.execute { collector.cont = k; conn.start(delegate: collector) }
            }
        }
    }

    @Test func sourceAddressIsUsed() async throws {
        let listener = try TCPListener(host: "127.0.0.1") { conn in
            let peer = Array(conn.peerAddress!.host.utf8) + [10]
            conn.start(delegate: EchoDelegate())
            conn.write(peer)
        }
        defer { listener.close() }
        let conn = try await TCPConnection.connect(to: listener.address, from: SocketAddress(ip: "127.0.0.7", port: 0))
        let collector = Collector(expected: 10)
        let got: [UInt8] = try await withCheckedThrowingContinuation { k in
            conn.loop.execute { collector.cont = k; conn.start(delegate: collector) }
        }
        #expect(String(decoding: got, as: UTF8.self) == "127.0.0.7\n")
        conn.close()
    }

    @Test func openFileLimitCanBeRaised() {
        let soft = ResourceLimits.raiseOpenFileLimit()
        #expect(soft == ResourceLimits.openFiles().hard)
        #expect(ResourceLimits.openDescriptorCount() > 0)
        #expect(ResourceLimits.ephemeralPortRange().count > 1000)
    }
}
