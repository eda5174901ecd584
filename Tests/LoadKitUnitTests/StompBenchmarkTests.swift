import Testing
import Foundation
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Throughput probes, off by default (`STOMP_BENCH=1 swift test -c release --filter StompBenchmarkTests`).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["STOMP_BENCH"] != nil))
struct StompBenchmarkTests {
    /// Parses MESSAGE frames the way the client's read path does (64 KiB reads, header lookup of
    /// `subscription` and `message-id` bytes per frame) and prints frames per second on one core.
    @Test func parseMessagesPerSecond() throws {
        var one: [UInt8] = []
        let body = Array("{\"id\":\"u1-000123\",\"t\":1732300000000,\"text\":\"hello room\"}".utf8)
        body.withUnsafeBytes {
            StompServerSession.encodeMessage(destination: "/topic/chat.room-17", subscription: "sub-0",
                                             messageID: "T_sub-0@@session-Xy12@@123456", contentType: "application/json",
                                             body: $0, into: &one)
        }
        var chunk: [UInt8] = []
        while chunk.count < 64 * 1024 { chunk += one }
        let perChunk = chunk.count / one.count
        var parser = StompFrameParser(peer: .server)
        var frames = 0, matched = 0
        let rounds = 3000
        let start = monotonicNanos()
        try chunk.withUnsafeBytes { raw in
            for _ in 0..<rounds {
                try parser.parse(raw) { f in
                    frames += 1
                    if let s = f.headerValueBytes("subscription"), s.count == 5, f.body.count > 10 { matched += 1 }
                }
            }
        }
        let secs = Double(monotonicNanos() - start) / 1e9
        print("STOMP parse: \(frames) frames (\(one.count) B each, \(perChunk)/read) in \(secs) s = \(Int(Double(frames) / secs)) frames/s")
        #expect(matched == frames)
    }

    /// A server pumps MESSAGE frames over TCP loopback as fast as the client takes them; the client
    /// (its own single loop) counts them in its subscription handler, like the load suite's hot path.
    @Test func clientReceivesMessagesPerSecond() async throws {
        final class Blaster: ConnectionDelegate, @unchecked Sendable {
            let tcp: any Transport
            var parser = StompFrameParser(peer: .loadGenerator)
            var session = StompServerSession()
            var chunk: [UInt8] = []
            var perChunk = 0
            var sent = 0
            let total: Int
            init(tcp: any Transport, total: Int) { self.tcp = tcp; self.total = total }
            func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
                var frames: [StompFrame] = []
                try? parser.parse(bytes) { frames.append($0) }
                for f in frames {
                    switch session.receive(f) {
                    case .success(.connect(let cf)): if case .success(let r) = session.accept(cf) { c.write(StompFrameEncoder.encode(r)) }
                    case .success(.subscribe(let id, let d, _, _)):
                        let body = Array("{\"id\":\"u1-000123\",\"t\":1732300000000,\"text\":\"hello room\"}".utf8)
                        var one: [UInt8] = []
                        body.withUnsafeBytes {
                            StompServerSession.encodeMessage(destination: d, subscription: id, messageID: "T_sub-0@@session-Xy12@@123456",
                                                             contentType: "application/json", body: $0, into: &one)
                        }
                        while chunk.count < 64 * 1024 { chunk += one }
                        perChunk = chunk.count / one.count
                        pump()
                    default: break
                    }
                }
            }
            func pump() {
                while sent < total && tcp.bufferedBytes == 0 && tcp.isOpen { tcp.write(chunk); sent += perChunk }
            }
            func connectionDidDrain(_ c: any Transport) { pump() }
            func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
        }
        final class Counter: @unchecked Sendable {
            var n = 0
            var target = 0
            var cont: CheckedContinuation<Void, Never>?
        }
        let total = 2_000_000
        let listener = try TCPListener { tcp in tcp.start(delegate: Blaster(tcp: tcp, total: total)) }
        defer { listener.close() }
        let clientLoops = EventLoopGroup(loops: 1, label: "bench.client")
        let c = try await StompClient.connect(tcp: listener.address, configuration: .init(heartBeat: (.zero, .zero)),
                                              on: clientLoops.next())
        let counter = Counter()
        counter.target = total
        let start = monotonicNanos()
        await withCheckedContinuation { (k: CheckedContinuation<Void, Never>) in
            counter.cont = k
            Task {
                _ = try await c.subscribe(destination: "/topic/bench") { m in
                    counter.n += 1
                    if m.frame.headerValueBytes("message-id")?.count == 0 { counter.n += 1_000_000_000 }
                    if counter.n >= counter.target, let k = counter.cont { counter.cont = nil; k.resume() }
                }
            }
        }
        let secs = Double(monotonicNanos() - start) / 1e9
        print("STOMP client receive: \(counter.n) MESSAGE frames in \(secs) s = \(Int(Double(counter.n) / secs)) frames/s")
        c.close()
        #expect(counter.n >= total)
    }

    /// Opens `STOMP_BENCH_CONNS` (default 2,000) idle STOMP/TCP connections with 10 s heart-beats to
    /// an in-process server and prints the RSS growth per connection pair (client + server side).
    @Test func idleConnectionMemory() async throws {
        let n = Int(ProcessInfo.processInfo.environment["STOMP_BENCH_CONNS"] ?? "") ?? 2000
        _ = ResourceLimits.raiseOpenFileLimit()
        let broker = try StompTestBroker()
        defer { broker.close() }
        func rssKB() -> Int {
            let s = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
            let line = s.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        let before = rssKB()
        var clients: [StompClient] = []
        clients.reserveCapacity(n)
        let config = StompClientConfiguration(connectHeaders: [("login", "beat")], heartBeat: (.seconds(10), .seconds(10)))
        for _ in 0..<n { clients.append(try await StompClient.connect(tcp: broker.address, configuration: config)) }
        try await Task.sleep(for: .milliseconds(500))
        let after = rssKB()
        print("STOMP idle: \(n) connections, RSS +\((after - before) / 1024) MB = \((after - before) * 1024 / n) bytes per client+server pair")
        for c in clients { c.close() }
    }
}
