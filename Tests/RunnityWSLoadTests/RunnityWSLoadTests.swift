import Foundation
import Testing
import LoadKit
import LoadKitFixtures
import LoadKitTesting

/// Seed 002: the Runnity challenge WebSocket. The default run is a smoke run (150 connections,
/// ≈ 14 s, PING every second) against the embedded fixture, set-up phase included;
/// `LOADKIT_SCALE=full` runs the seed's 500 connections ramped over 300 s and held 20 min, and
/// `RUNNITY_BASE_URL` points the same test at a real server. Serialized: load tests compete for the cores.
@Suite(.serialized) struct RunnityWSLoadTests {

    @Test func challengeConnectionsHeldUnderRamp() async throws {
        let settings = try Settings.load()
        var test = try RunnityPlan.loadTest(settings)
        let ping = RunnityPlan.defaultPingInterval(test, settings)
        let target = try await RunnityTarget.start(settings, userIndices: RunnityPlan.userIndices(test), pingInterval: ping)
        let config = target.config
        let sla = try RunnityPlan.sla(settings, pongTimeout: config.pongTimeout)
        test = test.connections(perUser: 1, descriptorsEach: target.descriptorsPerConnection).sla(sla)
        test.options.environment.merge(config.description) { _, n in n }
        test.options.environment["target"] = target.kind
        if let c = target.challengeId { test.options.environment["challenge_id"] = c }
        let http = config.makeHTTPClient(connections: config.httpConnections)
        let challenge = target.challengeId
        let result: RunResult
        do {
            result = try await test.run { user in await config.runUser(user, http: http, challengeId: challenge) }
        } catch {
            http.shutdown()
            await target.stop()
            throw error
        }
        http.shutdown()
        let joined = target.challengeId.flatMap { Int($0) }.flatMap { target.fixture?.state.participantCount(challengeId: $0) }
        await target.stop()

        result.expect(sla)
        let m = result.metrics
        let users = Int64(test.plannedPeakUsers)
        if config.setup == .create, target.fixture != nil {
            #expect(joined == Int(users), "the set-up joined every member to the new challenge")
            #expect(target.setupReports.first?.succeeded == Int(users))
        }
        #expect(m.counters[RunnityMetrics.logins] ?? 0 >= users)
        #expect(m.counters[RunnityMetrics.enters] ?? 0 >= users)
        #expect(m.counters[RunnityMetrics.connects] ?? 0 >= users)
        let pings = m.counters[RunnityMetrics.pings] ?? 0, pongs = m.counters[RunnityMetrics.pongs] ?? 0
        #expect(pings >= users, "every connection pinged at least once")
        #expect(pongs + Int64(m.errors["pong_timeout"]?.count ?? 0) >= pings - users, "every PING but those in flight at the end got its PONG or a time-out")
        #expect((m.trends[RunnityMetrics.pongLatency]?.count ?? 0) == pongs)
    }

    // MARK: Failures the SLA must catch (each a few seconds, against a shaped fixture)

    static func shortRun(_ name: String, users: Int, hold: Duration, reports: String) -> LoadTest {
        TestRuns.shortRun(name, users: users, hold: hold, reports: reports)
    }

    static func reportRoot() -> String { TestRuns.temporaryReportRoot("runnity-tests") }

    /// Settings for a run against `fixture`, ignoring the caller's environment.
    static func settings(_ fixture: RunnityFixture, _ extra: [String: String] = [:]) -> Settings {
        Settings(["RUNNITY_BASE_URL": fixture.url, "RUNNITY_PING_INTERVAL": "300ms"].merging(extra) { _, n in n })
    }

    /// Set-up (quiet) and a short run against `fixture`.
    static func run(_ name: String, _ fixture: RunnityFixture, users: Int, hold: Duration, reports: String,
                    extra: [String: String] = [:], sla: [Threshold] = []) async throws -> (RunResult, RunnityTarget) {
        let test = shortRun(name, users: users, hold: hold, reports: reports).sla(sla)
        let target = try await RunnityTarget.start(settings(fixture, extra), userIndices: RunnityPlan.userIndices(test),
                                                   pingInterval: .milliseconds(300), progress: false)
        let http = target.config.makeHTTPClient(connections: 16)
        defer { http.shutdown() }
        let config = target.config, challenge = target.challengeId
        let result = try await test.run { user in await config.runUser(user, http: http, challengeId: challenge) }
        return (result, target)
    }

    @Test func injectedLatencyBreachesTheResponseTimeSLA() async throws {
        var o = FixtureOptions()
        o.latency = .fixed(.milliseconds(220))
        let fixture = try await RunnityFixture.start(o)
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let sla = try RunnityPlan.sla(Settings([:]))
        let (result, _) = try await Self.run("runnity-latency", fixture, users: 8, hold: .milliseconds(1500), reports: root, sla: sla)
        await fixture.stop()

        let outcomes = result.evaluate(sla)           // evaluated, not recorded: the breach is the point
        let login = try #require(outcomes.first { $0.metric == RunnityMetrics.testLogin })
        let enter = try #require(outcomes.first { $0.metric == RunnityMetrics.enter })
        #expect(!login.passed && !enter.passed)
        #expect((login.actual ?? 0) >= 220_000)
        #expect(login.message.hasPrefix("test-login p(95) = ") && login.message.hasSuffix("limit < 100 ms"))
        #expect(enter.message.hasSuffix("limit < 200 ms"))
        #expect(outcomes.first { $0.metric == Threshold.errorsMetric }?.passed == true, "slow is not an error")
        #expect(outcomes.first { $0.metric == SLA.connectionsHeldMetric }?.passed == true)
        #expect(outcomes.first { $0.metric == RunnityMetrics.pongLatency }?.passed == true, "220 ms PONGs are within 5 s")
        let dir = ReportWriter(root: root).directory(for: "runnity-latency")
        let csv = try String(contentsOfFile: dir + "/load_test_result.csv", encoding: .utf8)
        #expect(csv.hasPrefix("Metric,Value,Unit\n") && csv.contains("test-login"))
        #expect(FileManager.default.fileExists(atPath: dir + "/load_test.log"))
        #expect(try String(contentsOfFile: dir + "/summary.txt", encoding: .utf8).contains("enter"))
    }

    @Test func expiredTicketsAreInvalidTicketServerErrors() async throws {
        var o = FixtureOptions()
        o.runnity.ticketTTL = .milliseconds(200)
        let fixture = try await RunnityFixture.start(o)
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let sla = try RunnityPlan.sla(Settings([:]))
        let (result, _) = try await Self.run("runnity-ticket", fixture, users: 6, hold: .milliseconds(800), reports: root,
                                             extra: ["RUNNITY_CONNECT_DELAY": "500ms"], sla: sla)
        let rejected = fixture.rejectedTickets
        await fixture.stop()

        let m = result.metrics
        let e = try #require(m.errors["invalid_ticket"])
        #expect(e.count == 6, "one expired ticket per user, no retry")
        #expect(e.source == .server)
        #expect(!e.examples.isEmpty)
        #expect(e.examples.allSatisfy { $0.hasPrefix("websocket_connect: INVALID_TICKET") })
        #expect(rejected == 6)
        #expect((m.trends[RunnityMetrics.ticketAge]?.min ?? 0) >= 500_000)
        let outcomes = result.evaluate(sla)
        #expect(outcomes.first { $0.metric == Threshold.errorsMetric }?.passed == false)
        #expect(outcomes.first { $0.metric == SLA.connectionsHeldMetric }?.message == "connections_held rate = 0 %, limit >= 99.9 %")
        #expect(m.counters[RunnityMetrics.pings] ?? 0 == 0)
        // Tickets never appear in any report file (a redacted `ticket=****` is fine).
        let dir = ReportWriter(root: root).directory(for: "runnity-ticket")
        let log = try String(contentsOfFile: dir + "/load_test.log", encoding: .utf8)
        #expect(log.contains("invalid_ticket"))
        for file in try FileManager.default.contentsOfDirectory(atPath: dir) {
            let text = try String(contentsOfFile: dir + "/" + file, encoding: .utf8)
            #expect(!text.replacingOccurrences(of: "ticket=****", with: "").contains("ticket="), "a ticket in \(file)")
        }
    }

    /// Issue 13: a login endpoint whose 401 envelope echoes the request headers leaks no
    /// credential in any output: the gateway key of `RUNNITY_HEADERS` (opaque, so only the
    /// registered secret values catch it) in the test's issue text, the summary, every report
    /// file, the log and the Prometheus text.
    @Test func loginEchoingTheRequestHeadersLeaksNothing() async throws {
        var o = FixtureOptions()
        o.faults.echoCredentialsPaths = ["/api/v1/auth/test-login"]
        let fixture = try await RunnityFixture.start(o)
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let key = "opaque-gateway-key-\(UInt32.random(in: 1_000_000...UInt32.max))"
        let settings = Self.settings(fixture, ["RUNNITY_HEADERS": "X-Gateway-Key: \(key)", "RUNNITY_SETUP": "none",
                                               "RUNNITY_CHALLENGE_ID": "100"])
        let config = try RunnityConfiguration(settings: settings, baseURL: fixture.url)
        let http = config.makeHTTPClient(connections: 4)
        defer { http.shutdown() }

        let issueTexts = try await OutputChannels.issueTexts("the echoing fixture refuses the login") {
            _ = try await config.login(http, memberId: 1)
        }
        #expect(issueTexts.contains { $0.contains("HTTP 401") && $0.contains("x-gateway-key: \(Secrets.mask)") }, "\(issueTexts)")
        for t in issueTexts { #expect(!t.contains(key), "test output leaked the key: \(t)") }

        let result = try await Self.shortRun("runnity-secret-echo", users: 3, hold: .milliseconds(300), reports: root)
            .settings(settings).run { user in await config.runUser(user, http: http, challengeId: nil) }
        await fixture.stop()
        #expect(result.metrics.errors["http_401"]?.count == 3)
        let outputs = OutputChannels.texts(of: result, reportDirectory: ReportWriter(root: root).directory(for: "runnity-secret-echo"))
        #expect(outputs.count >= 7, "\(outputs.map(\.channel))")
        for (channel, text) in outputs { #expect(!text.contains(key), "\(channel) leaked the key") }
    }

    /// A malformed `wsUrl` in the `enter` answer is the server's fault, not the script's: counted as
    /// `bad_url [server]` at `enter`, the message naming the JSON field, no ticket in any output
    /// (reviewer: it was `bad_url [script]` at `websocket_connect`).
    @Test func malformedWsUrlFromEnterIsTheServersBadURL() async throws {
        var o = FixtureOptions()
        o.runnity.serverId = "ws-1 draining"   // wsUrl `ws://127.0.0.1:<port>/ws/ws-1 draining`: a space in the path
        let fixture = try await RunnityFixture.start(o)
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (result, _) = try await Self.run("runnity-bad-wsurl", fixture, users: 3, hold: .milliseconds(500), reports: root)
        await fixture.stop()

        let m = result.metrics
        let e = try #require(m.errors["bad_url"], "\(m.errors)")
        #expect(e.count == 3)
        #expect(e.source == .server)
        #expect(e.examples.allSatisfy { $0.hasPrefix("enter: enter answered a malformed WebSocket URL at data.wsUrl:") && $0.contains("spaces") },
                "\(e.examples)")
        #expect(m.counters[RunnityMetrics.connects] ?? 0 == 0)
        let dir = ReportWriter(root: root).directory(for: "runnity-bad-wsurl")
        for file in try FileManager.default.contentsOfDirectory(atPath: dir) {
            let text = try String(contentsOfFile: dir + "/" + file, encoding: .utf8)
            #expect(!text.replacingOccurrences(of: "ticket=****", with: "").contains("ticket="), "a ticket in \(file)")
        }
    }

    @Test func droppedConnectionsBreachConnectionsHeld() async throws {
        var o = FixtureOptions()
        // HTTP keep-alive connections are dropped too; the run's HTTP traffic is over by then.
        o.faults = FaultPlan(dropConnectionShare: 0.5, dropAfter: .milliseconds(900) ... .milliseconds(1400))
        let fixture = try await RunnityFixture.start(o)
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let sla = [SLA.connectionsHeld(atLeast: 0.999)]
        let (result, _) = try await Self.run("runnity-drops", fixture, users: 12, hold: .milliseconds(2000), reports: root,
                                             extra: ["RUNNITY_SETUP_CONCURRENCY": "4"], sla: sla)
        let dropped = fixture.droppedConnections
        await fixture.stop()

        #expect(dropped > 0)
        let held = try #require(result.evaluate(sla).first)
        #expect(!held.passed)
        #expect(held.message.hasPrefix("connections_held rate = ") && held.message.hasSuffix("limit >= 99.9 %"))
        let m = result.metrics
        let drops = m.errors.filter { $0.key == "ws_close_1006" || $0.key == "reset" || $0.key == "closed_by_peer" }
        #expect(!drops.isEmpty, "drops are classified: \(m.errors.keys.sorted())")
        #expect(m.errors.values.allSatisfy { $0.source != .loadGenerator })
    }

    @Test func silentConnectionsAreClosedWithTimeout() async throws {
        var o = FixtureOptions()
        o.runnity.idleTimeout = .milliseconds(400)   // the seed's server: 60 s without a message → close TIMEOUT
        let fixture = try await RunnityFixture.start(o)
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let sla = try RunnityPlan.sla(Settings([:]))
        let (result, _) = try await Self.run("runnity-idle", fixture, users: 5, hold: .milliseconds(1500), reports: root,
                                             extra: ["RUNNITY_PING_INTERVAL": "5s"], sla: sla)
        let timedOut = fixture.timedOutSessions
        await fixture.stop()

        #expect(timedOut == 5)
        let m = result.metrics
        let e = try #require(m.errors["ws_close_timeout"])
        #expect(e.count == 5 && e.source == .server)
        #expect(!e.examples.isEmpty)
        #expect(e.examples.allSatisfy { $0.contains("1000 TIMEOUT") })
        let outcomes = result.evaluate(sla)
        #expect(outcomes.first { $0.metric == SLA.connectionsHeldMetric }?.passed == false, "closed before the end of the hold")
        let held = outcomes.first { $0.metric == SLA.connectionsHeldMetric }?.message ?? ""
        #expect(held.hasPrefix("connections_held rate = ") && held.hasSuffix("limit >= 99.9 %"), "\(held)")
        #expect(m.counters[RunnityMetrics.pongs] == 5, "one PING each at connect, answered")
    }

    @Test func csvDataSetReplacesTheSetUpAndRecycles() async throws {
        let fixture = try await RunnityFixture.start()
        let root = Self.reportRoot()
        let csv = root + "-members.csv"
        try "memberId,challengeId\n1,100\n2,100\n3,100\n4,100\n5,100\n".write(toFile: csv, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: root); try? FileManager.default.removeItem(atPath: csv) }
        let sla = try RunnityPlan.sla(Settings([:]))
        let (result, target) = try await Self.run("runnity-csv", fixture, users: 12, hold: .milliseconds(1200), reports: root,
                                                  extra: ["RUNNITY_DATASET": csv], sla: sla)
        await fixture.stop()

        #expect(target.config.setup == .none && target.setupReports.isEmpty, "the CSV replaces the set-up")
        #expect(target.challengeId == nil)
        let breaches = result.evaluate(sla).filter { !$0.passed }.map { $0.message }
        #expect(breaches.isEmpty, "\(breaches)")
        #expect(result.metrics.counters[RunnityMetrics.connects] == 12, "12 users on 5 rows: rows recycled")
        #expect(fixture.state.participantCount(challengeId: 100) == 10_000, "nobody joined: the CSV's challenge is preseeded")
    }

    @Test func shippedCSVDataSetCoversTheSeedMembers() throws {
        let d = try DataSet(contentsOf: FixtureData.runnityMembersCSV.path)
        #expect(d.columns == ["memberId", "challengeId"] && d.count == 10_000)
        let c = try RunnityConfiguration(settings: Settings(["RUNNITY_DATASET": FixtureData.runnityMembersCSV.path,
                                                             "RUNNITY_MEMBER_OFFSET": "500"]), baseURL: "http://127.0.0.1:1")
        #expect(c.setup == .none)
        #expect(try c.assignment(forUser: 0, challengeId: nil) == (501, "100"))
        #expect(try c.assignment(forUser: 9_600, challengeId: nil).memberId == 101, "recycled at end of file")
    }
}

/// The configuration's parsing (no sockets).
@Suite struct RunnityConfigurationTests {
    @Test func defaultsFollowTheSeed() throws {
        let c = try RunnityConfiguration(settings: Settings([:]), baseURL: "http://api.example:8080/")
        #expect(c.baseURL == "http://api.example:8080")
        #expect(c.setup == .create)
        #expect(c.url(c.loginPath, memberId: 7) == "http://api.example:8080/api/v1/auth/test-login?memberId=7")
        #expect(c.url(c.enterPath, challengeId: "100") == "http://api.example:8080/api/v1/challenges/100/enter")
        #expect(c.pongTimeout == .seconds(5) && c.pingInterval == .seconds(30))
        #expect(c.webSocketURL(wsUrl: "wss://domain/ws/ws-1", ticket: "a-b") == "wss://domain/ws/ws-1?ticket=a-b")
        let body = c.renderedChallengeBody
        #expect(body.contains(#""maxParticipants":10000"#) && body.contains(#""distance":"FIVE""#) && !body.contains("{startAt}"))
        #expect(try JSONSerialization.jsonObject(with: Data(body.utf8)) is [String: Any])
        #expect(try c.assignment(forUser: 4, challengeId: "9") == (5, "9"))
    }

    @Test func everythingIsSettable() throws {
        let c = try RunnityConfiguration(settings: Settings([
            "RUNNITY_CHALLENGE_ID": "42", "RUNNITY_SETUP": "join", "RUNNITY_MEMBER_FIRST": "1001", "RUNNITY_MEMBER_COUNT": "10",
            "RUNNITY_MEMBER_OFFSET": "3", "RUNNITY_PING_INTERVAL": "2s", "RUNNITY_PONG_TIMEOUT": "1500",
            "RUNNITY_WS_URL": "ws://edge:9000/ws?x=1", "RUNNITY_TICKET_PARAM": "t", "RUNNITY_HEADERS": "X-Load: 1; Host-Tag: a",
            "RUNNITY_ENTER_PATH": "v2/enter/{challengeId}",
        ]), baseURL: "https://runnity.example")
        #expect(c.setup == .join && c.challengeId == "42")
        #expect(try c.assignment(forUser: 9, challengeId: nil) == (1003, "42"), "(9 + 3) mod 10 = 2 → member 1003")
        #expect(c.pingInterval == .seconds(2) && c.pongTimeout == .milliseconds(1500))
        #expect(c.webSocketURL(wsUrl: "ignored", ticket: "t1") == "ws://edge:9000/ws?x=1&t=t1")
        #expect(c.headers.map(\.0) == ["X-Load", "Host-Tag"])
        #expect(c.tls == .defaultClient)
        let insecure = try RunnityConfiguration(settings: Settings(["RUNNITY_TLS_INSECURE": "true"]), baseURL: "https://staging")
        #expect(!insecure.tls.verifiesPeer)
        #expect(c.url(c.enterPath, challengeId: "42") == "https://runnity.example/v2/enter/42")
    }

    @Test func planScalesFromSmokeToSeedAndShards() throws {
        let smoke = try RunnityPlan.loadTest(Settings([:]))
        #expect(smoke.plannedPeakUsers == 150 && smoke.plannedDuration == .seconds(14))
        #expect(RunnityPlan.defaultPingInterval(smoke, Settings([:])) == .seconds(1))
        let seed = try RunnityPlan.loadTest(Settings(["LOADKIT_SCALE": "seed"]))
        #expect(seed.plannedPeakUsers == 500 && seed.plannedDuration == .seconds(1500), "500 over 300 s, held 20 min")
        #expect(RunnityPlan.defaultPingInterval(seed, Settings([:])) == .seconds(30))
        let big = try RunnityPlan.loadTest(Settings(["LOADKIT_SCALE": "seed", "RUNNITY_CONNECTIONS": "6000", "RUNNITY_HOLD": "30m",
                                                     "LOADKIT_SHARD_INDEX": "1", "LOADKIT_SHARD_COUNT": "12"]))
        #expect(big.plannedPeakUsers == 500, "6,000 over 12 machines")
        #expect(RunnityPlan.userIndices(big).prefix(3) == [1, 13, 25], "run-wide user indices: distinct members per shard")
        #expect(big.plannedDuration == .seconds(2100))
    }

    @Test func badValuesNameTheVariable() throws {
        #expect(throws: ConfigError.self) { try RunnityConfiguration(settings: Settings(["RUNNITY_SETUP": "maybe"]), baseURL: "http://a") }
        #expect(throws: ConfigError.self) { try RunnityConfiguration(settings: Settings(["RUNNITY_SETUP": "none"]), baseURL: "http://a") }
        #expect(throws: ConfigError.self) { try RunnityConfiguration(settings: Settings([:]), baseURL: "a:80") }
        #expect(throws: DataSetError.self) { try RunnityConfiguration(settings: Settings(["RUNNITY_DATASET": "/nope.csv"]), baseURL: "http://a") }
        let e = try #require(throws: ConfigError.self) { try RunnityConfiguration(settings: Settings(["RUNNITY_HEADERS": "secret-no-colon"]), baseURL: "http://a") }
        #expect(!"\(e)".contains("secret"))
    }

    /// Issue 13 (item 4): a path in `RUNNITY_BASE_URL` prefixes every API path; a query is an
    /// error naming the variable.
    @Test func baseURLPathPrefixesTheAPIPaths() throws {
        let c = try RunnityConfiguration(settings: Settings(["RUNNITY_CHALLENGE_ID": "100"]), baseURL: "http://gw.example:8080/runnity/")
        #expect(c.url(c.loginPath, memberId: 7) == "http://gw.example:8080/runnity/api/v1/auth/test-login?memberId=7")
        #expect(c.url(c.enterPath, challengeId: "100") == "http://gw.example:8080/runnity/api/v1/challenges/100/enter")
        let e = #expect(throws: ConfigError.self) {
            try RunnityConfiguration(settings: Settings(["RUNNITY_CHALLENGE_ID": "100"]), baseURL: "http://gw.example/api?x=1")
        }
        #expect(e?.variable == "RUNNITY_BASE_URL" && e?.description.contains("prefix") == true)
    }

    /// Issue 13: hostile numbers (non-finite, 1e30, negative, overflowing) in any of the suite's
    /// numeric or duration settings are ConfigErrors naming the variable — never a trap.
    @Test(arguments: ["RUNNITY_MEMBER_FIRST", "RUNNITY_MEMBER_COUNT", "RUNNITY_MEMBER_OFFSET", "RUNNITY_SETUP_CONCURRENCY",
                      "RUNNITY_HTTP_CONNECTIONS", "RUNNITY_MAX_PARTICIPANTS", "RUNNITY_ADMIN_MEMBER_ID", "RUNNITY_PING_INTERVAL",
                      "RUNNITY_PONG_TIMEOUT", "RUNNITY_CONNECT_TIMEOUT", "RUNNITY_HTTP_TIMEOUT", "RUNNITY_CONNECT_DELAY",
                      "RUNNITY_CONNECTIONS", "RUNNITY_RAMP", "RUNNITY_HOLD", "LOADKIT_RUNNITY_USERS", "LOADKIT_RUNNITY_DURATION",
                      "LOADKIT_RUNNITY_SCALE", "RUNNITY_SLA_LOGIN_P95", "RUNNITY_SLA_ENTER_P95", "RUNNITY_SLA_CONNECT_P95"])
    func hostileNumbersNameTheVariable(key: String) {
        for value in ["inf", "nan", "1e30", "1e300", "-1", "99999999999999999999"] {
            let s = Settings(["RUNNITY_CHALLENGE_ID": "100", key: value])
            do {
                let test = try RunnityPlan.loadTest(s)
                _ = (test.deadline, RunnityPlan.defaultPingInterval(test, s))
                _ = try RunnityPlan.sla(s)
                let c = try RunnityConfiguration(settings: s, baseURL: "http://127.0.0.1:1")
                _ = try c.assignment(forUser: 1_000_000, challengeId: nil)
                Issue.record("\(key)=\(value) was accepted")
            } catch let e as ConfigError {
                #expect(e.variable == key && e.description.contains("expected"), "\(key)=\(value): \(e)")
            } catch {
                Issue.record("\(key)=\(value): not a ConfigError: \(error)")
            }
        }
    }

    @Test func failuresAreClassifiedInTheSeedsTerms() {
        let handshake = WebSocketError(kind: "ws_handshake_401", source: .server,
                                       message: #"WebSocket handshake rejected with HTTP 401 Unauthorized: {"isSuccess":false,"code":401,"message":"INVALID_TICKET: ticket expired"}"#,
                                       httpStatus: 401)
        #expect((RunnityFailure.classify(handshake) as? RunnityFailure)?.kind == "invalid_ticket")
        let close = WebSocketError(kind: "ws_close_1008", source: .server, message: "closed", closeCode: 1008, closeReason: "INVALID_TICKET")
        #expect(RunnityFailure.classify(close).loadKitKind == "invalid_ticket")
        let idle = WebSocketError(kind: "ws_close_1000", source: .server, message: "closed", closeCode: 1000, closeReason: "TIMEOUT")
        #expect(RunnityFailure.classify(idle).loadKitKind == "ws_close_timeout")
        #expect(RunnityFailure.classify(idle).loadKitSource == .server)
        let other = WebSocketError(kind: "ws_close_1006", source: .server, message: "dropped", closeCode: 1006)
        #expect(RunnityFailure.classify(other).loadKitKind == "ws_close_1006")
        #expect(messageType(#"{"type" : "PONG","timestamp":1}"#) == "PONG")
        #expect(messageType("not json") == nil)
    }
}
