import Foundation
import LoadKit
import LoadKitFixtures
import LoadKitTesting

/// The chat server a test runs against: the one named by `SERVER_URL`, or else the embedded
/// ``StompChatFixture`` on loopback — in this process, or as a child process (`loadkit-fixture
/// stomp`) when the planned connections would not fit this process's open-file limit twice over
/// (client and server end each cost a descriptor). `STOMP_FIXTURE=inprocess|process|auto`
/// overrides the choice; a child fixture also reads `LOADKIT_FIXTURE_*` variables.
struct StompChatTarget {
    /// The configuration with token and room resolved.
    let chat: StompChatConfiguration
    /// The in-process fixture, when one runs.
    let fixture: StompChatFixture?
    /// The child fixture process, when one runs.
    let process: FixtureProcess?

    /// Descriptors each connection costs this process.
    var descriptorsPerConnection: Int { fixture != nil ? 2 : 1 }

    /// What the target is, for reports.
    var kind: String { fixture != nil ? "embedded fixture (in process)" : process != nil ? "embedded fixture (child process)" : "external server" }

    /// Starts (or names) the target for `settings` and a run of `plannedPeak` connections.
    static func start(_ settings: Settings, plannedPeak: Int, fixtureOptions: FixtureOptions = FixtureOptions()) async throws -> StompChatTarget {
        if settings.string("SERVER_URL") != nil {
            let chat = try await StompChatConfiguration(settings: settings).prepared()
            return StompChatTarget(chat: chat, fixture: nil, process: nil)
        }
        let useProcess = try TestRuns.fixtureInChildProcess(settings, variable: "STOMP_FIXTURE", connections: plannedPeak)

        var fixture: StompChatFixture?
        var process: FixtureProcess?
        let serverURL: String
        if useProcess {
            let p = try await FixtureProcess.launch(.stomp, arguments: ["--users", String(max(10_000, plannedPeak))])
            process = p
            serverURL = "127.0.0.1:\(p.port)"
        } else {
            let f = try await StompChatFixture.start(fixtureOptions)
            fixture = f
            serverURL = f.serverURL
        }
        // Fixture defaults: log in over HTTP as the seed does, and create a group room; anything
        // set in the environment wins.
        var defaults = ["SERVER_URL": serverURL]
        if settings.string("TOKEN") == nil && settings.string("EMAIL") == nil {
            defaults["EMAIL"] = "test@test.com"
            defaults["PASSWORD"] = "password123!"
        }
        if settings.string("ROOM_ID") == nil && settings.string("CREATE_NEW_ROOM") == nil {
            defaults["CREATE_NEW_ROOM"] = "true"
            defaults["MEMBER_IDS"] = settings.string("MEMBER_IDS") ?? "1,2,3"
        }
        do {
            // `defaults` holds only keys the settings leave unset.
            let chat = try await StompChatConfiguration(settings: settings.with(defaults)).prepared()
            return StompChatTarget(chat: chat, fixture: fixture, process: process)
        } catch {
            await fixture?.stop()
            process?.terminate()
            throw error
        }
    }

    /// Stops whatever this target started.
    func stop() async {
        await fixture?.stop()
        process?.terminate()
    }
}

/// The STOMP suite's plan and SLA, from the settings.
enum StompChatPlan {
    /// Smoke size (the default `swift test` run): at most this many workers …
    static let smokeUsers = 60
    /// … over this long (three ramp stages and the hold).
    static let smokeDuration: Duration = .seconds(12)

    /// The seed's stages (`LOADKIT_STOMP_PROFILE`) plus a hold (`STOMP_HOLD`, default 10 s at seed
    /// scale), scaled by `LOADKIT_SCALE` & co. (suite key `STOMP`).
    static func loadTest(_ settings: Settings, name: String = "stomp-chat") throws -> LoadTest {
        let profile = try StompChatProfile(settings: settings)
        let hold = try settings.duration("STOMP_HOLD") ?? .seconds(10)
        var stages = profile.stages
        if hold > .zero { stages.append(Hold(hold).stage) }
        return try LoadTest(name, stages: stages)
            .smoke(users: smokeUsers, duration: smokeDuration)
            .scaled(by: settings, suite: "STOMP")
            .prometheus(.stompChat)   // seed 001's stomp_load_test_… names
    }

    /// P95 message RTT limit: `STOMP_SLA_P95_MS`, default 250 ms in a debug build, 200 ms in release.
    static func p95Limit(_ settings: Settings) throws -> Duration {
        try settings.duration("STOMP_SLA_P95_MS") ?? (BuildMode.name == "debug" ? .milliseconds(250) : .milliseconds(200))
    }

    /// The suite's SLA: RTT P95, error rate (`STOMP_SLA_ERROR_RATE`, 0.001), worker success rate
    /// and connections held (`STOMP_SLA_SUCCESS`, `STOMP_SLA_HELD`, 0.99), and proof of work.
    static func sla(_ settings: Settings) throws -> [Threshold] {
        let held = try settings.double("STOMP_SLA_HELD") ?? 0.99
        let p95 = try p95Limit(settings)
        let errors = try settings.double("STOMP_SLA_ERROR_RATE") ?? 0.001
        let success = try settings.double("STOMP_SLA_SUCCESS") ?? 0.99
        return SLA.all {
            SLA.p95(StompChatMetrics.messageLatency, below: p95)
            SLA.errorRate(below: errors)
            SLA.rate(StompChatMetrics.workerSuccess, atLeast: success)
            SLA.connectionsHeld(atLeast: held)
            SLA.count(StompChatMetrics.messagesSent, atLeast: 1)
            SLA.count(StompChatMetrics.messagesReceived, atLeast: 1)
        }
    }
}
