import Testing
import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Opt-in measurements (not part of the default run):
/// `LOADKIT_WS_BENCH=1 swift test -c release --filter WebSocketBenchmarkTests`
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["LOADKIT_WS_BENCH"] != nil))
struct WebSocketBenchmarkTests {
    /// Pushes pre-encoded small text frames from a raw server; the client parses, validates and
    /// hands each to a loop handler. Reports messages per second on the client's loop.
    @Test func receiveSmallMessages() async throws {
        let count = 1_000_000
        let payload = Array(#"{"type":"MESSAGE","id":12345,"t":1}"#.utf8)  // 35 bytes
        var batch: [UInt8] = []
        for _ in 0..<1000 { WebSocketFrameEncoder.encode(into: &batch, opcode: .text, maskKey: nil, payload: payload) }
        let frames = batch
        let listener = try TCPListener { tcp in
            final class Pusher: ConnectionDelegate, @unchecked Sendable {
                var parser = HTTPRequestHeadParser()
                let frames: [UInt8]
                let count: Int
                init(frames: [UInt8], count: Int) { self.frames = frames; self.count = count }
                func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
                    guard case .done(let head, _) = parser.parse(bytes), case .success(let a) = WebSocketHandshake.accept(head) else { return }
                    c.write(a.responseBytes)
                    for _ in 0..<(count / 1000) { c.write(frames) }
                }
                func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
            }
            tcp.start(delegate: Pusher(frames: frames, count: count))
        }
        defer { listener.close() }
        final class Counter: WebSocketHandler, @unchecked Sendable {
            var n = 0, bytes = 0, first: UInt64 = 0, last: UInt64 = 0
            let target: Int
            var done: CheckedContinuation<Void, Never>?
            init(target: Int) { self.target = target }
            func webSocket(_ ws: WebSocketConnection, didReceive opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) {
                if n == 0 { first = monotonicNanos() }
                n += 1
                bytes += payload.count
                if n == target { last = monotonicNanos(); done?.resume(); done = nil }
            }
            func webSocket(_ ws: WebSocketConnection, didCloseWith info: WebSocketCloseInfo) { done?.resume(); done = nil }
        }
        let counter = Counter(target: count)
        let cpuBefore = processCPUNanos()
        let ws = try await WebSocketClient.connect("ws://127.0.0.1:\(listener.address.port)/", timeout: .seconds(5))
        await withCheckedContinuation { (k: CheckedContinuation<Void, Never>) in
            ws.loop.execute {
                counter.done = k
                ws.connection.setHandler(counter)
            }
        }
        let cpu = processCPUNanos() - cpuBefore
        let secs = Double(counter.last - counter.first) / 1e9
        print("WS-BENCH receive: \(counter.n) messages of \(payload.count) B in \(String(format: "%.3f", secs)) s = \(Int(Double(counter.n) / secs)) msg/s; process CPU \(String(format: "%.2f", Double(cpu) / 1e9)) s (both sides)")
        #expect(counter.n == count)
        #expect(counter.bytes == count * payload.count)
        ws.connection.transport.close()

        // The same through the `onMessage` callback (a String per message).
        let ws2 = try await WebSocketClient.connect("ws://127.0.0.1:\(listener.address.port)/", timeout: .seconds(5))
        let seen = Counter(target: count)
        await withCheckedContinuation { (k: CheckedContinuation<Void, Never>) in
            ws2.loop.execute {
                seen.done = k
                ws2.setCallbacks(onMessage: { m in
                    if seen.n == 0 { seen.first = monotonicNanos() }
                    seen.n += 1
                    if case .text(let t) = m { seen.bytes += t.utf8.count }
                    if seen.n == count { seen.last = monotonicNanos(); seen.done?.resume(); seen.done = nil }
                })
            }
        }
        let secs2 = Double(seen.last - seen.first) / 1e9
        print("WS-BENCH receive via onMessage: \(Int(Double(seen.n) / secs2)) msg/s")
        #expect(seen.bytes == count * payload.count)
        ws2.connection.transport.close()
    }

    /// Holds `n` idle client connections (and their server ends, same process) and reports RSS per connection pair.
    @Test func idleConnectionMemory() async throws {
        let n = 2000
        let listener = try TCPListener { tcp in
            WebSocketServer.accept(tcp) { ws, _ in ws.setCallbacks(onMessage: { _ in }) }
        }
        defer { listener.close() }
        let url = "ws://127.0.0.1:\(listener.address.port)/"
        // Warm up allocator and loops.
        var warm: [WebSocketClient] = []
        for _ in 0..<50 { warm.append(try await WebSocketClient.connect(url, timeout: .seconds(5))) }
        let before = residentBytes()
        var clients: [WebSocketClient] = []
        clients.reserveCapacity(n)
        for _ in 0..<n { clients.append(try await WebSocketClient.connect(url, timeout: .seconds(5))) }
        try await Task.sleep(for: .milliseconds(200))
        let after = residentBytes()
        let per = Double(after - before) / Double(n)
        print("WS-BENCH idle: \(n) client+server connection pairs, RSS +\((after - before) >> 20) MiB = \(Int(per)) B per pair (client side + server side)")
        for c in clients { c.connection.transport.close() }
        for c in warm { c.connection.transport.close() }
    }
}

func residentBytes() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let parts = s.split(separator: " ")
    return (Int(parts[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func processCPUNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
