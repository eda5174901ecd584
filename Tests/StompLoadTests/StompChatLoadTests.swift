import Foundation
import Testing
import LoadKit
import LoadKitFixtures
import LoadKitTesting

/// Seeds 000/001: STOMP-over-WebSocket group chat under a staged ramp. The default run is a smoke
/// run (≤ 60 workers, ≈ 12 s) against the embedded fixture; `LOADKIT_SCALE=full` runs seed 000's
/// 300/600/900 workers, `LOADKIT_STOMP_PROFILE=seed001` seed 001's 1,000…10,000, and `SERVER_URL`
/// points the same test at a real server. Serialized: load tests compete for the cores.
@Suite(.serialized) struct StompChatLoadTests {

    @Test func broadcastUnderStagedRamp() async throws {
        let settings = try Settings.load()
        let plan = try StompChatPlan.loadTest(settings)
        let sla = try StompChatPlan.sla(settings)
        let target = try await StompChatTarget.start(settings, plannedPeak: plan.plannedPeakUsers)
        let chat = target.chat
        var test = plan.connections(perUser: 1, descriptorsEach: target.descriptorsPerConnection).sla(sla)
        test.options.environment.merge(chat.description) { _, n in n }
        test.options.environment["target"] = target.kind
        let result: RunResult
        do {
            result = try await test.run { user in try await chat.runWorker(user) }
        } catch {
            await target.stop()
            throw error
        }
        await target.stop()

        result.expect(sla)
        // Work happened, and it was N:N: each message reaches every subscriber in the room.
        let m = result.metrics
        let sent = m.counters[StompChatMetrics.messagesSent] ?? 0
        let received = m.counters[StompChatMetrics.messagesReceived] ?? 0
        let echoed = m.counters[StompChatMetrics.messagesEchoed] ?? 0
        let pendingAtStop = m.counters[StompChatMetrics.messagesPendingAtStop] ?? 0
        #expect(sent > 0 && received > 0)
        #expect(echoed + pendingAtStop + Int64(m.errors["message_timeout"]?.count ?? 0) == sent,
                "every message sent is echoed, still pending at the end, or timed out")
        // Σ connected² / Σ connected over the per-second series: the mean number of connected
        // workers a message met, spread over the rooms.
        let conn = (m.series[RunnerMetrics.connected] ?? []).map(Double.init)
        let meanRoom = conn.reduce(0) { $0 + $1 * $1 } / max(1, conn.reduce(0, +)) / Double(max(1, chat.roomIds.count))
        #expect(Double(received) >= 0.7 * meanRoom * Double(sent),
                "received \(received) for \(sent) sent; expected ≈ sent × mean room size \(Int(meanRoom))")
        #expect((m.trends[StompChatMetrics.websocketConnect]?.count ?? 0) >= Int64(plan.plannedPeakUsers))
        #expect((m.trends[StompChatMetrics.stompConnect]?.count ?? 0) >= Int64(plan.plannedPeakUsers))
        #expect((m.trends[StompChatMetrics.connectionDuration]?.count ?? 0) >= Int64(plan.plannedPeakUsers))
    }

    // MARK: Failures the SLA must catch (each a few seconds, against a shaped fixture)

    static func shortRun(_ name: String, users: Int, hold: Duration, reports: String) -> LoadTest {
        TestRuns.shortRun(name, users: users, hold: hold, reports: reports)
    }

    static func reportRoot() -> String { TestRuns.temporaryReportRoot("stomp-tests") }

    /// Settings for a run against `fixture` that ignore the caller's environment.
    static func settings(_ fixture: StompChatFixture, _ extra: [String: String] = [:]) -> Settings {
        Settings(["SERVER_URL": fixture.serverURL, "EMAIL": "test@test.com", "PASSWORD": "password123!",
                  "CREATE_NEW_ROOM": "true", "MEMBER_IDS": "1,2", "MESSAGE_INTERVAL_MS": "250"].merging(extra) { _, n in n })
    }

    @Test func injectedLatencyBreachesTheP95() async throws {
        var o = FixtureOptions()
        o.latency = .fixed(.milliseconds(320))
        let fixture = try await StompChatFixture.start(o)
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let chat = try await StompChatConfiguration(settings: Self.settings(fixture)).prepared()
        let sla = [SLA.p95(StompChatMetrics.messageLatency, below: .milliseconds(250)), SLA.errorRate(below: 0.001)]
        let result = try await Self.shortRun("stomp-latency", users: 8, hold: .seconds(2), reports: root).sla(sla)
            .run { user in try await chat.runWorker(user) }
        await fixture.stop()

        let outcomes = result.evaluate(sla)           // evaluated, not recorded: the breach is the point
        let p95 = try #require(outcomes.first { $0.metric == StompChatMetrics.messageLatency })
        #expect(!p95.passed)
        #expect((p95.actual ?? 0) >= 320_000)
        #expect(p95.message.hasPrefix("message_latency p(95) = "))
        #expect(p95.message.hasSuffix("limit < 250 ms"))
        #expect(outcomes.first { $0.metric == Threshold.errorsMetric }?.passed == true, "latency alone is not an error")
        let dir = ReportWriter(root: root).directory(for: "stomp-latency")
        let csv = try String(contentsOfFile: dir + "/load_test_result.csv", encoding: .utf8)
        #expect(csv.hasPrefix("Metric,Value,Unit\n"))
        #expect(csv.contains("message_latency_p95,"))
        #expect(FileManager.default.fileExists(atPath: dir + "/load_test.log"))
        #expect(try String(contentsOfFile: dir + "/summary.txt", encoding: .utf8).contains("message_latency"))
    }

    @Test func droppedConnectionsAreRetriedWithBackoff() async throws {
        var o = FixtureOptions()
        o.faults = FaultPlan(dropConnectionShare: 0.5, dropAfter: .milliseconds(200) ... .milliseconds(700))
        let fixture = try await StompChatFixture.start(o)
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let chat = try await StompChatConfiguration(settings: Self.settings(fixture, [
            "ENABLE_RECONNECT": "true", "MAX_RECONNECT_ATTEMPTS": "5", "INITIAL_BACKOFF_MS": "100", "MAX_BACKOFF_MS": "400",
        ])).prepared()
        let result = try await Self.shortRun("stomp-reconnect", users: 10, hold: .milliseconds(2500), reports: root)
            .run { user in try await chat.runWorker(user) }
        let dropped = fixture.droppedConnections
        await fixture.stop()

        let m = result.metrics
        let retries = m.counters[StompChatMetrics.connectionRetries] ?? 0
        let reconnects = m.counters[StompChatMetrics.reconnects] ?? 0
        #expect(dropped > 0)
        #expect(retries >= 1 && reconnects >= 1)
        #expect(retries >= reconnects)
        let time = try #require(m.trends[StompChatMetrics.reconnectionTime])
        #expect(time.count == reconnects)
        #expect(time.min >= 50_000, "the first back-off is 100 ms ± 50 %, so no reconnect is faster than 50 ms")
        // Every drop is a classified failure of the connection (server-side close / reset).
        let dropErrors = m.errors.filter { $0.value.examples.contains { $0.hasPrefix("connection:") } }
        #expect(!dropErrors.isEmpty)
        #expect(dropErrors.values.allSatisfy { $0.source != .loadGenerator })
        let prom = PrometheusExposition.render(m, options: .stompChat)
        #expect(prom.contains("stomp_load_test_connection_retries_total \(retries)"))
        #expect(prom.contains("stomp_load_test_reconnection_time_ms_count \(reconnects)"))
        // Seed 001's other names are all there.
        for name in ["messages_sent_total", "messages_received_total", "errors_total", "active_connections",
                     "active_reconnections", "avg_connection_duration_seconds", "message_latency_ms_bucket",
                     "websocket_connect_ms_count", "websocket_duration_seconds_count"] {
            #expect(prom.contains("\nstomp_load_test_\(name)"), "missing stomp_load_test_\(name)")
        }
    }

    /// A drop is an event: the worker starts reconnecting when the connection closes, not at its
    /// next SEND tick. (It used to notice at the next tick, so `reconnection_time` carried up to one
    /// message interval of the generator's own polling, blamed on the server.)
    @Test func aDropStartsTheReconnectAtOnceNotAtTheNextSend() async throws {
        var o = FixtureOptions()
        o.faults = FaultPlan(dropConnectionShare: 1, dropAfter: .milliseconds(200) ... .milliseconds(300))
        let fixture = try await StompChatFixture.start(o)
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let chat = try await StompChatConfiguration(settings: Self.settings(fixture, [
            "MESSAGE_INTERVAL_MS": "3000",   // one SEND per connection: a drop falls between ticks
            "ENABLE_RECONNECT": "true", "MAX_RECONNECT_ATTEMPTS": "20", "INITIAL_BACKOFF_MS": "100", "MAX_BACKOFF_MS": "100",
        ])).prepared()
        let result = try await Self.shortRun("stomp-drop-event", users: 4, hold: .milliseconds(2500), reports: root)
            .run { user in try await chat.runWorker(user) }
        await fixture.stop()

        let m = result.metrics
        let reconnects = m.counters[StompChatMetrics.reconnects] ?? 0
        // Each connection lives 200–300 ms, then back-off 50–150 ms and a loopback connect: several
        // reconnects per worker in the 3 s run (polling at the 3 s tick would allow at most one).
        #expect(reconnects >= 8, "\(reconnects) reconnects")
        let time = try #require(m.trends[StompChatMetrics.reconnectionTime])
        #expect(time.count == reconnects)
        #expect(time.min >= 50_000, "no reconnect is faster than the shortest back-off")
        #expect(time.value(atPercentile: 50) < 1_000_000, "median reconnection \(time.value(atPercentile: 50)) µs: the drop waited for a tick")
    }

    @Test func droppedConnectionsWithoutReconnectBreachConnectionsHeld() async throws {
        var o = FixtureOptions()
        o.faults = FaultPlan(dropConnectionShare: 1, dropAfter: .milliseconds(200) ... .milliseconds(600))
        let fixture = try await StompChatFixture.start(o)
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let chat = try await StompChatConfiguration(settings: Self.settings(fixture)).prepared()
        let sla = [SLA.connectionsHeld(atLeast: 0.99)]
        let result = try await Self.shortRun("stomp-drops", users: 8, hold: .milliseconds(1500), reports: root)
            .run { user in try await chat.runWorker(user) }
        await fixture.stop()

        let held = try #require(result.evaluate(sla).first)
        #expect(!held.passed)
        #expect(held.message == "connections_held rate = 0 %, limit >= 99 %")
        #expect(result.metrics.counters[StompChatMetrics.connectionRetries] ?? 0 == 0, "reconnect is off by default")
        #expect(result.metrics.rates[StompChatMetrics.workerSuccess]?.hits == 0)
    }

    @Test func aDroppedConnectionLosesItsMessagesInFlight() async throws {
        // Echoes take 300 ms and a message leaves every 200 ms, so messages are always in flight
        // when the fixture drops each connection (1.0–1.2 s after accepting it).
        var o = FixtureOptions()
        o.latency = .fixed(.milliseconds(300))
        o.faults = FaultPlan(dropConnectionShare: 1, dropAfter: .milliseconds(1000) ... .milliseconds(1200))
        let fixture = try await StompChatFixture.start(o)
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let chat = try await StompChatConfiguration(settings: Self.settings(fixture, ["MESSAGE_INTERVAL_MS": "200"])).prepared()
        let result = try await Self.shortRun("stomp-lost", users: 2, hold: .milliseconds(2500), reports: root)
            .run { user in try await chat.runWorker(user) }
        await fixture.stop()

        let m = result.metrics
        let sent = m.counters[StompChatMetrics.messagesSent] ?? 0
        let echoed = m.counters[StompChatMetrics.messagesEchoed] ?? 0
        let lost = try #require(m.errors["message_lost"], "\(m.errors); drops \(fixture.droppedConnections), sent \(sent), echoed \(echoed), iterations \(m.counters["iterations"] ?? 0), run \(result.durationSeconds) s")
        #expect(fixture.droppedConnections == 2)
        #expect(sent > echoed, "messages were in flight at the drops")
        #expect(lost.count == sent - echoed, "every message in flight at a drop is lost, counted at the drop")
        #expect(lost.source == .server)
        #expect(lost.examples.first?.contains("connection dropped") == true, "\(lost.examples)")
        #expect((m.counters[StompChatMetrics.messagesPendingAtStop] ?? 0) == 0, "nothing is left pending to the end")
        #expect(m.rates[StompChatMetrics.workerSuccess]?.hits == 0)
    }

    @Test func badTokenIsAServerSideStompError() async throws {
        let fixture = try await StompChatFixture.start()
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let badToken = "not-a-valid-token-0123456789"
        let chat = try await StompChatConfiguration(settings: Self.settings(fixture, ["TOKEN": badToken, "EMAIL": "", "ROOM_ID": "1",
                                                                                       "CREATE_NEW_ROOM": "false"])).prepared()
        let result = try await Self.shortRun("stomp-bad-token", users: 5, hold: .milliseconds(500), reports: root)
            .run { user in try await chat.runWorker(user) }
        await fixture.stop()

        let e = try #require(result.metrics.errors["stomp_error"])
        #expect(e.count == 5, "one failed CONNECT per worker, no reconnect")
        #expect(e.source == .server)
        #expect(!e.examples.isEmpty)
        #expect(e.examples.allSatisfy { $0.hasPrefix("stomp_connect: STOMP ERROR from server: Unauthorized") })
        #expect(e.examples.allSatisfy { !$0.contains(badToken) })
        let log = try String(contentsOfFile: ReportWriter(root: root).directory(for: "stomp-bad-token") + "/load_test.log", encoding: .utf8)
        #expect(log.contains("stomp_error") && !log.contains(badToken))
        #expect(result.metrics.counters[StompChatMetrics.messagesSent] ?? 0 == 0)
    }
}
