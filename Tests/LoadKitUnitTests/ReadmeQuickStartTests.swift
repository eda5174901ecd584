import Foundation
import Testing
import LoadKit   // not @testable: the quick start uses only the public API

/// The README's first test ("Your first load test"), as written but smaller and against a local
/// server instead of `127.0.0.1:8080`, so the example cannot drift from the API and its numbers
/// are checked against what the server saw.
@Suite(.serialized) struct ReadmeQuickStartTests {
    @Test func itemsUnderLoad() async throws {
        let served = ServedCount()
        let server = try HTTPServer(port: 0) { request in
            served.add()
            try? await EventLoop.sleep(for: .milliseconds(2))   // a loop timer: on time in parallel test runs
            return .text(#"[{"id":1,"name":"chair"}]"#)
        }
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/api/items"

        // ---- as in the README (smaller) ----
        let client = HTTPClient()
        let result = try await LoadTest("items") {
            Stage("ramp-up", to: 20, over: .seconds(1))
            Hold(.seconds(2))
        }
        .sla {
            SLA.p95("http_req_duration", below: .milliseconds(200))
            SLA.rate("http_req_failed", below: 0.01)
        }
        .reports(false)   // (the README's test writes its reports; this copy keeps the tree clean)
        .run { user in
            try await client.get(url)
        }
        result.expect()
        // ---- end ----

        let m = result.metrics
        #expect(served.value > 100, "the run did real work")
        #expect(m.counters["http_reqs"] == Int64(served.value))
        #expect(m.rates["http_req_failed"]?.hits == 0)
        #expect(result.peakActiveUsers == 20)
        #expect(result.sla?.count == 2)
    }
}

private final class ServedCount: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
