import Testing
import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// An HTTP/1.1 server that answers every request `ok` after `stall` (a loop timer, so the server's
/// loop stays free): the stalled server the open model must not be fooled by.
final class StallServer: ConnectionDelegate, @unchecked Sendable {
    private var pending: [UInt8] = []
    private let stall: Duration
    init(stall: Duration) { self.stall = stall }

    static func start(stall: Duration) throws -> TCPListener {
        try TCPListener { conn in conn.start(delegate: StallServer(stall: stall)) }
    }

    func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        pending.append(contentsOf: bytes)
        while let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
            pending.removeSubrange(..<end.upperBound)
            c.loop.schedule(after: stall) {
                c.write(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8))
            }
        }
    }
    func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
}

@Suite struct OpenModelScheduleTests {
    /// The users series holds each second's peak of active users, not the count at the tick: a
    /// 300 ms stall that occupies every user between two ticks shows (a held-out user saw 0–2
    /// users in the chart while 20 were stuck in every stall).
    @Test func theUsersSeriesHoldsEachSecondsPeak() async throws {
        let result = try await LoadTest("open-peak", rate: .constant(100, for: .milliseconds(1500)), maxUsers: 40)
            .progress(false).reports(false).settings(Settings([:])).exclusive(false)
            .run { user in
                // Iterations 30–49 (due 0.30–0.49 s) wait 300 ms: 20 users busy at once before 0.8 s,
                // none at the tick at 1 s. All others return at once.
                if (30..<50).contains(user.iteration) { _ = await user.sleep(for: .milliseconds(300)) }
                try await user.measure("step") {}
            }
        let vus = try #require(result.metrics.series["vus"])
        #expect(result.metrics.counters["iterations"] == 150)
        #expect((vus.first ?? 0) >= 15, "second 0 had 20 users busy at once: \(vus)")
    }

    @Test func plannerNeverHandsOutAnIterationBeforeItIsDue() {
        let start: UInt64 = 1_000_000_000
        var p = ArrivalPlanner(.constant(1000, for: .milliseconds(10)), startNanos: start)  // due every 1 ms
        var got: [UInt64] = []
        var now = start
        // Ask at arbitrary instants, sometimes between two due times, sometimes far behind.
        for step: UInt64 in [0, 300_000, 700_000, 1_500_000, 1_500_000, 4_200_000, 9_999_999, 20_000_000] {
            now = start + step
            while let due = p.takeDue(now: now) {
                #expect(due <= now)
                got.append(due)
            }
            if let next = p.nextDue { #expect(next > now) }
        }
        #expect(got == (0..<10).map { start + UInt64($0) * 1_000_000 })   // all of them, in order, once
        #expect(p.nextDue == nil)
        #expect(p.takeDue(now: .max) == nil)
    }

    @Test func latenessIsTheDelayAfterTheDueTimeAndNeverNegative() {
        #expect(ArrivalPlanner.lateness(due: 100, startedAt: 100) == 0)
        #expect(ArrivalPlanner.lateness(due: 100, startedAt: 1_100_100) == 1_100_000)
        #expect(ArrivalPlanner.lateness(due: 100, startedAt: 50) == 0)
        #expect(LoadTest.Options().lateThreshold == .milliseconds(1))
    }
}

@Suite(.serialized) struct OpenModelExecutorTests {
    static let busyLoops = EventLoopGroup(loops: 2, label: "open-model-busy")
    private func quiet(_ t: LoadTest) -> LoadTest { t.progress(false).reports(false).settings(Settings([:])).exclusive(false) }

    @Test func iterationsStartOnScheduleAndAreTimedFromIt() async throws {
        let server = try StallServer.start(stall: .milliseconds(20))
        defer { server.close() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(server.address.port)/slow"
        let result = try await quiet(LoadTest("open-stall", rate: .constant(50, for: .milliseconds(400)), maxUsers: 50))
            .run { user in
                user.rate("started_on_or_after_due", hit: monotonicNanos() >= user.scheduledStartNanos)
                // Held back 300 ms before the first measured step: an open-model measure counts it.
                // (Task.sleep: the last iterations outlive the plan, when user.sleep ends at the stop flag.)
                // 300 ms, not 30: the two timings must stay apart even when a busy process (the
                // parallel test run) adds tens of ms to each 20 ms request.
                try await Task.sleep(for: .milliseconds(300))
                try await user.measure("get") { _ = try await client.get(url) }
                try await user.measure("again") { _ = try await client.get(url) }
            }
        let m = result.metrics
        let n = m.counters["iterations"] ?? 0
        #expect(n == 20)
        #expect(m.rates["started_on_or_after_due"] == RateTally(hits: 20, total: 20))
        let get = try #require(m.trends["get"]), again = try #require(m.trends["again"])
        #expect(get.count == 20 && again.count == 20)
        #expect(get.min >= 320_000)                   // 300 ms held + 20 ms stall, timed from the schedule
        // Later steps time from their call: 20 ms stall plus whatever a busy process adds; timed
        // from the schedule it would be ≥ 340 ms (hold + both stalls).
        #expect(again.min >= 20_000 && again.min < 300_000)
        #expect(m.trends["iteration_lateness"]?.count == 20)
        #expect((m.counters["iterations_dropped"] ?? 0) == 0)
    }

    /// The README's advice for high rates: a capped pool under the open model (wrk2's `-c N -R`
    /// shape). Iterations that find the one connection busy wait in the client — on schedule, no
    /// second connection — and the wait is in the first step's latency (timed from the schedule)
    /// and in `http_req_blocked`, counted by `http_reqs_queued`, not in `http_req_duration`.
    @Test func aCappedPoolQueuesIterationsAndTheirWaitIsInTheScheduledLatency() async throws {
        let accepted = Atomic<Int>(0)
        let server = try TCPListener { conn in
            accepted.add(1, ordering: .relaxed)
            conn.start(delegate: StallServer(stall: .milliseconds(20)))
        }
        defer { server.close() }
        let client = HTTPClient(maxConnectionsPerHost: 1)
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(server.address.port)/slow"
        // 30 arrivals over 300 ms, one connection serving one request per ≥ 20 ms: ≥ 600 ms of
        // work, so the last iterations wait ≥ 280 ms for the connection, however busy the process.
        let result = try await quiet(LoadTest("open-capped", rate: .constant(100, for: .milliseconds(300)), maxUsers: 50))
            .run { user in try await user.measure("get") { _ = try await client.get(url) } }
        let m = result.metrics
        #expect(accepted.load(ordering: .relaxed) == 1)
        #expect(m.counters["http_reqs"] == 30)
        #expect((m.counters["iterations_dropped"] ?? 0) == 0)
        let queued = m.counters["http_reqs_queued"] ?? 0
        #expect(queued >= 20 && queued <= 29, "all but the first few found the connection busy: \(queued)")
        let get = try #require(m.trends["get"]), blocked = try #require(m.trends["http_req_blocked"])
        let duration = try #require(m.trends["http_req_duration"])
        // 30 exchanges one after another end ≥ 600 ms after the first arrival; the last was due at
        // 290 ms: timed from its schedule ≥ 310 ms, whatever made it start late.
        #expect(get.max >= 300_000, "\(get.max) µs")
        // Its wait for the connection is that less its own start lateness (a busy process's).
        #expect(blocked.max >= 150_000, "the last ones waited for the connection: \(blocked.max) µs")
        #expect(get.max >= blocked.max + 20_000, "timed from the schedule: the wait and the 20 ms stall")
        #expect(duration.min >= 19_000)
        #expect(duration.max < blocked.max, "http_req_duration is the exchange alone, without the wait")
    }

    /// After a stall of the driver's loop many iterations are due at once, and users that finish
    /// one on that loop take the next due one themselves (no hand-off through the free list):
    /// each planned iteration still runs once or is dropped, none before it is due, each with its
    /// lateness recorded, and never more users at once than `maxUsers`.
    @Test func iterationsDueAtOnceAreEachRunOnceNeverEarlyByAtMostMaxUsers() async throws {
        final class Seen: Sendable { let numbers = Mutex<[Int]>([]); let stalled = Atomic<Bool>(false) }
        let seen = Seen()
        let loops = EventLoopGroup(loops: 1, label: "open-model-due")
        var t = quiet(LoadTest("open-due", rate: .constant(2000, for: .milliseconds(200)), maxUsers: 4))
        t.options.userLoops = loops
        let result = try await t.run { user in
            user.rate("started_on_or_after_due", hit: monotonicNanos() >= user.scheduledStartNanos)
            seen.numbers.withLock { $0.append(user.iteration) }
            if user.iteration == 20, !seen.stalled.exchange(true, ordering: .relaxed) {
                // 30 ms without the loop: ≈ 60 iterations come due meanwhile.
                let end = monotonicNanos() + 30_000_000
                while monotonicNanos() < end {}
            }
            try await user.measure("step") { await Task.yield() }
        }
        let m = result.metrics
        let numbers = seen.numbers.withLock { $0 }
        let ran = Int(m.counters["iterations"] ?? 0), dropped = Int(m.counters["iterations_dropped"] ?? 0)
        #expect(ran == numbers.count)
        #expect(ran + dropped == 400)                                   // every planned one: run or dropped
        #expect(Set(numbers).count == numbers.count)                    // none twice
        #expect(numbers.allSatisfy { (0..<400).contains($0) })
        #expect(m.rates["started_on_or_after_due"] == RateTally(hits: Int64(ran), total: Int64(ran)))
        #expect(m.trends["iteration_lateness"]?.count == Int64(ran))
        #expect((m.counters["iterations_late"] ?? 0) >= 1)             // those due during the stall
        #expect(result.peakActiveUsers <= 4)
    }

    @Test func aBusyLoopMakesIterationsLateNotEarlyAndTheLatenessIsRecorded() async throws {
        final class Once: Sendable { let done = Atomic<Bool>(false) }
        let spun = Once()
        // On loops of its own: it stalls its control loop on purpose, which must not stall the
        // shared loops that tests running beside it keep time on.
        var busy = quiet(LoadTest("open-busy", rate: .constant(200, for: .milliseconds(300)), maxUsers: 100))
        busy.options.userLoops = Self.busyLoops
        let result = try await busy
            .run { user in
                user.rate("started_on_or_after_due", hit: monotonicNanos() >= user.scheduledStartNanos)
                if user.iteration == 10, !spun.done.exchange(true, ordering: .relaxed) {
                    // Stall the loop that runs the schedule for 60 ms: starts due meanwhile are late.
                    Self.busyLoops.loops[0].execute {
                        let end = monotonicNanos() + 60_000_000
                        while monotonicNanos() < end {}
                    }
                }
                try await user.measure("noop") {}
            }
        let m = result.metrics
        #expect(m.counters["iterations"] == 60)
        #expect(m.rates["started_on_or_after_due"] == RateTally(hits: 60, total: 60))
        #expect((m.counters["iterations_late"] ?? 0) >= 5)            // ≈ 12 were due during the stall
        let lateness = try #require(m.trends["iteration_lateness"])
        #expect(lateness.count == 60)
        #expect(lateness.max >= 40_000)
        // The first measured step of a late iteration includes its lateness (timed from the schedule).
        #expect((m.trends["noop"]?.max ?? 0) >= 40_000)
    }
}
