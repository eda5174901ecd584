import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

@Suite struct ReportTests {
    static func sample(name: String = "stomp-chat", scale: Int64 = 1) -> RunResult {
        let r = MetricsRecorder()
        for i in 1...1000 { r.record("message_latency", micros: Int64(i) * 100 * scale) }
        for i in 1...100 { r.record("websocket_connect", micros: Int64(i) * 1000) }
        r.increment("messages_sent", by: 990)
        r.increment("messages_received", by: 985)
        r.increment("operations", by: 990)
        r.increment("connection_retries", by: 7)
        r.gauge("active_connections", 100)
        for i in 0..<1000 { r.rate("connections_held", hit: i != 0) }
        for _ in 0..<10 { r.error(TransportError.refusedForTest, step: "connect") }
        return RunResult(name: name, startedAtMillis: 1_700_000_000_000, durationSeconds: 45.234,
                         metrics: r.snapshot(), plannedPeakUsers: 900, peakActiveUsers: 880,
                         environment: ["TOKEN": "eyJsecretjwt", "SERVER_URL": "127.0.0.1:61613",
                                       "DB_PASSWORD": "hunter22", "api_key": "k-123456", "Authorization": "Bearer abcdef"])
    }

    static var outcomes: [ThresholdOutcome] {
        sample().evaluate {
            SLA.p95("message_latency", below: .milliseconds(200))
            SLA.errorRate(below: 0.001)
        }
    }

    @Test func csvParsesBackWithSeedRows() throws {
        let csv = CSVReport.render(Self.sample())
        let lines = csv.split(separator: "\n").map(String.init)
        #expect(lines.first == "Metric,Value,Unit")
        var rows: [String: (String, String)] = [:]
        for l in lines.dropFirst() {
            let f = l.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            #expect(f.count == 3, "bad line \(l)")
            rows[f[0]] = (f[1], f[2])
        }
        #expect(rows["total_workers"]?.0 == "900")
        #expect(rows["test_duration_seconds"]?.0 == "45.234")
        #expect(rows["websocket_connect_avg"]! == ("50.50", "ms"))
        #expect(rows["message_latency_avg"]! == ("50.05", "ms"))
        let p95 = try #require(Double(rows["message_latency_p95"]!.0))
        #expect(abs(p95 - 95) / 95 < 0.001)
        #expect(rows["success_rate"]! == ("99.00", "%"))
        #expect(rows["connection_retries_total"]?.0 == "7")
        #expect(rows["messages_sent_total"]?.0 == "990")
        #expect(rows["errors_refused_total"]?.0 == "10")
        #expect(rows["connections_held_rate"]?.0 == "99.900")
        #expect(!csv.contains("secret") && !csv.contains("hunter"))
    }

    @Test func jsonSummaryIsK6Like() throws {
        let data = JSONSummary.render(Self.sample(), outcomes: Self.outcomes)
        let obj = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let metrics = try #require(obj["metrics"] as? [String: Any])
        let lat = try #require(metrics["message_latency"] as? [String: Any])
        let values = try #require(lat["values"] as? [String: Any])
        for k in ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)"] { #expect(values[k] is Double, "missing \(k)") }
        #expect((values["max"] as? Double) == 100)
        let ths = try #require(lat["thresholds"] as? [String: Any])
        #expect((ths["p(95) < 200 ms"] as? [String: Any])?["ok"] as? Bool == true)
        let sent = try #require((metrics["messages_sent"] as? [String: Any])?["values"] as? [String: Any])
        #expect(sent["count"] as? Int == 990)
        let errors = try #require((metrics["errors"] as? [String: Any])?["values"] as? [String: Any])
        #expect(errors["count"] as? Int == 10)
        #expect(((metrics["errors"] as? [String: Any])?["thresholds"] as? [String: Any])?["rate < 0.1 %"] != nil)
        #expect(obj["thresholds_ok"] as? Bool == false)
        let list = try #require(obj["thresholds"] as? [[String: Any]])
        #expect(list.count == 2 && list[1]["ok"] as? Bool == false)
        let kinds = try #require(obj["errors_by_kind"] as? [String: Any])
        #expect((kinds["refused"] as? [String: Any])?["source"] as? String == "server")
        let env = try #require((obj["state"] as? [String: Any])?["environment"] as? [String: String])
        #expect(env["TOKEN"] == "****" && env["SERVER_URL"] == "127.0.0.1:61613")
    }

    @Test func summaryFileHasSeedLayoutAndNoSecrets() {
        let text = ConsoleSummary.full(Self.sample(), outcomes: Self.outcomes)
        #expect(text.contains("Workers: 900 (peak active 880)"))
        #expect(text.contains("Duration: 45.234s"))
        #expect(text.contains("Success rate: 99.00% (990/1000)"))
        #expect(text.contains("Avg: 50.05ms, Min: 0.10ms, Max: 100.00ms"))
        #expect(text.contains("refused [server]: 10"))
        #expect(text.contains("✗ errors rate = 1 %, limit < 0.1 %"))
        #expect(text.contains("Thresholds: 1 of 2 FAILED"))
        for secret in ["eyJsecretjwt", "hunter22", "k-123456", "abcdef"] { #expect(!text.contains(secret)) }
        #expect(text.contains("TOKEN=****"))
        #expect(text.contains("error rate 1 % (10 failed, 990 succeeded)"))
    }

    @Test func consoleSummaryIsShortAndStatesItsDenominators() {
        let text = ConsoleSummary.render(Self.sample(), outcomes: Self.outcomes)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count <= 25, "\(lines.count) lines:\n\(text)")
        #expect(lines[0].hasPrefix("── LoadKit · stomp-chat ") && lines[0].hasSuffix(" ✗ FAILED ──"))
        #expect(text.contains("thresholds   1 of 2 breached"))
        #expect(text.contains("✓ message_latency p(95) = 95") && text.contains("limit < 200 ms"))
        #expect(text.contains("✗ errors rate = 1 %"))
        #expect(text.contains("errors       1 % (10 failed, 990 succeeded)"))
        #expect(text.contains("refused [server] 10 — connect: connection refused"))
        #expect(text.contains("message_latency") && text.contains("websocket_connect"))
        #expect(text.contains("throughput   messages_sent 990 (21.89/s)"))
        // The held connections explained: 999 of 1,000 planned connected at the end of the hold.
        #expect(text.contains("connections  held 99.9 % (999 of 1,000 users planned were connected at the end of the hold)"))
        #expect(text.contains("1 not connected then: see the errors"))
        // The environment dump stays in the files.
        #expect(!text.contains("SERVER_URL") && !text.contains("TOKEN"))
        for secret in ["eyJsecretjwt", "hunter22", "k-123456", "abcdef"] { #expect(!text.contains(secret)) }
    }

    /// An open model's `maxUsers` is a ceiling, not a plan: its header says so (a held-out user
    /// read "1,000 users planned (467 peak)" as a plan of 1,000).
    @Test func anOpenModelsHeaderSaysMaxUsers() {
        var open = Self.sample()
        open.environment["model"] = "arrival-rate peak 30000/s maxUsers 900"
        let texts = [ConsoleSummary.render(open, outcomes: []), K6TextSummary.render(open, outcomes: []), HTMLReport.render(open, outcomes: [])]
        #expect(texts[0].contains("maxUsers 900 (880 peak)"), "\(texts[0])")
        #expect(texts[2].contains("maxUsers 900, 880 peak"))
        for t in texts { #expect(!t.contains("900 users planned")) }
        // summary.txt too (it said "Workers: 900" for a ceiling).
        let full = ConsoleSummary.full(open, outcomes: [])
        #expect(full.contains("maxUsers: 900 (peak active 880)"), "\(full)")
        #expect(!full.contains("Workers:"))
        // A closed model's header is unchanged.
        #expect(ConsoleSummary.render(Self.sample(), outcomes: []).contains("900 users planned (880 peak)"))
    }

    /// A held-out user's undersized open model: summary.txt said "Success rate: 100.00% (48/48)"
    /// and nothing of the 72 arrivals dropped; the console's schedule line and warning were missing.
    @Test func summaryTxtSaysWhatTheScheduleDropped() throws {
        let r = MetricsRecorder()
        r.increment("iterations", by: 48)
        r.increment("operations", by: 48)
        r.increment("iterations_dropped", by: 72)
        r.increment("iterations_late", by: 3)
        for i in 0..<48 { r.record("iteration_lateness", micros: i < 45 ? 100 : 2_000) }
        let result = RunResult(name: "undersized", startedAtMillis: 1_700_000_000_000, durationSeconds: 6, metrics: r.snapshot(),
                               plannedPeakUsers: 2, peakActiveUsers: 2, environment: ["model": "arrival-rate peak 20/s maxUsers 2"])
        let full = ConsoleSummary.full(result, outcomes: [])
        let schedule = try #require(full.range(of: "Schedule (open model)\n  72 dropped (no free user) · 3 late · start lateness P50 0.1 ms"),
                                    "\(full)")
        #expect(full.contains("  ⚠ 60 % of the arrivals due were dropped: they are in no latency figure and no error rate"), "\(full)")
        // Next to the success rate it qualifies, before the metrics.
        let success = try #require(full.range(of: "Success rate: 100.00% (48/48)"))
        #expect(success.upperBound < schedule.lowerBound)
        #expect(schedule.upperBound < (full.range(of: "Counters")?.lowerBound ?? full.endIndex), "\(full)")
        // A closed run has no schedule to speak of.
        #expect(!ConsoleSummary.full(Self.sample(), outcomes: []).contains("Schedule"))
    }

    @Test func heldConnectionsTellLateConnectorsFromFailures() throws {
        // 60 planned, 57 connected at the end of the hold (second 12); no error anywhere.
        var r = RunResult(name: "late", startedAtMillis: 0, durationSeconds: 15, metrics: MetricsSnapshot(), plannedPeakUsers: 60,
                          environment: ["connections_held_at_second": "12"])
        r.metrics.rates[SLA.connectionsHeldMetric] = RateTally(hits: 57, total: 60)
        r.metrics.counters["operations"] = 500
        let none = try #require(HeldConnections(r))
        #expect(none.sentence == "95 % (57 of 60 users planned were connected at the end of the hold, 12 s into the run)")
        #expect(none.lateNote == "3 not connected then: no error was recorded, so they were still connecting (late connectors, not failures)")
        // The per-second series shows two of them connecting after second 12; one never did.
        r.metrics.series[RunnerMetrics.connected] = [10, 30, 50, 55, 56, 57, 57, 57, 57, 57, 57, 57, 57, 59, 59]
        let late = try #require(HeldConnections(r))
        #expect(late.connectedLater == 2)
        #expect(late.lateNote == "3 not connected then: 2 connected later (late connectors, not failures), 1 never connected with no error recorded")
        let text = ConsoleSummary.render(r, outcomes: [SLA.connectionsHeld(atLeast: 0.9)].evaluate(r))
        #expect(text.contains("2 connected later (late connectors, not failures)"))
        #expect(text.contains("✓ PASSED"))
        #expect(HeldConnections(RunResult(name: "x", startedAtMillis: 0, durationSeconds: 1, metrics: MetricsSnapshot())) == nil)
        // Sessions the server ended without an error (a normal close): not "still connecting" —
        // a held-out user's server had kicked those users off.
        r.metrics.series[RunnerMetrics.connected] = nil
        r.metrics.counters[BuiltInMetrics.wsSessionsClosedByServer] = 3
        #expect(try #require(HeldConnections(r)).lateNote
                == "3 not connected then: no error was recorded, but the server ended 3 WebSocket sessions (ws_sessions_closed_by_server): users it disconnected, or late connectors")
    }

    /// A run cut short (SIGTERM, an abort threshold, the duration cap) judged its thresholds on part
    /// of the plan: its headline says so instead of "PASSED" (a held-out user read "✓ PASSED …
    /// interrupted: SIGTERM" as a pass).
    @Test func anInterruptedRunsHeadlineSaysInterruptedNotPassed() {
        var r = RunResult(name: "cut", startedAtMillis: 0, durationSeconds: 8, metrics: MetricsSnapshot(), interruption: "SIGTERM")
        r.metrics.counters["operations"] = 100
        let outcomes = [SLA.errorRate(below: 0.5)].evaluate(r)
        #expect(outcomes.allSatisfy { $0.passed })
        let text = ConsoleSummary.render(r, outcomes: outcomes, full: false)
        #expect(text.contains("⚠ INTERRUPTED"), "\(text)")
        #expect(!text.contains("PASSED"), "\(text)")
        #expect(HTMLReport.render(r, outcomes: outcomes).contains(">INTERRUPTED<"))
        // A breach still reads FAILED, interrupted or not.
        let breached = [SLA.errorRate(below: 0)].evaluate(r)
        #expect(!breached.allSatisfy { $0.passed })
        #expect(ConsoleSummary.render(r, outcomes: breached, full: false).contains("✗ FAILED"))
        // Without thresholds too: the headline says the run was cut short.
        #expect(ConsoleSummary.render(r, outcomes: [], full: false).contains("⚠ INTERRUPTED"))
    }

    /// An open-model run says on the console whether it kept its schedule: dropped and late
    /// iterations and how late starts were (a held-out user found them only in summary.txt).
    @Test func openModelRunsShowTheirScheduleOnTheConsole() {
        let rec = MetricsRecorder()
        for i in 1...1000 { rec.record(RunnerMetrics.iterationLateness, micros: Int64(i % 100) * 10) }  // 0 … 990 µs
        rec.record(RunnerMetrics.iterationLateness, micros: 4_000)
        rec.increment(RunnerMetrics.iterationsLate, by: 1)
        rec.increment(RunnerMetrics.iterationsDropped, by: 3)
        rec.increment(RunnerMetrics.iterations, by: 1001)
        let open = RunResult(name: "open", startedAtMillis: 0, durationSeconds: 10, metrics: rec.snapshot())
        let text = ConsoleSummary.render(open)
        #expect(text.contains("schedule     3 dropped (no free user) · 1 late · start lateness P50 0.5 ms, P99 0.99 ms, max 4 ms"),
                "\(text)")
        // Dropped arrivals are in no latency figure and no error rate: the console says so.
        #expect(text.contains("⚠ 0.3 % of the arrivals due were dropped: they are in no latency figure and no error rate"), "\(text)")
        // A closed-model run has no schedule line.
        #expect(!ConsoleSummary.render(Self.sample()).contains("schedule"))
    }

    @Test func k6TextAndErrorLog() {
        let k6 = K6TextSummary.render(Self.sample(), outcomes: Self.outcomes)
        let line = k6.split(separator: "\n").first { $0.contains("message_latency.") }
        #expect(line?.contains("avg=50.05ms min=100.00µs") == true)
        #expect(line?.contains("max=100.00ms p(90)=") == true)
        #expect(k6.contains("✓ message_latency p(95)<200ms"))
        #expect(k6.contains("✗ errors rate<0.1%"))
        #expect(k6.contains("connections_held"))
        // The value column is aligned on the longest name, also a long tagged one (as k6 does).
        var tagged = Self.sample()
        tagged.metrics.counters["http_reqs{name:/api/v1/concerts/{id}/seats/{seat}}"] = 7
        let columns = Set(K6TextSummary.render(tagged).split(separator: "\n")
            .filter { $0.hasPrefix("     ") && $0.contains("...: ") }
            .map { $0.distance(from: $0.startIndex, to: $0.range(of: "...: ")!.upperBound) })
        #expect(columns.count == 1, "\(columns)")
        let log = ErrorLog.render(Self.sample())
        #expect(log.contains("[refused] source=server count=10"))
        // Ten failures with one text: one example (examples are distinct).
        #expect(log.components(separatedBy: "  - connect: ").count - 1 == 1)
    }

    @Test func secretMasking() {
        let env = ["TOKEN": "abc12345", "MY_API_KEY": "zzzzzz", "oauth_client": "q1w2e3", "PASSWORD": "", "USER": "bob", "PORT": "80"]
        let m = Secrets.masked(env)
        #expect(m["TOKEN"] == "****" && m["MY_API_KEY"] == "****" && m["oauth_client"] == "****")
        #expect(m["USER"] == "bob" && m["PORT"] == "80" && m["PASSWORD"] == "")
        #expect(Secrets.scrub("connect failed with token abc12345", environment: env) == "connect failed with token ****")
    }

    @Test func comparisonTableAcrossTargets() {
        let cols = [("Small", Self.sample(scale: 3)), ("Medium", Self.sample(scale: 2)), ("Large", Self.sample(scale: 1))]
        let md = ComparisonTable.markdown(cols.map { (label: $0.0, result: $0.1) },
                                          rows: [.percentile(95, "message_latency"), .errorRate, .throughput("messages_sent"),
                                                 .rate("cache_hit")])
        let lines = md.split(separator: "\n").map(String.init)
        #expect(lines[0] == "| Metric | Small | Medium | Large |")
        #expect(lines[1] == "|---|---:|---:|---:|")
        let p95 = lines[2].split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(p95[0] == "message_latency p(95) (ms)")
        let vals = p95[1...].compactMap(Double.init)
        #expect(vals.count == 3 && vals[0] > vals[1] && vals[1] > vals[2])
        #expect(lines[3] == "| error rate (%) | 1.000 | 1.000 | 1.000 |")
        #expect(lines[5].hasSuffix("| N/A | N/A | N/A |"))
        #expect(ComparisonTable.markdown(cols.map { (label: $0.0, result: $0.1) }).contains("websocket_connect p(95) (ms)"))
    }

    @Test func progressLine() {
        let s = ProgressLine.State(elapsedSeconds: 65.4, stage: "peak", users: 450, targetUsers: 600,
                                   requestsPerSecond: 98.46, messagesPerSecond: 1234, errors: 3, errorRate: 0.0002)
        #expect(ProgressLine.render(s) == "[01:05] peak | users 450/600 | 1234 msg/s | 98.5 req/s | errors 3 (0.02%)")
        #expect(ProgressLine.render(.init(elapsedSeconds: 3, users: 0)) == "[00:03] | users 0 | errors 0")
        #expect(ProgressLine.render(.init(elapsedSeconds: 3, users: 100, requestsPerSecond: 2500, p95Micros: 12_340))
                    == "[00:03] | users 100 | 2500 req/s p95 12.34 ms | errors 0")
        var a = MetricsSnapshot(), b = MetricsSnapshot()
        a.counters["http_reqs"] = 100; b.counters["http_reqs"] = 300
        #expect(ProgressLine.perSecond("http_reqs", previous: a, current: b, interval: 2) == 100)
        #expect(ProgressLine.shouldPrint(forced: true))
    }

    @Test func writerWritesEveryFileAndResultMergesBack() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loadkit-report-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let writer = ReportWriter(root: root)
        let files = try writer.write(Self.sample(name: "stomp chat/1"), outcomes: Self.outcomes)
        #expect(files.directory == root + "/stomp_chat_1/2023-11-14_22-13-20.000Z")
        #expect(writer.directory(for: "stomp chat/1") == files.directory)
        for p in [files.summary, files.csv, files.json, files.result, files.errorLog, files.k6Text, files.html, files.timeSeries] {
            #expect(FileManager.default.fileExists(atPath: p), "missing \(p)")
            let text = try String(contentsOfFile: p, encoding: .utf8)
            #expect(!text.contains("hunter22") && !text.contains("eyJsecretjwt"), "secret in \(p)")
        }
        let back = try RunResult.load(from: files.result)
        #expect(back.metrics == Self.sample().metrics)
        let merged = try #require(RunResult.merged([back, back]))
        #expect(merged.metrics.trends["message_latency"]?.count == 2000)
        #expect(throws: ReportError.self) { try RunResult.load(from: files.csv) }
        let cmp = try writer.writeComparison([(label: "a", result: back)], name: "cmp")
        #expect(try String(contentsOfFile: cmp, encoding: .utf8).hasPrefix("| Metric | a |"))
    }
}

extension TransportError {
    static var refusedForTest: any Error { ScriptFailure("connection refused", kind: "refused", source: .server) }
}

@Suite struct ReportFinishTests {
    @Test func finishEvaluatesAndWritesEvenForNoWork() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loadkit-finish-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let idle = RunResult(name: "idle", startedAtMillis: 0, durationSeconds: 1, metrics: MetricsSnapshot(),
                             interruption: "SIGINT")
        let report = ReportWriter(root: root).finish(idle, thresholds: SLA.stompChat, printSummary: false)
        #expect(!report.passed && report.outcomes.first == .noWork && report.outcomes.count == 4)
        let files = try #require(report.files)
        let summary = try String(contentsOfFile: files.summary, encoding: .utf8)
        #expect(summary.contains("Interrupted: SIGINT"))
        // Said before any figure, as the console's and the HTML report's headlines do.
        let head = summary.components(separatedBy: "Test summary").first ?? ""
        #expect(head.contains("⚠ INTERRUPTED (SIGINT)"), "\(summary.prefix(400))")
        let bad = ReportWriter(root: "/proc/loadkit-cannot-write").finish(idle, thresholds: [], printSummary: false)
        #expect(bad.files == nil && bad.writeError?.contains("cannot create report folder") == true)
    }
}
