import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

@Suite struct RunHistoryTests {
    static func root() -> String { NSTemporaryDirectory() + "loadkit-history-\(UUID().uuidString)" }

    /// Report settings come from the run's `Settings` (environment + `.env`), like every other
    /// setting: `LOADKIT_KEEP_RUNS=1` in a `.env` keeps one run (it used to read the process
    /// environment alone, so the `.env` line was silently ignored).
    @Test func keepRunsComesFromTheRunsSettings() async throws {
        let root = Self.root()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let settings = try Settings(environment: [:], dotEnv: "LOADKIT_KEEP_RUNS=1\n", envFile: "/tmp/test.env")
        for _ in 0..<3 {
            // 500 ms: long enough for the one user to finish an iteration while parallel suites
            // hold both cores (50 ms was not, twice in three parallel runs). It takes its turn
            // with other load runs (exclusive, the default), which then keep off the shared loops:
            // in two parallel runs of 2026-12-01 its user did not finish one 10-ms iteration in
            // the 500 ms (which neighbour held the loops is not established).
            let result = try await LoadTest("kept") { Stage("one", to: 1, over: .zero); Hold(.milliseconds(500)) }
                .progress(false).reports(true, root: root).settings(settings)
                .run { user in _ = await user.sleep(for: .milliseconds(10)) }
            #expect(result.metrics.counters["iterations"] ?? 0 >= 1)
            try await Task.sleep(for: .milliseconds(5))   // distinct run folder names (millisecond stamps)
        }
        let runs = RunHistory.runs(in: ReportWriter(root: root).testDirectory(for: "kept"))
        #expect(runs.count == 1, "\(runs)")
    }

    @Test func folderNamesSortByStartTime() {
        #expect(RunHistory.folderName(startedAtMillis: 1_795_000_000_123) == "2026-11-18_11-06-40.123Z")
        #expect(RunHistory.folderName(startedAtMillis: 7) == "1970-01-01_00-00-00.007Z")
        #expect(RunHistory.isRunFolderName("2026-11-18_11-06-40.123Z"))
        for bad in ["latest", "2026-11-18", "2026-11-18_11-06-40.123", "notes", "2026-11-18_11-06-40.12xZ"] {
            #expect(!RunHistory.isRunFolderName(bad), "\(bad)")
        }
        let a = RunHistory.folderName(startedAtMillis: 1_795_000_000_000), b = RunHistory.folderName(startedAtMillis: 1_795_000_060_000)
        #expect(a < b)
    }

    @Test func runsAreKeptSideBySideWithALatestLink() throws {
        let root = Self.root()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let writer = ReportWriter(root: root, keepRuns: 0)
        let first = try writer.write(ReportFixtures.run(name: "nightly", seconds: 5, startedAtMillis: 1_795_000_000_000))
        let second = try writer.write(ReportFixtures.run(name: "nightly", seconds: 5, startedAtMillis: 1_795_086_400_000))
        #expect(first.directory != second.directory)
        #expect(FileManager.default.fileExists(atPath: first.result) && FileManager.default.fileExists(atPath: second.result))
        let history = writer.testDirectory(for: "nightly")
        #expect(RunHistory.runs(in: history) == [first.directory, second.directory])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: history + "/latest") == "2026-11-19_11-06-40.000Z")
        #expect(RunHistory.latest(in: history) == second.directory)
        #expect(writer.directory(for: "nightly") == second.directory)
        #expect(FileManager.default.fileExists(atPath: history + "/latest/report.html"))
    }

    @Test func latestFallsBackToAPlainFile() throws {
        let root = Self.root()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var writer = ReportWriter(root: root, keepRuns: 0)
        writer.symlinks = false
        let files = try writer.write(ReportFixtures.run(name: "fs", seconds: 3))
        let pointer = writer.testDirectory(for: "fs") + "/latest"
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: pointer)) == nil)
        #expect(try String(contentsOfFile: pointer, encoding: .utf8) == (files.directory as NSString).lastPathComponent + "\n")
        #expect(writer.directory(for: "fs") == files.directory)
        // A link replaces the file later (and the reverse), atomically.
        try RunHistory.pointLatest(in: writer.testDirectory(for: "fs"), to: (files.directory as NSString).lastPathComponent)
        #expect(RunHistory.latest(in: writer.testDirectory(for: "fs")) == files.directory)
        // A folder where the pointer should be is an error naming it, not a silent overwrite.
        let odd = root + "/odd"
        try FileManager.default.createDirectory(atPath: odd + "/latest", withIntermediateDirectories: true)
        #expect(throws: ReportError.self) { try RunHistory.pointLatest(in: odd, to: "x") }
    }

    @Test func retentionDeletesOnlyOldRuns() throws {
        let root = Self.root()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let writer = ReportWriter(root: root, keepRuns: 2)
        let history = writer.testDirectory(for: "kept")
        try FileManager.default.createDirectory(atPath: history + "/notes", withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: URL(fileURLWithPath: history + "/README"))
        var dirs: [String] = []
        for day in 0..<4 {
            dirs.append(try writer.write(ReportFixtures.run(name: "kept", seconds: 2, startedAtMillis: 1_795_000_000_000 + Int64(day) * 86_400_000)).directory)
        }
        #expect(RunHistory.runs(in: history) == Array(dirs.suffix(2)))
        #expect(FileManager.default.fileExists(atPath: history + "/notes") && FileManager.default.fileExists(atPath: history + "/README"))
        #expect(RunHistory.latest(in: history) == dirs.last)
    }

    @Test func keepRunsSetting() throws {
        #expect(try RunHistory.keepRuns([:]) == RunHistory.defaultKeep)
        #expect(try RunHistory.keepRuns(["LOADKIT_KEEP_RUNS": "5"]) == 5)
        #expect(try RunHistory.keepRuns(["LOADKIT_KEEP_RUNS": "all"]) == nil)
        #expect(try RunHistory.keepRuns(["LOADKIT_KEEP_RUNS": "0"]) == nil)
        #expect(throws: ConfigError.self) { try RunHistory.keepRuns(["LOADKIT_KEEP_RUNS": "-3"]) }
        do { _ = try RunHistory.keepRuns(["LOADKIT_KEEP_RUNS": "lots"]) } catch {
            #expect("\(error)".contains("LOADKIT_KEEP_RUNS=\"lots\" is not valid: expected a whole number"))
        }
    }

    @Test func timeSeriesHasOneRowPerSecondAndMetric() throws {
        let run = ReportFixtures.run(seconds: 20)
        let csv = TimeSeriesCSV.render(run)
        let lines = csv.split(separator: "\n").map(String.init)
        #expect(lines[0] == "second,metric,value")
        var values: [String: String] = [:]
        for line in lines.dropFirst() {
            // The tagged metric's name holds no comma here; every row has exactly three fields.
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            #expect(f.count == 3, "\(line)")
            values["\(f[0]) \(f[1])"] = f[2]
        }
        let t = try #require(run.metrics.trendSeries["http_req_duration"])
        for s in [0, 7, 19] {
            #expect(values["\(s) http_reqs_per_second"] == String(run.metrics.series["http_reqs"]![s]))
            #expect(values["\(s) vus"] == String(run.metrics.series["vus"]![s]))
            #expect(values["\(s) http_req_duration_p95"] == TimeSeriesCSV.ms(t.value(atPercentile: 95, second: s)!))
            #expect(values["\(s) http_req_duration_count"] == String(t.count(second: s)))
            #expect(values["\(s) errors"] != nil)
        }
        #expect(values["0 http_req_duration{name:/items/{id}}_p99"] != nil)
        #expect(values["0 generator_cpu_percent"] != nil)
        // A merge of two shards keeps each shard's generator apart.
        var shard = run
        shard.environment["shards_merged"] = "0,1"
        shard.generator += run.generator
        #expect(TimeSeriesCSV.render(shard).contains(",generator_rss_bytes{shard:1},"))
    }
}
