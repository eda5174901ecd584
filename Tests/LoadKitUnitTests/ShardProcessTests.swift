import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// The judging criterion of sharded runs: one scenario run as three separate `loadkit shard-demo`
/// processes (each its own source address) against one fixture server on loopback; the merge
/// must equal the combined raw samples, totals add up, and an SLA breached only in aggregate
/// fails the merged verdict (library and `loadkit merge` exit status) while each shard passes.
@Suite(.serialized) struct ShardProcessTests {
    /// The `loadkit` executable built next to the test bundle (`$LOADKIT_BIN` overrides).
    static func loadkitBinary() -> String? {
        let fm = FileManager.default
        if let p = ProcessInfo.processInfo.environment["LOADKIT_BIN"], fm.isExecutableFile(atPath: p) { return p }
        var dirs: [URL] = []
        for b in Bundle.allBundles where b.bundleURL.pathExtension == "xctest" { dirs.append(b.bundleURL.deletingLastPathComponent()) }
        let arg0 = URL(fileURLWithPath: CommandLine.arguments.first ?? "")
        dirs += [arg0.deletingLastPathComponent(), arg0.deletingLastPathComponent().deletingLastPathComponent()]
        for d in dirs {
            for c in [d, d.deletingLastPathComponent(), d.deletingLastPathComponent().deletingLastPathComponent()] {
                let p = c.appendingPathComponent("loadkit").path
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue, fm.isExecutableFile(atPath: p) { return p }
            }
        }
        return nil
    }

    /// What a finished child process said.
    struct Outcome { var status: Int32; var stderr: String; var stdout: String }

    /// Runs `loadkit args…` with `environment`, bounded by `timeout` (the child is killed after it).
    static func run(_ bin: String, _ args: [String], environment: [String: String] = [:],
                    timeout: Duration = .seconds(60)) async throws -> Outcome {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment.filter { key, _ in
            !key.hasPrefix("LOADKIT_") && !Shard.orchestratorVariables.contains { $0.index == key || $0.count == key }
        }
        env.merge(environment) { _, n in n }
        p.environment = env
        // Output goes to files, read after exit: blocking pipe reads would starve the two-thread
        // cooperative pool that the in-process fixture server's handlers need.
        let base = NSTemporaryDirectory() + "loadkit-child-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: base + ".out", contents: nil)
        FileManager.default.createFile(atPath: base + ".err", contents: nil)
        defer { try? FileManager.default.removeItem(atPath: base + ".out"); try? FileManager.default.removeItem(atPath: base + ".err") }
        p.standardOutput = FileHandle(forWritingAtPath: base + ".out")
        p.standardError = FileHandle(forWritingAtPath: base + ".err")
        let done = AsyncStream<Int32>.makeStream()
        p.terminationHandler = { done.continuation.yield($0.terminationStatus); done.continuation.finish() }
        try p.run()
        let killer = Task { try await Task.sleep(for: timeout); if p.isRunning { p.terminate() } }
        var status: Int32 = -1
        for await s in done.stream { status = s }
        killer.cancel()
        let outText = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
        let errText = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
        return Outcome(status: status, stderr: errText, stdout: outText)
    }

    /// Nearest-rank percentile of raw samples.
    static func exactPercentile(_ sorted: [Int64], _ p: Double) -> Int64 {
        let rank = max(1, Int((p / 100 * Double(sorted.count)).rounded(.up)))
        return sorted[min(sorted.count, rank) - 1]
    }

    @Test func threeProcessesMergeExactlyAndGateOnTheWhole() async throws {
        let bin = try #require(Self.loadkitBinary(), "the loadkit executable was not found next to the tests; run `swift build` first or set LOADKIT_BIN")
        // One fixture server: /ok answers after a delay that varies per request (0–19 ms), /fail answers 500.
        let server = try HTTPServer(host: "127.0.0.1", port: 0) { req in
            if req.path == "/fail" { return HTTPServerResponse(status: 500, body: Array("injected".utf8)) }
            let q = req.target.split(separator: "?").dropFirst().first.map(String.init) ?? ""
            var n = 0
            for part in q.split(separator: "&") { n += Int(part.split(separator: "=").last ?? "") ?? 0 }
            try? await Task.sleep(for: .milliseconds((n * 7) % 20))
            return HTTPServerResponse(status: 200, body: Array("ok".utf8))
        }
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)"
        let root = ShardFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let reports = root + "/reports"
        let runID = "test-\(UUID().uuidString.prefix(8))"
        // A common wall-clock start, far enough ahead for three debug processes to launch.
        let startAt = wallClockMillis() + 3_000

        // Three shards, identity from three kinds of variables (LoadKit's, a Kubernetes Indexed Job's, a CI's).
        let identities: [[String: String]] = [
            ["LOADKIT_SHARD_INDEX": "0", "LOADKIT_SHARD_COUNT": "3"],
            ["JOB_COMPLETION_INDEX": "1", "LOADKIT_SHARD_COUNT": "3"],
            ["CIRCLE_NODE_INDEX": "2", "CIRCLE_NODE_TOTAL": "3"],
        ]
        let outcomes = try await withThrowingTaskGroup(of: (Int, Outcome).self) { group in
            for i in 0..<3 {
                var env = identities[i]
                env["LOADKIT_REPORT_DIR"] = reports
                env["LOADKIT_RUN_ID"] = runID
                env["LOADKIT_START_AT"] = String(startAt)
                env["LOADKIT_START_TOLERANCE"] = "30s"  // a very loaded machine may launch a child late
                group.addTask {
                    (i, try await Self.run(bin, ["shard-demo", "--url", url, "--users", "15", "--requests", "4",
                                                 "--fail-users", "6", "--max-errors", "3",
                                                 "--raw", root + "/raw-\(i).txt", "--source", "127.0.0.\(i + 2)"],
                                           environment: env))
                }
            }
            var out: [Int: Outcome] = [:]
            for try await (i, o) in group { out[i] = o }
            return out
        }
        for i in 0..<3 {
            let o = try #require(outcomes[i])
            #expect(o.status == 0, "shard \(i) exited \(o.status): \(o.stderr)")
        }

        // Raw samples of all shards, and each shard's own result.
        var raw: [Int64] = []
        for i in 0..<3 {
            let text = try String(contentsOfFile: root + "/raw-\(i).txt", encoding: .utf8)
            raw += text.split(separator: "\n").compactMap { Int64($0) }
        }
        let merged = try ShardMerge.merge(paths: [reports], expectShards: 3)
        #expect(merged.runID == runID)
        #expect(merged.shards.map(\.manifest.index) == [0, 1, 2])

        // Totals add up: 15 users × 4 requests, 6 of them failed on purpose.
        let h = try #require(merged.result.metrics.trends["request"],
                             "no samples; shards said: \(outcomes.values.map(\.stderr)); errors \(merged.result.metrics.errors)")
        #expect(raw.count == 54)
        #expect(h.count == 54)
        #expect(merged.result.metrics.totalErrors == 6)
        #expect(merged.result.metrics.counter("operations") == 54)
        #expect(merged.shards.map { $0.result.metrics.trends["request"]?.count ?? 0 }.reduce(0, +) == 54)
        #expect(merged.shards.map { $0.result.metrics.totalErrors } == [2, 2, 2])

        // Merged percentiles equal those of the combined raw samples: the merged histogram is the
        // histogram of all raw samples, bucket for bucket, and within its 3 significant digits of
        // the exact nearest-rank percentiles.
        var fromRaw = Histogram(highestTrackableValue: h.highestTrackableValue, significantDigits: h.significantDigits)
        for v in raw { fromRaw.record(v) }
        #expect(h == fromRaw)
        let sorted = raw.sorted()
        for p in [50.0, 90, 95, 99, 100] {
            #expect(h.value(atPercentile: p) == fromRaw.value(atPercentile: p))
            let exact = Self.exactPercentile(sorted, p)
            #expect(abs(h.value(atPercentile: p) - exact) <= max(1, exact / 500), "p\(p): merged \(h.value(atPercentile: p)) vs raw \(exact)")
        }
        #expect(h.min == sorted.first && h.max == sorted.last)
        print("shard merge: \(h.count) samples from 3 processes; merged p50/p95/p99/max = "
              + "\([50.0, 95, 99, 100].map { h.value(atPercentile: $0) }) µs, raw nearest-rank = "
              + "\([50.0, 95, 99, 100].map { Self.exactPercentile(sorted, $0) }) µs")
        #expect(h.sum == raw.reduce(0, +))

        // The common start: every shard began at or after LOADKIT_START_AT, together.
        let starts = merged.shards.map(\.result.startedAtMillis)
        #expect(starts.allSatisfy { $0 >= startAt - 5 })
        #expect(starts.max()! - starts.min()! < 1_500, "starts \(starts)")

        // The SLA is breached only in aggregate: each shard (2 errors ≤ 3) passes, the whole (6) fails.
        for s in merged.shards {
            let alone = s.manifest.thresholds.evaluate(s.result)
            #expect(alone.allSatisfy { $0.passed }, "shard \(s.manifest.index) alone: \(alone)")
        }
        #expect(!merged.passed)
        #expect(merged.breachMessages == ["SLA breached in 'shard-demo': errors count = 6, limit <= 3"])
        #expect(merged.outcomes.map(\.message) == merged.thresholds.evaluate(merged.result).map(\.message))

        // The command: exit 1 on the breach (a CI gate), reports for the whole written.
        let cli = try await Self.run(bin, ["merge", reports, "--expect-shards", "3", "--out", root + "/merged"])
        #expect(cli.status == 1, "merge exited \(cli.status): \(cli.stderr)")
        #expect(cli.stderr.contains("SLA breached in 'shard-demo': errors count = 6, limit <= 3"))
        #expect(cli.stdout.contains("Merged 3 shards of run \(runID)"))
        let mergedDir = ReportWriter(root: root + "/merged").directory(for: "shard-demo")
        for f in ["summary.txt", "load_test_result.csv", "summary.json", "result.json", "report.html", "timeseries.csv"] {
            #expect(FileManager.default.fileExists(atPath: mergedDir + "/" + f), "\(f) missing")
        }

        // A missing shard and a duplicate shard are errors (exit 2), never a silent merge.
        let missing = try await Self.run(bin, ["merge", reports, "--expect-shards", "4", "--out", root + "/m4"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("missing shard 3 of 4"), "\(missing.stderr)")
        try FileManager.default.copyItem(atPath: reports + "/shard-1", toPath: root + "/again-shard-1")
        let dup = try await Self.run(bin, ["merge", reports, root + "/again-shard-1", "--out", root + "/md"])
        #expect(dup.status == 2)
        #expect(dup.stderr.contains("shard 1 delivered 2 times"), "\(dup.stderr)")
        let two = try await Self.run(bin, ["merge", reports + "/shard-0", reports + "/shard-2", "--out", root + "/m2"])
        #expect(two.status == 2)
        #expect(two.stderr.contains("missing shard 1 of 3"), "\(two.stderr)")
    }
}
