import Testing
import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// A server that reads requests and never answers, counting what it read: the requests a
/// graceful stop cuts reached it all the same.
private final class SilentServer: ConnectionDelegate, @unchecked Sendable {
    struct Seen { var requests = 0; var bytes = 0 }
    final class Tally: Sendable {
        let seen = Mutex(Seen())
        var value: Seen { seen.withLock { $0 } }
    }
    private let tally: Tally
    private var pending: [UInt8] = []
    private init(_ tally: Tally) { self.tally = tally }

    static func start(_ seen: Tally) throws -> TCPListener {
        try TCPListener { conn in conn.start(delegate: SilentServer(seen)) }
    }

    func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        pending.append(contentsOf: bytes)
        var heads = 0
        while let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
            pending.removeSubrange(..<end.upperBound)
            heads += 1
        }
        tally.seen.withLock { $0.requests += heads; $0.bytes += bytes.count }
    }
    func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
}

@Suite struct GracefulStopTruthTests {
    private func quiet(_ t: LoadTest) -> LoadTest { t.progress(false).reports(false).settings(Settings([:])).exclusive(false) }

    /// Requests the stop cuts after they were sent reached the server: their bytes are in
    /// `data_sent`, they are counted in `http_reqs_cut` (not as requests that ended, not as
    /// failures), so the server's count is `http_reqs + http_reqs_retried + http_reqs_cut`; and a
    /// threshold left without samples says every iteration was cut (a held-out user's run with
    /// 10 cut requests showed `http_reqs` 0, no `data_sent` and a bare `no samples`).
    @Test func requestsCutByTheStopAreCountedAsSentNotAsFailures() async throws {
        let seen = SilentServer.Tally()
        let server = try SilentServer.start(seen)
        defer { server.close() }
        let client = HTTPClient()                       // the default 30 s time-out: longer than the stop
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(server.address.port)/silent"
        let result = try await quiet(LoadTest("cut", rate: .constant(10, for: .milliseconds(500)), maxUsers: 10))
            .gracefulStop(.milliseconds(200))
            .run { user in try await user.measure("wait") { _ = try await client.get(url) } }
        let m = result.metrics
        let server_ = seen.value
        #expect(server_.requests == 5, "the server read every request: \(server_.requests)")
        #expect(m.counters["iterations_interrupted"] == 5)
        #expect(m.counters[BuiltInMetrics.httpReqsCut] == 5)
        #expect((m.counters["http_reqs"] ?? 0) + (m.counters["http_reqs_retried"] ?? 0) + (m.counters[BuiltInMetrics.httpReqsCut] ?? 0)
                == Int64(server_.requests))
        #expect(m.counters["data_sent"] == Int64(server_.bytes))
        #expect(m.totalErrors == 0, "a cut request is not a failure")
        let line = try #require(ConsoleSummary.cutAtStop(m))
        #expect(line.hasPrefix("5 iterations were cut by the stop before ending (iterations_interrupted, not failures), "
                               + "5 sent requests among them unanswered (http_reqs_cut): "), "\(line)")
        let verdict = SLA.errorRate(below: 0.01).evaluate(result)
        #expect(!verdict.passed)
        #expect(verdict.message.contains("all 5 iterations were cut by the stop before they ended"), "\(verdict.message)")
        // report.html's thresholds table says why, as the console does (it showed a bare "no samples").
        let table = HTMLReport.thresholdSection([verdict], failed: 1, blame: nil)
        #expect(table.contains("<div class=\"note\">all 5 iterations were cut by the stop before they ended"), "\(table)")
    }

    /// The open model's plan ends when its duration does, not at its last arrival: the graceful
    /// stop counts from there, as k6's does (a held-out user's 2 s plan with 0.5 s of grace cut
    /// its users at 2.3 s — the last arrival at 1.8 s plus the grace).
    @Test func theOpenModelsGracefulStopCountsFromThePlansEnd() async throws {
        let server = try StallServer.start(stall: .seconds(1))
        defer { server.close() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(server.address.port)/slow"
        // Arrivals at 0, 0.5, 1.0 and 1.5 s, each answered a second later: the last at 2.5 s,
        // inside the plan's end (2 s) plus 0.9 s of grace, after its last arrival plus the grace.
        let result = try await quiet(LoadTest("grace", rate: .constant(2, for: .seconds(2)), maxUsers: 4))
            .gracefulStop(.milliseconds(900))
            .run { user in _ = try await client.get(url) }
        let m = result.metrics
        #expect(m.counters["iterations"] == 4)
        #expect((m.counters["iterations_interrupted"] ?? 0) == 0)
        #expect(m.counters["http_reqs"] == 4)
    }
}
