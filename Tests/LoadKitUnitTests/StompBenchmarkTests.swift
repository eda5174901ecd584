import Testing
import Foundation
@testable import LoadKit

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
}
