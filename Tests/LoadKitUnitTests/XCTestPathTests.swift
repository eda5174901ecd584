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

/// Run as a child process by ``ChildProcessTests``: two load runs queued one behind the other
/// while every thread of Swift's shared pool spins (tests that never yield): the second must start
/// when the first ends — its turn must not wait for a pool thread. Prints the gap.
final class QueuedRunDemo: XCTestCase {
    static let value = "queued-run"

    func testTheNextRunStartsWhenThePoolIsBusy() async throws {
        guard ProcessInfo.processInfo.environment[XCTestBreachDemo.variable] == Self.value else {
            throw XCTSkip("runs only as a child process of ChildProcessTests")
        }
        func plan(_ name: String, hold: Duration) -> LoadTest {
            LoadTest(name) { Stage("all", to: 1, over: .zero); Hold(hold) }
                .reports(false).progress(false).settings(Settings([:])).exclusive(true)
        }
        // Detached: on Swift's shared pool, as a Swift Testing test's runs are (not the main actor).
        let first = Task.detached { try await plan("first", hold: .milliseconds(800)).run { user in _ = await user.sleep(for: .milliseconds(10)) } }
        try await Task.sleep(for: .milliseconds(100))
        let second = Task.detached { try await plan("second", hold: .milliseconds(200)).run { user in _ = await user.sleep(for: .milliseconds(10)) } }
        try await Task.sleep(for: .milliseconds(400))
        // Every pool thread busy for 2 s from here, never yielding (more tasks than threads).
        let spinners = (0..<(2 * ProcessInfo.processInfo.activeProcessorCount)).map { _ in
            Task.detached {
                let end = monotonicNanos() + 2_000_000_000
                var x: UInt64 = 0
                while monotonicNanos() < end { x &+= 1 }
                return x
            }
        }
        // Proof that the pool was held: a task started now on it begins only when a spinner ends.
        let asked = monotonicNanos()
        let probe = Task.detached { monotonicNanos() }
        let a = try await first.value, b = try await second.value
        for s in spinners { _ = await s.value }
        let firstEnd = Double(a.startedAtMillis) + a.durationSeconds * 1000
        print("QUEUED-GAP-MS \(Int(Double(b.startedAtMillis) - firstEnd))")
        print("POOL-HELD-MS \((await probe.value &- asked) / 1_000_000)")
    }
}
