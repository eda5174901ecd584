import Foundation
import XCTest
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// The README's HTTP quick start written as an `XCTestCase`, as a user of XCTest would: the same
/// API, an SLA judged with `result.expect(sla)` (breaches become `XCTFail` at the caller's line).
final class XCTestLoadTests: XCTestCase {
    func testItemsUnderLoadAsAnXCTest() async throws {
        let server = try CountingHTTPServer(failEvery: 1_000_000)
        defer { server.stop() }
        let client = HTTPClient()
        let url = server.url("/ok")
        let sla = SLA.all {
            SLA.p95("http_req_duration", below: .seconds(2))
            SLA.rate("http_req_failed", below: 0.01)
        }
        let result = try await LoadTest("xctest-items") {
            Stage("ramp", to: 5, over: .milliseconds(200))
            Hold(.milliseconds(500))
        }
        .reports(false).progress(false).settings(Settings([:]))
        .sla(sla)
        .run { user in try await client.get(url) }
        result.expect(sla)
        let served = server.snapshot.requests
        XCTAssertGreaterThan(served, 10, "the run did real work")
        XCTAssertEqual(result.metrics.counters["http_reqs"], Int64(served))
    }
}

/// Run only as a child process by `ChildProcessTests` (the variable below selects it): an SLA
/// breach inside an XCTest test must fail that test at the line of `result.expect`.
final class XCTestBreachDemo: XCTestCase {
    static let variable = "LOADKIT_CHILD_DEMO"

    func testBreachFailsAtTheCallersLine() async throws {
        guard ProcessInfo.processInfo.environment[Self.variable] == "xctest-breach" else {
            throw XCTSkip("runs only as a child process of ChildProcessTests")
        }
        let sla = SLA.all { SLA.p95("step", below: .microseconds(1)) }
        let result = try await LoadTest("xctest-breach", burst: 2).reports(false).progress(false).settings(Settings([:]))
            .run { user in try await user.measure("step") { _ = await user.sleep(for: .milliseconds(5)) } }
        result.expect(sla) // BREACH-LINE
    }
}
