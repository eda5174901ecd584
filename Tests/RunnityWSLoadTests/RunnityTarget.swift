import Foundation
import LoadKit
import LoadKitFixtures
import LoadKitTesting

/// The Runnity server a test runs against — `RUNNITY_BASE_URL`, or else the embedded
/// ``RunnityFixture`` on loopback, in this process or as a child process (`loadkit-fixture
/// runnity`) when the planned connections would not fit this process's open-file limit twice
/// over. `RUNNITY_FIXTURE=auto|inprocess|process` overrides the choice. After ``start``, the
/// set-up phase has run and ``challengeId`` is the challenge every member has joined.
struct RunnityTarget: Sendable {
    let config: RunnityConfiguration
    /// The challenge created or joined by the set-up (nil: from the configuration or the CSV).
    let challengeId: String?
    let fixture: RunnityFixture?
    let process: FixtureProcess?
    /// The set-up phases' reports (login, create, join).
    let setupReports: [SetupReport]

    var descriptorsPerConnection: Int { fixture != nil ? 2 : 1 }
    var kind: String { fixture != nil ? "embedded fixture (in process)" : process != nil ? "embedded fixture (child process)" : "external server" }

    /// Starts (or names) the server, reads the configuration and runs the set-up for the users
    /// `userIndices` (run-wide indices this machine will run).
    static func start(_ settings: Settings, userIndices: [Int], pingInterval: Duration,
                      fixtureOptions: FixtureOptions = FixtureOptions(), progress: Bool = true) async throws -> RunnityTarget {
        var fixture: RunnityFixture?
        var process: FixtureProcess?
        let base: String
        if let b = settings.string("RUNNITY_BASE_URL") {
            base = b
        } else {
            let http = try settings.int("RUNNITY_HTTP_CONNECTIONS", in: 1...100_000) ?? 64
            if try TestRuns.fixtureInChildProcess(settings, variable: "RUNNITY_FIXTURE", connections: userIndices.count,
                                                  extraDescriptors: 256 + 2 * http) {
                let p = try await FixtureProcess.launch(.runnity, arguments: ["--members", String(max(10_000, (userIndices.max() ?? 0) + 2))])
                process = p
                base = p.url
            } else {
                let f = try await RunnityFixture.start(fixtureOptions)
                fixture = f
                base = f.url
            }
        }
        do {
            let config = try RunnityConfiguration(settings: settings, baseURL: base, defaultPingInterval: pingInterval)
            let (cid, reports) = try await RunnitySetup.run(config, userIndices: userIndices, progress: progress)
            return RunnityTarget(config: config, challengeId: cid, fixture: fixture, process: process, setupReports: reports)
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

/// The set-up phase (seed 002, "before the test"): log in the admin member, create the challenge
/// with the seed's body, then every member logs in and joins — with bounded concurrency and progress.
enum RunnitySetup {
    /// Runs the configured set-up; returns the challenge created (nil when none was) and the reports.
    static func run(_ c: RunnityConfiguration, userIndices: [Int], progress: Bool) async throws -> (String?, [SetupReport]) {
        guard c.setup != .none else { return (nil, []) }
        let http = c.makeHTTPClient(connections: c.setupConcurrency)
        defer { http.shutdown() }
        let onProgress: (@Sendable (SetupPhase.Progress) -> Void)? = progress ? SetupPhase.stderrProgress : nil
        var reports: [SetupReport] = []
        var challengeId = c.challengeId

        if c.setup == .create {
            let adminMember = try c.adminMemberId ?? c.assignment(forUser: userIndices.min() ?? 0, challengeId: "0").memberId
            let token: String
            if let t = c.adminToken { token = t } else { token = try await c.login(http, memberId: adminMember) }
            let r = try await http.post(c.url(c.createChallengePath), body: Array(c.renderedChallengeBody.utf8),
                                        headers: c.httpHeaders(token: token, extra: c.adminHeaders), timeout: c.httpTimeout)
            let ok = try RunnityEnvelope.require(r, step: "create challenge")
            challengeId = try RunnityEnvelope.field(ok, c.challengeIdJSONPath, step: "create challenge")
        }

        // Every member of this machine's users joins (once each; 409 ALREADY_JOINED is fine).
        var pairs: [(Int, String)] = []
        var seen = Set<String>()
        for i in userIndices {
            let a = try c.assignment(forUser: i, challengeId: challengeId)
            if seen.insert("\(a.memberId)/\(a.challengeId)").inserted { pairs.append(a) }
        }
        let join = await SetupPhase("join", concurrency: c.setupConcurrency, maxFailures: max(10, pairs.count / 20),
                                    onProgress: onProgress).run(pairs.map { Pair(memberId: $0.0, challengeId: $0.1) }) { p in
            let token = try await c.login(http, memberId: p.memberId)
            let r = try await http.post(c.url(c.joinPath, challengeId: p.challengeId), body: Array(c.joinBody.utf8),
                                        headers: c.httpHeaders(token: token), timeout: c.httpTimeout)
            if r.status == 409 && (r.jsonValue(at: "message") ?? "").contains("ALREADY_JOINED") { return }
            _ = try RunnityEnvelope.require(r, step: "join")
        }
        reports.append(join)
        try join.requireSuccess()
        return (c.setup == .create ? challengeId : nil, reports)
    }

    struct Pair: Sendable { var memberId: Int; var challengeId: String }
}

/// The Runnity suite's plan and SLA, from the settings.
enum RunnityPlan {
    /// Smoke size (default `swift test`): at most this many connections …
    static let smokeUsers = 150
    /// … over this long (ramp and hold).
    static let smokeDuration: Duration = .seconds(14)

    /// The seed's plan: `RUNNITY_CONNECTIONS` (500 per machine) ramped over `RUNNITY_RAMP` (300 s),
    /// held `RUNNITY_HOLD` (20 min); scaled by `LOADKIT_SCALE` & co. (suite key `RUNNITY`).
    static func loadTest(_ s: Settings, name: String = "runnity-ws") throws -> LoadTest {
        let users = try s.int("RUNNITY_CONNECTIONS", in: 1...Scale.maxUsers) ?? 500
        let ramp = try s.duration("RUNNITY_RAMP") ?? .seconds(300)
        let hold = try s.duration("RUNNITY_HOLD") ?? .seconds(20 * 60)
        return try LoadTest(name) {
            Stage("ramp-up", to: users, over: ramp)
            Hold(hold)
        }
        .smoke(users: smokeUsers, duration: smokeDuration)
        .scaled(by: s, suite: "RUNNITY")
        .gracefulStop(.seconds(7))   // a PING in flight gets its 5 s for the PONG
    }

    /// The ping interval when `RUNNITY_PING_INTERVAL` is unset: the seed's 30 s times the run's
    /// duration factor, kept within 1…30 s (smoke: 1 s; seed scale: 30 s).
    static func defaultPingInterval(_ test: LoadTest, _ s: Settings) -> Duration {
        let factor = Double(test.options.environment["duration_factor"] ?? "1") ?? 1
        let secs = Swift.min(30, Swift.max(1, 30 * factor))
        return .milliseconds(Int64(secs * 1000))
    }

    /// The users (run-wide indices) this machine runs.
    static func userIndices(_ test: LoadTest) -> [Int] {
        (0..<test.plannedPeakUsers).map { test.options.shard.globalIndex(local: $0) }
    }

    /// The seed's success criteria: connections held (`RUNNITY_SLA_HELD`, 0.999), error rate
    /// (`RUNNITY_SLA_ERROR_RATE`, 0.001), test-login P95 < 100 ms, enter P95 < 200 ms, WebSocket
    /// connect P95 < 1 s (`RUNNITY_SLA_LOGIN_P95`, `…_ENTER_P95`, `…_CONNECT_P95`), every PONG within
    /// the PONG time-out, and proof that work happened.
    static func sla(_ s: Settings, pongTimeout: Duration = .seconds(5)) throws -> [Threshold] {
        let held = try s.double("RUNNITY_SLA_HELD") ?? 0.999
        let errors = try s.double("RUNNITY_SLA_ERROR_RATE") ?? 0.001
        let login = try s.duration("RUNNITY_SLA_LOGIN_P95") ?? .milliseconds(100)
        let enter = try s.duration("RUNNITY_SLA_ENTER_P95") ?? .milliseconds(200)
        let connect = try s.duration("RUNNITY_SLA_CONNECT_P95") ?? .seconds(1)
        return SLA.all {
            SLA.connectionsHeld(atLeast: held)
            SLA.errorRate(below: errors)
            SLA.p95(RunnityMetrics.testLogin, below: login)
            SLA.p95(RunnityMetrics.enter, below: enter)
            SLA.p95(RunnityMetrics.websocketConnect, below: connect)
            SLA.max(RunnityMetrics.pongLatency, below: pongTimeout)
            SLA.count(RunnityMetrics.logins, atLeast: 1)
            SLA.count(RunnityMetrics.enters, atLeast: 1)
            SLA.count(RunnityMetrics.connects, atLeast: 1)
            SLA.count(RunnityMetrics.pings, atLeast: 1)
            SLA.count(RunnityMetrics.pongs, atLeast: 1)
        }
    }
}
