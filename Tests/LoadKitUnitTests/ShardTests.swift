import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

@Suite struct ShardIdentityTests {
    /// `LOADKIT_SHARD_JUDGE=local` in the run's own settings (`.settings(...)` or `.env`) makes a
    /// shard judged alone; it used to be read from the process only, so the run's value was ignored.
    @Test func aRunsOwnShardJudgeSettingDecidesHowItIsJudged() async throws {
        func run(_ extra: [String: String]) async throws -> RunResult {
            let root = NSTemporaryDirectory() + "loadkit-judge-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: root) }
            return try await LoadTest("judge") { Stage("one", to: 2, over: .zero); Hold(.milliseconds(500)) }   // room for a busy machine
                .progress(false).reports(true, root: root).exclusive(false)
                .settings(Settings(["LOADKIT_SHARD_INDEX": "0", "LOADKIT_SHARD_COUNT": "2"].merging(extra) { $1 }))
                .run { user in _ = await user.sleep(for: .milliseconds(10)) }
        }
        let byMerge = try await run([:])
        #expect(byMerge.environment["shard_index"] == "0")
        #expect((byMerge.metrics.counters["iterations"] ?? 0) >= 1)
        #expect(byMerge.isJudgedByTheMerge)
        let alone = try await run(["LOADKIT_SHARD_JUDGE": "local"])
        #expect(alone.environment["shard_judge"] == "local")
        #expect(!alone.isJudgedByTheMerge)
    }

    @Test func loadKitVariablesWin() throws {
        let id = try Shard.detect(in: Settings(["LOADKIT_SHARD_INDEX": "2", "LOADKIT_SHARD_COUNT": "5", "JOB_COMPLETION_INDEX": "4"]))
        #expect(id.shard == (try Shard(index: 2, count: 5)))
        #expect(id.source == "LOADKIT_SHARD_INDEX/LOADKIT_SHARD_COUNT")
    }

    @Test func kubernetesIndexedJobNeedsAnExplicitCount() throws {
        let id = try Shard.detect(in: Settings(["JOB_COMPLETION_INDEX": "3", "LOADKIT_SHARD_COUNT": "7"]))
        #expect(id.shard == (try Shard(index: 3, count: 7)))
        #expect(id.source.hasPrefix("JOB_COMPLETION_INDEX"))
        #expect(throws: ConfigError.self) { try Shard.detect(in: Settings(["JOB_COMPLETION_INDEX": "3"])) }
        do { _ = try Shard.detect(in: Settings(["JOB_COMPLETION_INDEX": "3"])); Issue.record("no error") } catch {
            #expect("\(error)".contains("LOADKIT_SHARD_COUNT") && "\(error)".contains("JOB_COMPLETION_INDEX=3"))
        }
        // The index must fit the count.
        do { _ = try Shard.detect(in: Settings(["JOB_COMPLETION_INDEX": "7", "LOADKIT_SHARD_COUNT": "7"])); Issue.record("no error") } catch {
            #expect("\(error)".contains("0...6"))
        }
        // Shard(settings:) (used by LoadTest.scaled(by:)) sees the orchestrator too.
        #expect(try Shard(settings: Settings(["JOB_COMPLETION_INDEX": "1", "LOADKIT_SHARD_COUNT": "2"])) == (try Shard(index: 1, count: 2)))
    }

    @Test func ciNodeVariables() throws {
        // GitLab counts from 1.
        #expect(try Shard.detect(in: Settings(["CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"])).shard == (try Shard(index: 0, count: 3)))
        #expect(try Shard.detect(in: Settings(["CIRCLE_NODE_INDEX": "1", "CIRCLE_NODE_TOTAL": "3"])).shard == (try Shard(index: 1, count: 3)))
        #expect(try Shard.detect(in: Settings(["BUILDKITE_PARALLEL_JOB": "2", "BUILDKITE_PARALLEL_JOB_COUNT": "3"])).shard == (try Shard(index: 2, count: 3)))
    }

    @Test func nothingSetIsOneShardButACountAloneIsAnError() throws {
        #expect(try Shard.detect(in: Settings([:])).shard == .single)
        #expect(throws: ConfigError.self) { try Shard.detect(in: Settings(["LOADKIT_SHARD_COUNT": "4"])) }
    }

    @Test func runIDFromLoadKitOrCI() {
        #expect(Settings(["LOADKIT_RUN_ID": "nightly-42", "GITHUB_RUN_ID": "9"]).runID == "nightly-42")
        #expect(Settings(["GITHUB_RUN_ID": "9", "GITHUB_RUN_ATTEMPT": "2"]).runID == "9-2")
        #expect(Settings([:]).runID == nil)
    }
}

@Suite struct ShardShareTests {
    @Test func ratesSplitWithRemainderToLowIndices() throws {
        let shares = try (0..<3).map { try Shard(index: $0, count: 3).share(ofRate: 10) }
        #expect(shares == [4, 3, 3])
        let frac = try (0..<4).map { try Shard(index: $0, count: 4).share(ofRate: 2.5) }
        #expect(abs(frac.reduce(0, +) - 2.5) < 1e-12)
        // A ramping arrival plan: every step's rates add up across shards.
        let plan = ArrivalRate.ramping(from: 5, .to(100, over: .seconds(10)), .hold(.seconds(5)), .to(7, over: .seconds(2)))
        let parts = try (0..<3).map { plan.sharded(try Shard(index: $0, count: 3)) }
        #expect(parts.map(\.startRate).reduce(0, +) == 5)
        for s in plan.steps.indices {
            #expect(parts.map { $0.steps[s].rate ?? 0 }.reduce(0, +) == (plan.steps[s].rate ?? 0))
            #expect(parts.allSatisfy { $0.steps[s].duration == plan.steps[s].duration })
        }
        // LoadTest.sharded uses it.
        let t = LoadTest("r", rate: .constant(10, for: .seconds(1)), maxUsers: 10).sharded(try Shard(index: 0, count: 3))
        guard case .arrivals(let r, _) = t.model else { Issue.record("model"); return }
        #expect(r.startRate == 4)
    }

    @Test func idRangesAndRowsPartitionWithoutOverlap() throws {
        for count in [1, 2, 3, 7, 12] {
            var seen: [Int] = []
            var rows: [Int] = []
            let data = Array(100..<110)
            for i in 0..<count {
                let s = try Shard(index: i, count: count)
                if let r = s.partition(1...10_000) { seen += Array(r) }
                rows += Array(s.partition(data))
            }
            #expect(seen == Array(1...10_000), "count \(count)")
            #expect(rows == data, "count \(count)")
        }
        #expect(try Shard(index: 0, count: 3).partition(1...10) == 1...4)
        #expect(try Shard(index: 2, count: 3).partition(1...10) == 8...10)
        #expect(try Shard(index: 4, count: 5).partition(1...3) == nil)  // more shards than ids
    }
}

@Suite struct ShardStartTests {
    @Test func parsesEpochMillisAndISO8601() throws {
        #expect(ShardStart.parseTime("1763856000000") == 1_763_856_000_000)
        #expect(ShardStart.parseTime("2025-11-23T00:00:00Z") == 1_763_856_000_000)
        #expect(ShardStart.parseTime("2025-11-23T01:00:00.250+01:00") == 1_763_856_000_250)
        #expect(ShardStart.parseTime("tomorrow") == nil)
        #expect(try ShardStart(settings: Settings([:])) == nil)
        #expect(throws: ConfigError.self) { try ShardStart(settings: Settings(["LOADKIT_START_AT": "soon"])) }
        let s = try #require(try ShardStart(settings: Settings(["LOADKIT_START_AT": "1000", "LOADKIT_START_TOLERANCE": "2s"])))
        #expect(s.toleranceMillis == 2_000)
    }

    @Test func decidesWaitStartOrFail() throws {
        let s = ShardStart(atMillis: 100_000, toleranceMillis: 5_000, maxWaitMillis: 60_000)
        #expect(try s.decide(nowMillis: 99_000) == .wait(1_000))
        #expect(try s.decide(nowMillis: 100_000) == .startNow(lateMillis: 0))
        #expect(try s.decide(nowMillis: 104_000) == .startNow(lateMillis: 4_000))
        do { _ = try s.decide(nowMillis: 106_000); Issue.record("late start accepted") } catch let e as ShardStart.StartError {
            #expect(e.kind == "shard_start_missed")
            #expect(e.message.contains("6.0 s in the past"))
        }
        do { _ = try s.decide(nowMillis: 30_000); Issue.record("far start accepted") } catch let e as ShardStart.StartError {
            #expect(e.kind == "shard_start_too_far")
        }
    }

    @Test func waitEndsAtTheStart() async throws {
        let start = wallClockMillis() + 150
        // A generous tolerance: a loaded machine may wake the task late; the point is not early.
        try await ShardStart(atMillis: start, toleranceMillis: 60_000).wait()
        #expect(wallClockMillis() >= start)
    }
}

/// Builders for synthetic shard outputs.
enum ShardFixtures {
    static let sla: [Threshold] = [SLA.p95("request", below: .milliseconds(50)), SLA.count(Threshold.errorsMetric, atMost: 3)]

    /// A shard result with latencies `values` (µs) and `errors` errors.
    static func result(_ values: [Int64], errors: Int64, name: String = "t") -> RunResult {
        var m = MetricsSnapshot()
        var h = Histogram()
        for v in values { h.record(v) }
        m.trends["request"] = h
        m.counters["operations"] = Int64(values.count)
        if errors > 0 { m.errors["http_500"] = ErrorTally(source: .server, count: errors, examples: ["500"]) }
        return RunResult(name: name, startedAtMillis: 1_000, durationSeconds: 2, metrics: m, plannedPeakUsers: 5, peakActiveUsers: 5)
    }

    static func shard(_ i: Int, of n: Int, _ values: [Int64], errors: Int64, runID: String = "run-1",
                      name: String = "t", thresholds: [Threshold] = sla) -> ShardResultFile {
        let s = Shard(uncheckedIndex: i, count: n)
        return ShardResultFile(path: "mem/shard-\(i)/result.json",
                               manifest: ShardManifest(runID: runID, test: name, shard: s, thresholds: thresholds),
                               result: ShardOutput.annotate(result(values, errors: errors, name: name), shard: s, runID: runID))
    }

    static func temporaryDirectory() -> String {
        let d = (NSTemporaryDirectory() as NSString).appendingPathComponent("loadkit-shard-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }
}

@Suite struct ShardMergeTests {
    @Test func mergesExactlyAndJudgesTheWhole() throws {
        let a: [Int64] = Array(1...40).map { $0 * 1000 }       // 1…40 ms
        let b: [Int64] = Array(1...40).map { $0 * 1000 + 17 }
        let c: [Int64] = [60_000, 70_000] + Array(repeating: 2_000, count: 38)
        let merged = try ShardMerge.merge([ShardFixtures.shard(2, of: 3, c, errors: 2),
                                           ShardFixtures.shard(0, of: 3, a, errors: 2),
                                           ShardFixtures.shard(1, of: 3, b, errors: 2)], expectShards: 3)
        var all = Histogram()
        for v in a + b + c { all.record(v) }
        #expect(merged.result.metrics.trends["request"] == all)
        #expect(merged.result.metrics.totalErrors == 6)
        #expect(merged.result.metrics.counter("operations") == 120)
        #expect(merged.result.plannedPeakUsers == 15)
        #expect(merged.result.environment["shards_merged"] == "0,1,2")
        #expect(merged.result.environment["run_id"] == "run-1")
        // Each shard alone passes the error budget (2 ≤ 3); the whole does not (6 > 3).
        for s in merged.shards {
            let alone = s.manifest.thresholds.evaluate(s.result)
            #expect(alone.allSatisfy { $0.passed }, "shard \(s.manifest.index): \(alone)")
        }
        #expect(!merged.passed)
        // Same message as a single-machine run judged by the same thresholds.
        let single = ShardFixtures.result(a + b + c, errors: 6)
        #expect(merged.outcomes.map(\.message) == ShardFixtures.sla.evaluate(single).map(\.message))
        #expect(merged.breachMessages == ["SLA breached in 't': errors count = 6, limit <= 3"])
    }

    @Test func seriesAreAlignedOnTheWallClock() throws {
        var a = ShardFixtures.shard(0, of: 2, [1], errors: 0), b = ShardFixtures.shard(1, of: 2, [1], errors: 0)
        a.result.metrics.series["requests"] = [5, 5, 5]
        b.result.metrics.series["requests"] = [7, 7]
        b.result.startedAtMillis = a.result.startedAtMillis + 2_000   // b started two seconds later
        let merged = try ShardMerge.merge([a, b])
        #expect(merged.result.metrics.series["requests"] == [5, 5, 12, 7])
        #expect(merged.result.startedAtMillis == a.result.startedAtMillis)
    }

    @Test func missingShardsAreReportedNotMerged() {
        let shards = [ShardFixtures.shard(0, of: 4, [1], errors: 0), ShardFixtures.shard(2, of: 4, [1], errors: 0)]
        do { _ = try ShardMerge.merge(shards); Issue.record("merged a partial run") } catch let e as ShardMergeError {
            #expect(e.kind == "shard_missing")
            #expect(e.problems == [.missing(indices: [1, 3], count: 4)])
            #expect(e.description.contains("missing shards 1, 3 of 4"))
        } catch { Issue.record("\(error)") }
        // --expect-shards disagreeing with the shards' own count.
        let two = [ShardFixtures.shard(0, of: 2, [1], errors: 0), ShardFixtures.shard(1, of: 2, [1], errors: 0)]
        #expect(throws: ShardMergeError.self) { try ShardMerge.merge(two, expectShards: 3) }
        #expect((try? ShardMerge.merge(two, expectShards: 2)) != nil)
    }

    @Test func duplicateShardsAreReportedNotMerged() {
        var dup = ShardFixtures.shard(1, of: 2, [5], errors: 0)
        dup.path = "elsewhere/result.json"
        let shards = [ShardFixtures.shard(0, of: 2, [1], errors: 0), ShardFixtures.shard(1, of: 2, [1], errors: 0), dup]
        do { _ = try ShardMerge.merge(shards); Issue.record("merged a duplicate") } catch let e as ShardMergeError {
            #expect(e.kind == "shard_duplicate")
            #expect(e.description.contains("shard 1 delivered 2 times"))
            #expect(e.description.contains("elsewhere/result.json"))
        } catch { Issue.record("\(error)") }
    }

    @Test func otherRunsAndTestsAreRefused() {
        let shards = [ShardFixtures.shard(0, of: 2, [1], errors: 0),
                      ShardFixtures.shard(1, of: 2, [1], errors: 0, runID: "run-2", name: "other")]
        do { _ = try ShardMerge.merge(shards); Issue.record("merged two runs") } catch let e as ShardMergeError {
            #expect(e.problems.contains(.mismatch(field: "run id", values: ["run-1", "run-2"])))
            #expect(e.problems.contains(.mismatch(field: "test name", values: ["t", "other"])))
        } catch { Issue.record("\(error)") }
        let sla = [ShardFixtures.shard(0, of: 2, [1], errors: 0),
                   ShardFixtures.shard(1, of: 2, [1], errors: 0, thresholds: [SLA.errorRate(below: 0.1)])]
        #expect(throws: ShardMergeError.self) { try ShardMerge.merge(sla) }
    }

    @Test func eachTestOfASuiteMergesSeparately() throws {
        let shards = [ShardFixtures.shard(0, of: 2, [1], errors: 0, name: "a"), ShardFixtures.shard(1, of: 2, [2], errors: 0, name: "a"),
                      ShardFixtures.shard(0, of: 2, [3], errors: 5, name: "b"), ShardFixtures.shard(1, of: 2, [4], errors: 0, name: "b"),
                      ShardFixtures.shard(0, of: 2, [5], errors: 0, name: "c")]
        let runs = ShardMerge.mergeEachTest(shards)
        #expect(runs.map(\.test) == ["a", "b", "c"])
        guard case .success(let a) = runs[0].outcome, case .success(let b) = runs[1].outcome,
              case .failure(let c) = runs[2].outcome else { Issue.record("\(runs)"); return }
        #expect(a.passed && a.result.metrics.trends["request"]?.count == 2)
        #expect(!b.passed && b.result.metrics.totalErrors == 5)
        #expect(c.problems == [.missing(indices: [1], count: 2)])
    }

    @Test func roundTripsThroughFilesAndFolders() throws {
        let root = ShardFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for i in 0..<2 {
            let s = try Shard(index: i, count: 2)
            try ShardOutput.write(ShardFixtures.result([Int64(1000 * (i + 1))], errors: 0), shard: s, runID: "r",
                                  thresholds: ShardFixtures.sla, root: root)
        }
        let dir0 = ReportWriter(root: root + "/shard-0").directory(for: "t")
        let dir1 = ReportWriter(root: root + "/shard-1").directory(for: "t")
        #expect(dir0.hasPrefix(root + "/shard-0/t/"))
        #expect(FileManager.default.fileExists(atPath: dir0 + "/shard.json"))
        #expect(FileManager.default.fileExists(atPath: dir0 + "/result.json"))
        let fromFolder = try ShardMerge.merge(paths: [root], expectShards: 2)
        #expect(fromFolder.result.metrics.trends["request"]?.count == 2)
        #expect(fromFolder.thresholds == ShardFixtures.sla)
        #expect(fromFolder.passed)
        let fromFiles = try ShardMerge.merge(paths: [dir0 + "/result.json", dir1 + "/result.json"])
        #expect(fromFiles.result.metrics == fromFolder.result.metrics)
        // An earlier run of the same shards in the history (another run id) is left out: the
        // folder merges the runs `latest` names, without a duplicate or a run-id mismatch.
        for i in 0..<2 {
            var older = ShardFixtures.result([5_000], errors: 9)
            older.startedAtMillis -= 86_400_000
            try ShardOutput.write(older, shard: try Shard(index: i, count: 2), runID: "yesterday", thresholds: ShardFixtures.sla, root: root)
            try RunHistory.pointLatest(in: root + "/shard-\(i)/t", to: (i == 0 ? dir0 : dir1).split(separator: "/").last.map(String.init)!)
        }
        #expect(RunHistory.runs(in: root + "/shard-0/t").count == 2)
        #expect(try ShardMerge.merge(paths: [root], expectShards: 2).result.metrics == fromFolder.result.metrics)
        // Merged reports: summary, CSV, JSON, HTML, time series and a result.json for the whole.
        let files = try fromFolder.writeReports(root: root + "/merged")
        for f in [files.summary, files.csv, files.json, files.result, files.html, files.timeSeries] {
            #expect(FileManager.default.fileExists(atPath: f))
        }
        #expect(files.directory == ReportWriter(root: root + "/merged").directory(for: "t"))
        // Nothing there / not a result.
        #expect(throws: ShardMergeError.self) { try ShardMerge.load([root + "/nope"]) }
        try Data("{}".utf8).write(to: URL(fileURLWithPath: root + "/bad.json"))
        #expect(throws: ShardMergeError.self) { try ShardMerge.load([root + "/bad.json"]) }
    }
}
