import Foundation
import Synchronization
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

@Suite struct SLATests {
    static func result(latencyMillis: [Int64] = [], operations: Int64 = 0, errors: Int64 = 0,
                       held: RateTally? = nil, duration: Double = 10) -> RunResult {
        var m = MetricsSnapshot()
        if !latencyMillis.isEmpty {
            var h = Histogram()
            for v in latencyMillis { h.record(v * 1000) }
            m.trends["message_latency"] = h
        }
        if operations > 0 { m.counters["operations"] = operations }
        if errors > 0 { m.errors["refused"] = ErrorTally(source: .server, count: errors, examples: ["connect: refused"]) }
        if let held { m.rates["connections_held"] = held }
        return RunResult(name: "t", startedAtMillis: 0, durationSeconds: duration, metrics: m)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var threshold: Threshold
        var passes: Bool
        var message: String
        var testDescription: String { threshold.description }
    }

    // 100 samples 1…100 ms; 999 operations + 1 error; held 999/1000; 10 s. A metric the run never
    // recorded is named as such (a typo must not read like a quiet run).
    static let cases: [Case] = [
        Case(threshold: SLA.p95("message_latency", below: .milliseconds(200)), passes: true,
             message: "message_latency p(95) = 95.04 ms, limit < 200 ms"),
        Case(threshold: SLA.p95("message_latency", below: .milliseconds(50)), passes: false,
             message: "message_latency p(95) = 95.04 ms, limit < 50 ms"),
        Case(threshold: SLA.percentile(99, "message_latency", below: .milliseconds(99)), passes: false,
             message: "message_latency p(99) = 99.01 ms, limit < 99 ms"),
        Case(threshold: SLA.avg("message_latency", below: .milliseconds(51)), passes: true,
             message: "message_latency avg = 50.5 ms, limit < 51 ms"),
        Case(threshold: SLA.max("message_latency", below: .milliseconds(100)), passes: false,
             message: "message_latency max = 100 ms, limit < 100 ms"),
        Case(threshold: SLA.med("message_latency", below: .milliseconds(60)), passes: true,
             message: "message_latency med = 50.02 ms, limit < 60 ms"),
        Case(threshold: SLA.errorRate(below: 0.001), passes: false,
             message: "errors rate = 0.1 %, limit < 0.1 %"),
        Case(threshold: SLA.errorRate(below: 0.01), passes: true,
             message: "errors rate = 0.1 %, limit < 1 %"),
        Case(threshold: SLA.connectionsHeld(atLeast: 0.999), passes: true,
             message: "connections_held rate = 99.9 %, limit >= 99.9 %"),
        Case(threshold: SLA.count("operations", atLeast: 1000), passes: false,
             message: "operations count = 999, limit >= 1000"),
        Case(threshold: SLA.count("messages_received", atLeast: 1), passes: false,
             message: "messages_received count = 0, limit >= 1 (no metric named 'messages_received' was recorded; recorded: connections_held, message_latency, operations)"),
        Case(threshold: SLA.throughput("operations", atLeast: 99), passes: true,
             message: "operations per_second = 99.9/s, limit >= 99/s"),
        Case(threshold: SLA.rate("cache_hit", atLeast: 0.95), passes: false,
             message: "cache_hit rate: no samples, limit >= 95 % (no metric named 'cache_hit' was recorded; recorded: connections_held, message_latency, operations)"),
        Case(threshold: SLA.p95("message_latncy", below: .seconds(1)), passes: false,
             message: "message_latncy p(95): no samples, limit < 1000 ms (no metric named 'message_latncy' was recorded; did you mean 'message_latency'?; recorded: connections_held, message_latency, operations)"),
        Case(threshold: SLA.p95("websocket_connect", below: .seconds(1)), passes: false,
             message: "websocket_connect p(95): no samples, limit < 1000 ms (no metric named 'websocket_connect' was recorded; recorded: connections_held, message_latency, operations)"),
    ]

    @Test(arguments: cases)
    func evaluationTable(_ c: Case) {
        let r = Self.result(latencyMillis: Array(1...100), operations: 999, errors: 1,
                            held: RateTally(hits: 999, total: 1000))
        let o = c.threshold.evaluate(r)
        #expect(o.passed == c.passes)
        #expect(o.message == c.message)
    }

    @Test func noWorkFails() {
        let outcomes = RunResult(name: "idle", startedAtMillis: 0, durationSeconds: 5, metrics: MetricsSnapshot())
            .evaluate { SLA.count("messages_received", atLeast: 0) }
        #expect(outcomes.count == 2)
        #expect(outcomes[0] == .noWork && !outcomes[0].passed)
        #expect(outcomes[0].message.hasPrefix("no work was done"))
        #expect(outcomes[1].passed)
        // Even with no thresholds at all.
        #expect(SLA.expect(Self.result(), [], reporter: FailureReporter { _, _ in }) == [.noWork])
    }

    @Test func expectRecordsOneFailurePerBreachAtCallerLocation() {
        let seen = Mutex<[(String, UInt)]>([])
        let reporter = FailureReporter { msg, loc in seen.withLock { $0.append((msg, loc.line)) } }
        let r = Self.result(latencyMillis: [300, 400, 500], operations: 10)
        let line: UInt = #line + 1
        let outcomes = r.expect(reporter: reporter) {
            SLA.p95("message_latency", below: .milliseconds(200))
            SLA.errorRate(below: 0.001)
            if true { SLA.max("message_latency", below: .seconds(1)) }
            for p in [90.0, 99.0] { SLA.percentile(p, "message_latency", below: .milliseconds(100)) }
        }
        #expect(outcomes.map(\.passed) == [false, true, true, false, false])
        let got = seen.withLock { $0 }
        #expect(got.count == 3)
        #expect(got.allSatisfy { $0.1 == line })
        #expect(got[0].0 == "SLA breached in 't': message_latency p(95) = 500 ms, limit < 200 ms")
    }

    /// A held-out user's CI failure said only "p(95) = …, limit < …": on which side the time went
    /// was in the summary alone. A breached latency now carries it into the failure.
    @Test func aBreachedLatencyFailureSaysOnWhichSideTheTimeWent() {
        let seen = Mutex<[String]>([])
        let reporter = FailureReporter { msg, _ in seen.withLock { $0.append(msg) } }
        var r = Self.result(latencyMillis: [300, 400, 500], operations: 10)
        r.environment["generator_cpus"] = "2"
        r.generator = [GeneratorSample(second: 1, cpuPercent: 35, rssBytes: 1 << 20, openDescriptors: 20)]
        _ = r.expect(reporter: reporter) {
            SLA.p95("message_latency", below: .milliseconds(200))
            SLA.errorRate(below: 0.001)
        }
        #expect(seen.withLock { $0 } == ["SLA breached in 't': message_latency p(95) = 500 ms, limit < 200 ms — latency breached with the "
            + "load generator not saturated (CPU max 35 %; saturated at 180 % for 2 cores): look at the server's side (or the network)"])
        // The generator's side, without the summary's ⚠ mark.
        seen.withLock { $0 = [] }
        r.generator = [GeneratorSample(second: 1, cpuPercent: 190, rssBytes: 1 << 20, openDescriptors: 20)]
        _ = r.expect(reporter: reporter) { SLA.p95("message_latency", below: .milliseconds(200)) }
        #expect(seen.withLock { $0 } == ["SLA breached in 't': message_latency p(95) = 500 ms, limit < 200 ms — latency breached while the "
            + "load generator was saturated (CPU max 190 %; saturated at 180 % for 2 cores): part of the time may be the generator's "
            + "own — fewer users per process, more cores, or shards"])
        // Without generator figures there is nothing to say: the message is as before.
        seen.withLock { $0 = [] }
        _ = Self.result(latencyMillis: [300, 400, 500], operations: 10).expect(reporter: reporter) { SLA.p95("message_latency", below: .milliseconds(200)) }
        #expect(seen.withLock { $0 } == ["SLA breached in 't': message_latency p(95) = 500 ms, limit < 200 ms"])
    }

    /// A held-out user's CI failure read `http_req_failed rate = 50 %, limit < 1 %` — nothing of
    /// whether the server answered 500 or refused — and a wrong URL read as a misspelt metric
    /// (`http_req_failed rate: no samples`). Such breaches now name the failures behind them.
    @Test func aBreachedFailureRateOrAnUnsampledMetricNamesTheFailures() {
        let seen = Mutex<[String]>([])
        let reporter = FailureReporter { msg, _ in seen.withLock { $0.append(msg) } }
        var m = MetricsSnapshot()
        m.counters["http_reqs"] = 20
        m.rates["http_req_failed"] = RateTally(hits: 10, total: 20)
        m.trends["http_req_duration"] = { var h = Histogram(); h.record(1000); return h }()
        m.errors["http_500"] = ErrorTally(source: .server, count: 9, examples: ["GET http://h/fail answered HTTP 500 (server), empty body"])
        m.errors["refused"] = ErrorTally(source: .server, count: 1, examples: ["GET /x: connection refused by h:1 (server)"])
        let r = RunResult(name: "t", startedAtMillis: 0, durationSeconds: 10, metrics: m)
        _ = r.expect(reporter: reporter) {
            SLA.rate("http_req_failed", below: 0.01)
            SLA.errorRate(below: 0.01)
            SLA.p95("http_req_duration", below: .milliseconds(100))   // holds: says nothing
            SLA.count("http_reqs", atLeast: 100)                      // not about failures: as before
        }
        let cause = " — failures: http_500 [server] 9, refused [server] 1 — first: GET http://h/fail answered HTTP 500 (server), empty body"
        #expect(seen.withLock { $0 } == [
            "SLA breached in 't': http_req_failed rate = 50 %, limit < 1 %" + cause,
            "SLA breached in 't': errors rate = 100 %, limit < 1 %" + cause,
            "SLA breached in 't': http_reqs count = 20, limit >= 100",
        ])
        // Every iteration failed before its first request (a wrong URL): the metric the SLA
        // names was never recorded, and the failure says why.
        seen.withLock { $0 = [] }
        var bad = MetricsSnapshot()
        bad.counters["iterations"] = 40
        bad.counters["iterations_failed"] = 40
        bad.errors["bad_url"] = ErrorTally(source: .script, count: 40, examples: ["iteration: bad URL 'http://h:99999/': invalid port '99999' (1-65535)"])
        _ = RunResult(name: "t", startedAtMillis: 0, durationSeconds: 10, metrics: bad).expect(reporter: reporter) {
            SLA.rate("http_req_failed", below: 0.01)
        }
        #expect(seen.withLock { $0 } == ["SLA breached in 't': http_req_failed rate: no samples, limit < 1 % (no metric named "
            + "'http_req_failed' was recorded; recorded: iterations, iterations_failed) — failures: bad_url [script] 40 — first: "
            + "iteration: bad URL 'http://h:99999/': invalid port '99999' (1-65535)"])
    }

    /// A held-out user's every request timed out, and `SLA.p95("http_req_duration", …)` read
    /// like a typo: `no samples … (no metric named 'http_req_duration' was recorded; recorded:
    /// data_received, …)`. A built-in trend that times answered requests only says that the
    /// requests were made and failed.
    @Test func aLatencyOfRequestsThatAllFailedSaysSoNotThatTheMetricIsUnknown() async throws {
        let server = try HTTPServer { request in
            if request.path == "/fail" { return .text("no", status: 500) }
            try? await Task.sleep(for: .seconds(2))   // never in time
            return .text("late")
        }
        defer { server.stop() }
        var configuration = HTTPClient.Configuration()
        configuration.defaultTimeout = .milliseconds(50)
        let client = HTTPClient(configuration: configuration)
        defer { client.shutdown() }
        let base = "http://127.0.0.1:\(server.port)"
        func run(_ name: String, _ script: @escaping @Sendable () async -> Void) async throws -> RunResult {
            try await LoadTest(name, burst: 6).progress(false).reports(false).settings(Settings([:])).exclusive(false)
                .run { _ in await script() }
        }

        // Every request timed out: the user's run.
        let timedOut = try await run("all-timed-out") {
            _ = try? await client.get(base + "/hang")
            _ = try? await client.get(base + "/hang", name: "hang")
        }
        #expect(timedOut.metrics.counters["http_reqs"] == 12 && timedOut.metrics.errors["timeout"]?.count == 12,
                "\(timedOut.metrics.counters) \(timedOut.metrics.errors)")
        let seen = Mutex<[String]>([])
        let reporter = FailureReporter { msg, _ in seen.withLock { $0.append(msg) } }
        let outcomes = timedOut.expect(reporter: reporter) {
            SLA.p95("http_req_duration", below: .milliseconds(500))
            SLA.p95("http_req_waiting", below: .milliseconds(500))
            SLA.p95("http_req_duration", tag: "name:hang", below: .milliseconds(500))
            SLA.p95("http_req_durration", below: .milliseconds(500))   // a typo: as before
        }
        let messages: [String] = [
            "http_req_duration p(95): no samples — all 12 requests failed (timeout [server] 12), and http_req_duration "
                + "times answered requests only, limit < 500 ms",
            "http_req_waiting p(95): no samples — all 12 requests failed (timeout [server] 12), and http_req_waiting "
                + "times answered requests only, limit < 500 ms",
            "http_req_duration{name:hang} p(95): no samples — all 6 requests named 'hang' failed, and "
                + "http_req_duration{name:hang} times answered requests only, limit < 500 ms",
        ]
        #expect(Array(outcomes.map(\.message).prefix(3)) == messages, "\(outcomes.map(\.message))")
        #expect(outcomes[3].message.hasPrefix("http_req_durration p(95): no samples, limit < 500 ms (no metric named "
                                              + "'http_req_durration' was recorded"), "\(outcomes[3].message)")
        let issues = seen.withLock { $0 }
        #expect(issues.count == 4 && issues.prefix(3).allSatisfy { !$0.contains("no metric named") }, "\(issues)")
        #expect(issues.first?.hasPrefix("SLA breached in 'all-timed-out': http_req_duration p(95): no samples — all 12 "
                                         + "requests failed (timeout [server] 12)") == true, "\(issues)")

        // Every request answered 500: only the expected answers' variant has no samples. A client
        // with the default time-out: 50 ms is too short for an answer beside the parallel test set.
        let patient = HTTPClient()
        defer { patient.shutdown() }
        let refused = try await run("all-500") { _ = try? await patient.get(base + "/fail") }
        let expected = refused.evaluate([SLA.p95("http_req_duration{expected_response:true}", below: .milliseconds(500))])
        let expectedMessage = "http_req_duration{expected_response:true} p(95): no samples — all 6 requests failed "
            + "(http_500 [server] 6), and http_req_duration{expected_response:true} times answers with an expected status "
            + "only, limit < 500 ms"
        #expect(expected.map(\.message) == [expectedMessage])
    }

    @Test func expectRecordsSwiftTestingIssues() {
        let r = Self.result(latencyMillis: [300], operations: 1)
        withKnownIssue {
            let o = SLA.expect(r, [SLA.p95("message_latency", below: .milliseconds(200))])
            #expect(o.count == 1 && !o[0].passed)
        }
    }

    @Test func abortBreaches() {
        let r = Self.result(latencyMillis: [300], operations: 1)
        let ts = SLA.all {
            SLA.p95("message_latency", below: .milliseconds(200), abortOnFail: true)
            SLA.p95("message_latency", below: .milliseconds(100))
            SLA.p95("other", below: .milliseconds(100)).abortingOnFail()
        }
        let b = ts.breachesToAbort(r.metrics, elapsedSeconds: 1)
        #expect(b.count == 1 && b[0].threshold == ts[0])
    }

    /// Each kind of interruption through `expect()`: the type decides, not the text. An abort
    /// threshold breached in the SLA judged fails as itself, once; every other cut — that
    /// threshold left out or passing on the whole run, the abort check, the cap, cancellation,
    /// a signal, a reason set by hand — fails the run saying why, with the reports' text.
    @Test func everyKindOfInterruptionThroughExpect() {
        let p95 = SLA.p95("message_latency", below: .milliseconds(200), abortOnFail: true)
        let slow = Self.result(latencyMillis: [300, 400], operations: 2), fast = Self.result(latencyMillis: [5], operations: 1)
        let aborted = Interruption.abortOnThreshold(threshold: p95, message: "message_latency p(95) = 400 ms, limit < 200 ms")
        let cases: [(Interruption, RunResult, [Threshold], cut: String?)] = [
            (aborted, slow, [p95], nil),
            (aborted, slow, [], "abort on threshold: message_latency p(95) = 400 ms, limit < 200 ms"),
            (aborted, fast, [p95], "abort on threshold: message_latency p(95) = 400 ms, limit < 200 ms"),
            (.abortCheck(reason: "errors > 3"), fast, [], "abort check: errors > 3"),
            (.deadline(capSeconds: 0.3), fast, [], "deadline: the run reached its cap of 0.3 s"),
            (.cancelled, fast, [], "cancelled"),
            (.signal(name: "SIGTERM"), fast, [], "SIGTERM"),
            (.other(text: "abort on threshold: by hand"), fast, [], "abort on threshold: by hand"),
        ]
        for (interruption, result, sla, cut) in cases {
            var r = result
            r.interruptedBy = interruption
            #expect(r.interruption == interruption.text)
            let failures = Mutex<[String]>([])
            SLA.expect(r, sla, reporter: FailureReporter { m, _ in failures.withLock { $0.append(m) } })
            let recorded = failures.withLock { $0 }
            let cuts = recorded.filter { $0.contains("was cut short") }
            if let cut {
                #expect(cuts.count == 1 && cuts[0].hasPrefix("'t' was cut short (\(cut)) after "), "\(interruption): \(recorded)")
                #expect(cuts.first?.contains("LOADKIT_MAX_DURATION") == (interruption == .deadline(capSeconds: 0.3)), "\(cuts)")
            } else {
                #expect(cuts.isEmpty && recorded.count == 1 && recorded[0].hasPrefix("SLA breached"), "\(recorded)")
            }
        }
    }

    /// The type survives `result.json` (what shards merge from) and the merge: a merged run an
    /// abort threshold stopped still fails as that threshold, not as a cut.
    @Test func anInterruptionSurvivesResultJSONAndTheMerge() throws {
        let p95 = SLA.p95("message_latency", below: .milliseconds(200), abortOnFail: true)
        var shard = Self.result(latencyMillis: [300], operations: 1)
        shard.interruptedBy = .abortOnThreshold(threshold: p95, message: "p95 over")
        let back = try JSONDecoder().decode(RunResult.self, from: shard.jsonData())
        #expect(back.interruptedBy == shard.interruptedBy)
        let merged = try #require(RunResult.merged([Self.result(latencyMillis: [1], operations: 1), back]))
        #expect(merged.interruptedBy == shard.interruptedBy && merged.interruption == "abort on threshold: p95 over")
        let failures = Mutex<[String]>([])
        SLA.expect(merged, [p95], reporter: FailureReporter { m, _ in failures.withLock { $0.append(m) } })
        #expect(failures.withLock { $0 }.count == 1 && failures.withLock { $0 }.first?.hasPrefix("SLA breached") == true)
    }

    @Test func thresholdsAreCodableData() throws {
        let ts = SLA.stompChat + SLA.runnity + SLA.http() + SLA.preset(.strict, metric: "x")
            + [SLA.throughput("http_reqs", atLeast: 10).abortingOnFail(), SLA.percentile(99.9, "t", below: .microseconds(5))]
        let data = try JSONEncoder().encode(ts)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"p(95)\"") && text.contains("\"p(99.9)\""))
        #expect(try JSONDecoder().decode([Threshold].self, from: data) == ts)
        #expect(Statistic(parsing: "p(101)") == nil && Statistic(parsing: "avg") == .avg)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Statistic.self, from: Data("\"p95\"".utf8)) }
    }
}

@Suite struct SLAErrorRateTests {
    @Test func denominatorFallsBackToSuccessfulIterations() {
        var m = MetricsSnapshot()
        m.counters["iterations"] = 100
        m.counters["iterations_failed"] = 4
        m.errors["assertion"] = ErrorTally(source: .script, count: 4)
        #expect(m.successfulOperations == 96)
        #expect(m.errorRate == 0.04)
        m.counters["operations"] = 396
        #expect(m.errorRate == 0.01)
    }

    @Test func bookkeepingAloneIsNoWork() {
        var m = MetricsSnapshot()
        m.counters["iterations_dropped"] = 10
        m.counters["ticks_missed"] = 1
        #expect(!m.didWork)
        m.counters["messages_sent"] = 1
        #expect(m.didWork)
    }
}
