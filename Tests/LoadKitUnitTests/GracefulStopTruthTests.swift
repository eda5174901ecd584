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

/// The first connection answers its first request (keep-alive), reads the second and closes
/// without a word (a stale keep-alive: the client sends it again on a fresh connection); later
/// connections read and never answer. Counts every request head it read.
private final class StaleThenSilentServer: ConnectionDelegate, @unchecked Sendable {
    final class Shared: Sendable {
        let connections = Atomic<Int>(0)
        let heads = Atomic<Int>(0)
    }
    private let shared: Shared
    private let index: Int
    private var pending: [UInt8] = []
    private var served = 0
    private init(_ shared: Shared, index: Int) { self.shared = shared; self.index = index }

    static func start(_ shared: Shared) throws -> TCPListener {
        try TCPListener { conn in
            let i = shared.connections.add(1, ordering: .relaxed).newValue
            conn.start(delegate: StaleThenSilentServer(shared, index: i))
        }
    }

    func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        pending.append(contentsOf: bytes)
        while let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
            pending.removeSubrange(..<end.upperBound)
            shared.heads.add(1, ordering: .relaxed)
            served += 1
            guard index == 1 else { continue }
            if served == 1 { c.write(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8)) } else { c.close() }
        }
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
        #expect(line.hasPrefix("5 iterations were cut by the stop before ending (iterations_interrupted, not failures); "
                               + "5 requests sent and left unanswered (http_reqs_cut): "), "\(line)")
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
        // Arrivals at 0 and 1 s, each answered a second later: the last at 2 s, 0.8 s inside the
        // plan's end (2 s) plus 0.8 s of grace — and 0.2 s after its last arrival plus the grace.
        let result = try await quiet(LoadTest("grace", rate: .constant(1, for: .seconds(2)), maxUsers: 2))
            .gracefulStop(.milliseconds(800))
            .run { user in _ = try await client.get(url) }
        let m = result.metrics
        #expect(m.counters["iterations"] == 2)
        #expect((m.counters["iterations_interrupted"] ?? 0) == 0)
        #expect(m.counters["http_reqs"] == 2)
    }

    /// A request sent again after a stale keep-alive and then cut by the stop: the server read
    /// three requests — one answered (`http_reqs`), one resent (`http_reqs_retried`), one cut
    /// (`http_reqs_cut`); the retry was lost on the cut path (review).
    @Test func aRetriedThenCutRequestKeepsTheServerCount() async throws {
        let shared = StaleThenSilentServer.Shared()
        let server = try StaleThenSilentServer.start(shared)
        defer { server.close() }
        let client = HTTPClient(maxConnectionsPerHost: 1)
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(server.address.port)/item"
        let result = try await quiet(LoadTest("retry-cut", rate: .constant(1, for: .milliseconds(100)), maxUsers: 1))
            .gracefulStop(.milliseconds(300))
            .run { user in _ = try await client.get(url); _ = try await client.get(url) }
        let m = result.metrics
        #expect(shared.heads.load(ordering: .relaxed) == 3)
        #expect(m.counters["http_reqs"] == 1 && m.counters["http_reqs_retried"] == 1 && m.counters[BuiltInMetrics.httpReqsCut] == 1,
                "\(m.counters)")
    }

    /// A request the script cancels itself (a hedged request's loser) was sent all the same: it
    /// is in `http_reqs_cut` — sent, then cancelled before an answer — though no iteration was
    /// cut, so the server's count still adds up; not a failure.
    @Test func aRequestTheScriptCancelsIsCountedAsSentAndCancelled() async throws {
        let fast = try StallServer.start(stall: .milliseconds(50))
        defer { fast.close() }
        let seen = SilentServer.Tally()
        let silent = try SilentServer.start(seen)
        defer { silent.close() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let fastURL = "http://127.0.0.1:\(fast.address.port)/a", slowURL = "http://127.0.0.1:\(silent.address.port)/b"
        let result = try await quiet(LoadTest("hedge", rate: .constant(10, for: .milliseconds(300)), maxUsers: 5))
            .gracefulStop(.seconds(1))
            .run { user in
                try await withThrowingTaskGroup(of: Void.self) { g in
                    g.addTask { _ = try await client.get(fastURL) }
                    g.addTask { _ = try await client.get(slowURL) }
                    try await g.next()
                    g.cancelAll()
                }
            }
        let m = result.metrics
        #expect((m.counters["iterations_interrupted"] ?? 0) == 0)
        #expect(m.counters["iterations"] == 3 && m.counters["http_reqs"] == 3)
        #expect(seen.value.requests == 3)
        #expect(m.counters[BuiltInMetrics.httpReqsCut] == Int64(seen.value.requests))
        #expect(m.totalErrors == 0)
    }

    /// In a run whose every iteration was cut, a misspelt metric is still called unknown (the
    /// cut hint came first and hid it: review).
    @Test func aMisspeltMetricInAnAllCutRunIsStillCalledUnknown() {
        var m = MetricsSnapshot()
        m.counters[RunnerMetrics.iterationsInterrupted] = 5
        m.counters[BuiltInMetrics.httpReqsCut] = 5
        let o = SLA.p95("http_req_durration", below: .seconds(1)).evaluate(m, durationSeconds: 1)
        #expect(o.message.contains("all 5 iterations were cut by the stop"), "\(o.message)")
        #expect(o.message.contains("no metric named 'http_req_durration'"), "\(o.message)")
    }
}
