import Foundation
import Testing
import LoadKit
import LoadKitFixtures
import LoadKitTesting

/// Seed 003: the Concert reservation service's four k6 scenarios with their SLAs, and the
/// small/medium/large comparison. Default: smoke-sized runs (≈ 4–5 s each) against embedded
/// `ConcertFixture`s; `LOADKIT_SCALE=full` runs the seed's sizes; `CONCERT_BASE_URL` (or
/// `BASE_URL`) and `CONCERT_TARGETS` point the same tests at real servers. Serialized: load tests
/// compete for the cores.
@Suite(.serialized) struct ConcertHTTPLoadTests {

    /// Settings, configuration and the primary target (health-checked: a clear failure if not ok).
    static func prepare() async throws -> (Settings, ConcertConfiguration, ConcertTarget) {
        let settings = try Settings.load()
        let config = try ConcertConfiguration(settings: settings)
        let target = try await ConcertTarget.primary(settings, config: config)
        do { try await target.client.checkHealth() } catch {
            await target.stop()
            throw error
        }
        return (settings, config, target)
    }

    /// Runs `scenario` on the primary target and records its SLA and consistency checks as failures.
    static func runScenario(_ scenario: ConcertScenario) async throws -> ScenarioRun {
        let (settings, config, target) = try await prepare()
        let run: ScenarioRun
        do { run = try await scenario.run(on: target, settings: settings, config: config) } catch {
            await target.stop()
            throw error
        }
        await target.stop()
        run.result.expect(run.sla)
        for c in run.checks { #expect(c.passed, "\(run.result.name): \(c.name): \(c.message)") }
        let files = ["k6-summary.txt", "summary.json", "consistency.txt"].map { run.directory(root: settings.string("LOADKIT_REPORT_DIR")) + "/" + $0 }
        for f in files { #expect(FileManager.default.fileExists(atPath: f), "report file \(f)") }
        #expect((run.result.metrics.counters[BuiltInMetrics.httpReqs] ?? 0) > 0, "requests were sent")
        return run
    }

    // MARK: The four scenarios

    @Test func queueSpike() async throws {
        let run = try await Self.runScenario(.queueSpike)
        let m = run.result.metrics
        let reqs = m.counters[BuiltInMetrics.httpReqs] ?? 0
        #expect(reqs >= 100, "a spike, not a trickle: \(reqs) requests")
        #expect((m.trends["queue_token"]?.count ?? 0) > 0)
        #expect((m.counters[RunnerMetrics.iterationsDropped] ?? 0) == 0, "the open model kept its schedule")
        let json = try String(contentsOfFile: run.directory(root: Settings.current.string("LOADKIT_REPORT_DIR")) + "/summary.json", encoding: .utf8)
        for key in ["\"http_req_duration\"", "\"p(95)\"", "\"p(99)\"", "\"med\"", "\"http_req_failed\"", "\"http_reqs\""] {
            #expect(json.contains(key), "summary.json has \(key)")
        }
    }

    @Test func reservationStress() async throws {
        let run = try await Self.runScenario(.reservationStress)
        let m = run.result.metrics
        let success = try #require(m.rates[ReservationMetrics.success])
        let conflict = try #require(m.rates[ReservationMetrics.conflict])
        #expect(success.hits > 0 && conflict.hits > 0, "both outcomes happen when users fight over the same seats")
        let seats = try ConcertConfiguration(settings: Settings.current).seats
        #expect(success.hits <= Int64(seats), "never more sales than seats")
        #expect(m.errors["http_409"] == nil, "409 is an expected outcome, not an error")
        #expect(m.rates[ReservationMetrics.soldOnce]?.value == 1)
        if Settings.current.string("CONCERT_BASE_URL") == nil && Settings.current.string("BASE_URL") == nil {
            #expect(run.checks.contains { $0.name == "no seat sold twice (server totals)" }, "the fixture's totals were checked")
        }
    }

    @Test func paymentSoak() async throws {
        let run = try await Self.runScenario(.paymentLoad)
        let m = run.result.metrics
        #expect((m.counters[PaymentMetrics.completed] ?? 0) > 0)
        #expect((m.counters[PaymentMetrics.replayed] ?? 0) > 0, "duplicates with the same key were answered from the first payment")
        #expect(run.checks.count >= 2, "consistency verified after the run: \(run.checks)")
        let drift = try String(contentsOfFile: run.directory(root: Settings.current.string("LOADKIT_REPORT_DIR")) + "/drift.csv", encoding: .utf8)
        let rows = drift.split(separator: "\n")
        #expect(rows.first == "second,http_reqs,http_req_duration_avg_ms,errors")
        #expect(rows.count >= 3, "a per-second series: \(rows.count - 1) seconds")
    }

    @Test func concertEndurance() async throws {
        let run = try await Self.runScenario(.concertEndurance)
        let m = run.result.metrics
        let hits = try #require(m.rates[CatalogueMetrics.cacheHit])
        #expect(hits.total > 100)
        #expect((m.trends[CatalogueMetrics.hitDuration]?.count ?? 0) > 0)
    }

    // MARK: Comparison across named targets

    @Test func comparisonAcrossTargets() async throws {
        let settings = try Settings.load()
        let config = try ConcertConfiguration(settings: settings)
        let specs = try ConcertTargetSpec.list(settings)
        let scenarios = try ConcertScenario.list(settings)
        let root = settings.string("LOADKIT_REPORT_DIR")
        var runs: [ConcertScenario: [ScenarioRun]] = [:]
        var targets: [(name: String, label: String)] = []
        for spec in specs {
            let target = try await ConcertTarget.start(spec, config: config)
            targets.append((target.name, target.label))
            do {
                try await target.client.checkHealth()
                for s in scenarios {
                    let run = try await s.run(on: target, settings: settings, config: config, name: "\(s.reportName)-\(target.name)", reportRoot: root)
                    runs[s, default: []].append(run)
                }
            } catch {
                await target.stop()
                throw error
            }
            await target.stop()
        }
        let text = ConcertComparison.markdown(targets: targets, runs: runs)
        let dir = ReportWriter(root: root).directory(for: "concert-comparison")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/comparison.md"))
        print(text)

        // A column per target, the seed's rows, a value in every cell of the P95 row.
        let lines = text.split(separator: "\n").map(String.init)
        let header = try #require(lines.first { $0.hasPrefix("| Metric |") })
        for spec in specs { #expect(header.contains("| \(spec.name) |") || header.hasSuffix("| \(spec.name) |")) }
        #expect(header.split(separator: "|").count == specs.count + 1)
        let p95 = try #require(lines.first { $0.hasPrefix("| P95 response time (ms) |") })
        #expect(!p95.contains("N/A"), "\(p95)")
        for s in scenarios { #expect(text.contains("## \(s.title)")) }
        #expect(text.contains("## Recommendation"))
        for list in runs.values { for r in list { #expect((r.result.metrics.counters[BuiltInMetrics.httpReqs] ?? 0) > 0, "work on \(r.target)") } }

        // The embedded presets behave like the seed's sizes: small is slower (or sheds load) than large.
        if settings.string("CONCERT_TARGETS") == nil, let qs = runs[.queueSpike], qs.count == 3 {
            let small = qs[0].result, large = qs[2].result
            let slowMedian = try #require(ConcertComparison.ms(small, BuiltInMetrics.httpReqDuration, 50))
            let fastMedian = try #require(ConcertComparison.ms(large, BuiltInMetrics.httpReqDuration, 50))
            let small503 = small.metrics.counters[K6Metrics.status503] ?? 0, large503 = large.metrics.counters[K6Metrics.status503] ?? 0
            // The minimum is immune to noise from other work on the machine (noise only adds):
            // small's service time is 4–8 ms, large's 1–2 ms.
            let slowMin = Double(small.metrics.trends[BuiltInMetrics.httpReqDuration]?.min ?? 0) / 1000
            let fastMin = Double(large.metrics.trends[BuiltInMetrics.httpReqDuration]?.min ?? 0) / 1000
            #expect(slowMedian > fastMedian || slowMin > fastMin || small503 > large503,
                    "small: median \(slowMedian) ms, min \(slowMin) ms, \(small503)×503; large: median \(fastMedian) ms, min \(fastMin) ms, \(large503)×503")
            #expect(slowMin >= 4, "small's fixture adds at least 4 ms: min \(slowMin) ms")
            #expect(small503 >= large503)
        }
    }

    // MARK: Failures the SLA must catch (each ≈ 2–3 s, against a shaped fixture)

    static func reportRoot() -> String { TestRuns.temporaryReportRoot("concert-tests") }

    /// A short constant-rate queue-token run against a fixture started with `options`.
    static func shortQueueRun(_ name: String, options: FixtureOptions, rate: Double, root: String) async throws -> ScenarioRun {
        let settings = Settings([:])
        let config = ConcertConfiguration()
        let target = try await ConcertTarget.embedded(name: name, options: options, config: config)
        let plan = LoadTest(name, rate: .constant(rate, for: .milliseconds(1500)), maxUsers: 200)
            .gracefulStop(.seconds(3)).progress(false)
        let run: ScenarioRun
        do {
            try await target.client.checkHealth()
            run = try await ConcertScenario.queueSpike.run(on: target, settings: settings, config: config, reportRoot: root, plan: plan)
        } catch {
            await target.stop()
            throw error
        }
        await target.stop()
        return run
    }

    @Test func injectedLatencyBreachesTheP95() async throws {
        var o = FixtureOptions()
        o.latency = .fixed(.milliseconds(600))
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let run = try await Self.shortQueueRun("queue-latency", options: o, rate: 20, root: root)

        let outcomes = run.outcomes                       // evaluated, not recorded: the breach is the point
        let p95 = try #require(outcomes.first { $0.metric == BuiltInMetrics.httpReqDuration })
        #expect(!p95.passed)
        #expect((p95.actual ?? 0) >= 600_000)
        #expect(p95.message.hasPrefix("http_req_duration p(95) = "), "\(p95.message)")
        #expect(p95.message.hasSuffix("limit < 500 ms"), "\(p95.message)")
        #expect(outcomes.first { $0.metric == BuiltInMetrics.httpReqFailed }?.passed == true, "slow is not failed")
        #expect((run.result.metrics.counters[BuiltInMetrics.httpReqs] ?? 0) >= 20)
        let dir = run.directory(root: root)
        let k6 = try String(contentsOfFile: dir + "/k6-summary.txt", encoding: .utf8)
        #expect(k6.contains("✗ http_req_duration p(95)"), "\(k6)")
        #expect(k6.contains("http_req_duration") && k6.contains("p(99)=") && k6.contains("http_reqs"))
        #expect(FileManager.default.fileExists(atPath: dir + "/summary.json"))
    }

    @Test func smallCapacityShedsLoadAsServerErrors() async throws {
        var o = FixtureOptions()
        o.capacity = CapacityLimit(maxConcurrentRequests: 2, overflow: .reject)
        o.latency = .fixed(.milliseconds(40))
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let run = try await Self.shortQueueRun("queue-capacity", options: o, rate: 120, root: root)

        let m = run.result.metrics
        let e503 = try #require(m.errors["http_503"])
        #expect(e503.source == .server, "a 503 is the server's failure, not the generator's")
        #expect(e503.count == m.counters[K6Metrics.status503])
        #expect((m.counters[RunnerMetrics.operations] ?? 0) > 0, "some requests were served")
        let failed = try #require(run.outcomes.first { $0.metric == BuiltInMetrics.httpReqFailed })
        #expect(!failed.passed)
        #expect(failed.message.hasPrefix("http_req_failed rate = "), "\(failed.message)")
        #expect(failed.message.hasSuffix("limit < 1 %"), "\(failed.message)")
        #expect(run.outcomes.first { $0.metric == Threshold.errorsMetric }?.passed == false)
        #expect(FileManager.default.fileExists(atPath: run.directory(root: root) + "/k6-summary.txt"))
    }

    @Test func lockTimeoutsAreErrorsAndConflictsAreNot() async throws {
        var o = FixtureOptions()
        o.concert.lockHold = .milliseconds(400)      // a slow critical section …
        o.concert.lockTimeout = .milliseconds(100)   // … and impatient waiters: 500 "Lock acquisition timeout"
        var config = ConcertConfiguration()
        config.seats = 2
        config.thinkTime = .milliseconds(50)
        let root = Self.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let target = try await ConcertTarget.embedded(name: "locks", options: o, config: config)
        let plan = LoadTest("reservation-locks") {
            Stage("ramp", to: 10, over: .milliseconds(200))
            Hold(.milliseconds(1500))
        }.gracefulStop(.seconds(3)).progress(false)
        let run: ScenarioRun
        do { run = try await ConcertScenario.reservationStress.run(on: target, settings: Settings([:]), config: config, reportRoot: root, plan: plan) } catch {
            await target.stop()
            throw error
        }
        await target.stop()

        let m = run.result.metrics
        let e500 = try #require(m.errors["http_500"])
        #expect(e500.source == .server)
        #expect(m.errors["http_409"] == nil, "409 is an expected outcome")
        #expect((m.rates[ReservationMetrics.lockTimeout]?.hits ?? 0) == e500.count)
        #expect((m.rates[ReservationMetrics.success]?.hits ?? 0) == 2, "two seats, two sales")
        let lock = try #require(run.outcomes.first { $0.metric == ReservationMetrics.lockTimeout })
        #expect(!lock.passed)
        #expect(lock.message.hasPrefix("reservation_lock_timeout rate = ") && lock.message.hasSuffix("limit < 1 %"), "\(lock.message)")
        for c in run.checks { #expect(c.passed, "\(c)") }    // contention never sells a seat twice
        let consistency = try String(contentsOfFile: run.directory(root: root) + "/consistency.txt", encoding: .utf8)
        #expect(consistency.contains("✓ no seat sold twice (server totals)"))
    }

    @Test func failingHealthCheckStopsTheRunWithAClearMessage() async throws {
        let fixture = try await ConcertFixture.start()
        var config = ConcertConfiguration()
        config.paths.health = "/nope"
        let client = ConcertClient(baseURL: fixture.url, config: config)
        let error = await #expect(throws: ConcertTargetError.self) { try await client.checkHealth() }
        #expect(error?.message == "health check GET \(fixture.url)/nope answered HTTP 404 "
            + #"'{"statusCode":404,"message":"Cannot GET \/nope","error":"Not Found"}'; expected 200 {"status":"ok"}"#
            || error?.message.hasPrefix("health check GET \(fixture.url)/nope answered HTTP 404") == true, "\(String(describing: error))")
        client.shutdown()
        let port = fixture.port
        await fixture.stop()
        let gone = ConcertClient(baseURL: "http://127.0.0.1:\(port)", config: ConcertConfiguration())
        let refused = await #expect(throws: ConcertTargetError.self) { try await gone.checkHealth() }
        #expect(refused?.message.contains("is the server running?") == true, "\(String(describing: refused))")
        gone.shutdown()
    }

    /// Issue 13: a health endpoint that echoes the credentials it got in a 401 page leaks them in
    /// no output — the thrown error as the test records it, and a run's summary, report files,
    /// log and Prometheus text. The key is opaque (no credential shape): only the registered
    /// secret values of `CONCERT_AUTH_HEADER` can catch it.
    @Test func healthCheckEchoingTheAuthHeaderLeaksItNowhere() async throws {
        var o = FixtureOptions()
        o.faults.echoCredentialsPaths = ["/health"]
        let fixture = try await ConcertFixture.start(o)
        let key = "opaque-concert-key-\(UInt32.random(in: 1_000_000...UInt32.max))"
        let settings = Settings(["CONCERT_AUTH_HEADER": "X-Api-Key: \(key)"])
        let client = ConcertClient(baseURL: fixture.url, config: try ConcertConfiguration(settings: settings))
        defer { client.shutdown() }

        let issueTexts = try await OutputChannels.issueTexts("the echoing fixture refuses the health check") {
            try await client.checkHealth()
        }
        #expect(issueTexts.contains { $0.contains("HTTP 401") && $0.contains("x-api-key: \(Secrets.mask)") }, "\(issueTexts)")
        for t in issueTexts { #expect(!t.contains(key), "test output leaked the key: \(t)") }

        let root = NSTemporaryDirectory() + "loadkit-concert-secrets-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let result = try await LoadTest("concert-secret-echo", burst: 2)
            .settings(settings).reports(true, root: root).progress(false).exclusive(false)
            .run { user in _ = try? await user.measure("health") { try await client.checkHealth() } }
        await fixture.stop()
        #expect(result.metrics.errors["health_check"]?.examples.contains { $0.contains("HTTP 401") } == true)
        let outputs = OutputChannels.texts(of: result, reportDirectory: ReportWriter(root: root).directory(for: "concert-secret-echo"))
        #expect(outputs.count >= 7, "\(outputs.map(\.channel))")
        for (channel, text) in outputs { #expect(!text.contains(key), "\(channel) leaked the key") }
    }

    // MARK: Configuration (no network)

    @Test func configurationFromSettings() throws {
        let s = Settings(["CONCERT_PATH_QUEUE_TOKEN": "/api/v1/queue/tokens", "CONCERT_PATH_RESET": "off",
                          "CONCERT_AUTH_HEADER": "X-Api-Key: s3cr3t", "CONCERT_SEATS": "20", "CONCERT_ENDURANCE": "short",
                          "CONCERT_TARGETS": "small=http://127.0.0.1:3001, large=fixture:large"])
        let c = try ConcertConfiguration(settings: s)
        #expect(c.paths.queueToken == "/api/v1/queue/tokens")
        #expect(c.paths.reset == nil && c.paths.totals == "/admin/totals")
        #expect(c.authHeader?.name == "X-Api-Key" && c.authHeader?.value == "s3cr3t")
        #expect(c.seats == 20 && c.enduranceShort)
        #expect(try ConcertTargetSpec.list(s) == [ConcertTargetSpec(name: "small", url: "http://127.0.0.1:3001"),
                                                  ConcertTargetSpec(name: "large", url: "fixture:large")])
        #expect(try ConcertTargetSpec.list(Settings([:])).map(\.name) == ["small", "medium", "large"])
        #expect(throws: ConfigError.self) { try ConcertTargetSpec.list(Settings(["CONCERT_TARGETS": "small"])) }
        let bad = #expect(throws: ConfigError.self) { try ConcertConfiguration(settings: Settings(["CONCERT_AUTH_HEADER": "token-without-name"])) }
        #expect(bad?.description.contains("token-without-name") == false, "a secret never appears in an error")
        #expect(try ConcertScenario.list(Settings(["CONCERT_COMPARE_SCENARIOS": "all"])) == ConcertScenario.allCases)
        #expect(try ConcertScenario.list(Settings(["CONCERT_COMPARE_SCENARIOS": "1,payment-load"])) == [.queueSpike, .paymentLoad])

        // Seed scale: the scenarios as the seed wrote them (endurance 30 min, or 5 min short form).
        let seed = Settings(["LOADKIT_SCALE": "seed"])
        #expect(try ConcertScenario.concertEndurance.loadTest(seed, config: ConcertConfiguration()).plannedDuration == .seconds(30 * 60))
        #expect(try ConcertScenario.concertEndurance.loadTest(seed, config: c).plannedDuration == .seconds(5 * 60))
        #expect(try ConcertScenario.paymentLoad.loadTest(seed, config: c).plannedDuration == .seconds(5 * 60))
        #expect(try ConcertScenario.reservationStress.loadTest(seed, config: c).plannedPeakUsers == 200)
        #expect(try ConcertScenario.queueSpike.loadTest(seed, config: c).peakUsers == 200)
        // Smoke (default): a few seconds each.
        for sc in ConcertScenario.allCases {
            #expect(try sc.loadTest(Settings([:]), config: c).plannedDuration <= .seconds(5))
        }
    }

    /// Issue 13 (item 4): a path in the base URL prefixes every API path (the health check goes
    /// to `<base>/health`); a query is an error naming the variable.
    @Test func baseURLPathPrefixesTheAPIPaths() async throws {
        let fixture = try await ConcertFixture.start()
        let target = try await ConcertTarget.primary(Settings(["CONCERT_BASE_URL": fixture.url + "/concert-api/"]), config: ConcertConfiguration())
        let e = await #expect(throws: ConcertTargetError.self) { try await target.client.checkHealth() }
        #expect(e?.message.hasPrefix("health check GET \(fixture.url)/concert-api/health answered HTTP 404") == true, "\(String(describing: e))")
        await target.stop()
        await fixture.stop()
        for (key, url) in [("BASE_URL", "http://h:1/x?y=1"), ("CONCERT_BASE_URL", "h:1"), ("CONCERT_BASE_URL", "ftp://h:1")] {
            let bad = await #expect(throws: ConfigError.self) { _ = try await ConcertTarget.primary(Settings([key: url]), config: ConcertConfiguration()) }
            #expect(bad?.variable == key, "\(key)=\(url)")
        }
    }

    /// Issue 13: hostile numbers (non-finite, 1e30, negative, overflowing) in any of the suite's
    /// numeric or duration settings are ConfigErrors naming the variable — never a trap.
    @Test(arguments: ["CONCERT_SEATS", "CONCERT_PAYMENT_AMOUNT", "CONCERT_PAYMENT_DUPLICATES", "CONCERT_MAX_CONNECTIONS",
                      "CONCERT_THINK_TIME", "CONCERT_REQUEST_TIMEOUT", "LOADKIT_CONCERT_USERS", "LOADKIT_CONCERT_DURATION",
                      "LOADKIT_CONCERT_SCALE", "CONCERT_SLA_QUEUE_P95", "CONCERT_SLA_RESERVATION_P95", "CONCERT_SLA_PAYMENT_P95",
                      "CONCERT_SLA_HIT_P95"])
    func hostileNumbersNameTheVariable(key: String) {
        for value in ["inf", "nan", "1e30", "1e300", "-1", "99999999999999999999"] {
            let s = Settings([key: value])
            do {
                let c = try ConcertConfiguration(settings: s)
                for sc in ConcertScenario.allCases {
                    let t = try sc.loadTest(s, config: c)
                    _ = (t.deadline, t.peakUsers, try sc.sla(s))
                }
                Issue.record("\(key)=\(value) was accepted")
            } catch let e as ConfigError {
                #expect(e.variable == key && e.description.contains("expected"), "\(key)=\(value): \(e)")
            } catch {
                Issue.record("\(key)=\(value): not a ConfigError: \(error)")
            }
        }
    }

    @Test func seatLedgerFlagsADoubleSale() {
        let ledger = SeatLedger()
        #expect(ledger.sell("s1") && ledger.sell("s2"))
        #expect(!ledger.sell("s1"))
        #expect(ledger.summary.doubleSold == ["s1"] && ledger.summary.reservations == 3)
    }
}
