import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Relative SLAs (`noWorseThan: .baseline`) and `loadkit compare` on runs with known differences.
@Suite struct BaselineCompareTests {
    static let base = ReportFixtures.run(name: "checkout", startedAtMillis: 1_795_000_000_000)
    static func later(_ scale: Double, seed: UInt64 = 7) -> RunResult {
        ReportFixtures.run(name: "checkout", p95Scale: scale, seed: seed, startedAtMillis: 1_795_086_400_000)
    }
    static let sla = SLA.p95("http_req_duration", noWorseThan: .baseline, by: 0.10)

    /// Builds the synthetic runs (seconds in a debug build; memoized) on a thread of its own, so a
    /// test does not hold one of Swift's two pool threads that long while others run in parallel.
    static func warmUp() async throws {
        try await offThePool { _ = (base, later(1.20), later(1.05), later(1.0, seed: 8), later(1.0), later(1.2)) }
    }

    @Test func relativeP95FailsOnTwentyPercentAndPassesOnFive() async throws {
        try await Self.warmUp()
        let worse = [Self.sla].evaluate(Self.later(1.20), baseline: .found(Self.base, path: "base/result.json")).last!
        #expect(!worse.passed && !worse.skipped)
        #expect(worse.message.hasPrefix("http_req_duration p(95) = "))
        #expect(worse.message.contains("(baseline 24.5 ms + 10 %): +20 % vs baseline"), "\(worse.message)")
        #expect(worse.message.contains("beyond the run-to-run spread"))
        let slightly = [Self.sla].evaluate(Self.later(1.05), baseline: .found(Self.base, path: "base/result.json")).last!
        #expect(slightly.passed, "\(slightly.message)")
        #expect(slightly.message.contains("+5") || slightly.message.contains("+4"))
        #expect(Self.sla.description == "http_req_duration p(95) <= baseline + 10 %")
        // The same load again (another seed): the difference is inside the run-to-run spread.
        let again = [Self.sla].evaluate(Self.later(1.0, seed: 8), baseline: .found(Self.base, path: "b")).last!
        #expect(again.passed && again.message.contains("inside the run-to-run spread"), "\(again.message)")
        // Throughput must not drop: lower is worse.
        let rps = SLA.throughput("http_reqs", noWorseThan: .baseline, by: 0.10)
        var slow = Self.later(1.0)
        slow.durationSeconds *= 1.25
        #expect(![rps].evaluate(slow, baseline: .found(Self.base, path: "b")).last!.passed)
        #expect([rps].evaluate(Self.later(1.0), baseline: .found(Self.base, path: "b")).last!.passed)
    }

    @Test func baselineFoundThroughLOADKIT_BASELINEPaths() async throws {
        try await Self.warmUp()
        let root = NSTemporaryDirectory() + "loadkit-baseline-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let writer = ReportWriter(root: root, keepRuns: 0)
        let baseFiles = try writer.write(Self.base)
        let new = Self.later(1.2)
        try writer.write(new)   // the new run is in the same history now: its predecessor is the baseline
        for path in [baseFiles.result, baseFiles.directory, root, writer.testDirectory(for: "checkout")] {
            let o = [Self.sla].evaluate(new, baseline: Baseline.lookup(for: new, path: path)).last!
            #expect(!o.passed && o.message.contains("+20 % vs baseline"), "\(path): \(o.message)")
        }
        // Unset: skipped with a note, not failed. Set but wrong: failed, naming the path.
        let unset = [Self.sla].evaluate(new, baseline: Baseline.lookup(for: new, path: nil)).last!
        #expect(unset.passed && unset.skipped)
        #expect(unset.message.hasSuffix("skipped, no baseline (LOADKIT_BASELINE is unset)"))
        let missing = [Self.sla].evaluate(new, baseline: Baseline.lookup(for: new, path: root + "/nope")).last!
        #expect(!missing.passed && missing.message.contains("baseline unusable: LOADKIT_BASELINE=\(root)/nope: no such file or folder"))
        let other = ReportFixtures.run(name: "other", startedAtMillis: 1_795_086_400_000)
        let wrongTest = [Self.sla].evaluate(other, baseline: Baseline.lookup(for: other, path: baseFiles.result)).last!
        #expect(!wrongTest.passed && wrongTest.message.contains("is a result of test 'checkout', not 'other'"))
        let first = [Self.sla].evaluate(Self.base, baseline: Baseline.lookup(for: Self.base, path: root)).last!
        #expect(!first.passed && first.message.contains("no run older than this one"))
        // A metric the baseline lacks: skipped, with a note.
        let newMetric = SLA.p95("brand_new", noWorseThan: .baseline, by: 0.1)
        var withNew = new
        withNew.metrics.trends["brand_new"] = withNew.metrics.trends["login"]
        let skipped = [newMetric].evaluate(withNew, baseline: .found(Self.base, path: "b")).last!
        #expect(skipped.passed && skipped.skipped && skipped.message.contains("has no samples of brand_new"))
        // Abort checks during a run never see a relative threshold as breached.
        #expect([Self.sla].breachesToAbort(new.metrics, elapsedSeconds: 10).isEmpty)
        // The skipped outcome reaches the reports.
        #expect(ConsoleSummary.render(new, outcomes: [unset]).contains("– http_req_duration p(95) = "))
        #expect(HTMLReport.render(new, outcomes: [unset]).contains("<tr class=\"skip\">"))
    }

    @Test func comparisonTableAndVerdicts() async throws {
        try await Self.warmUp()
        let c = RunComparison.compare(base: Self.base, new: Self.later(1.2), maxRegression: 0.10)
        let p95 = try #require(c.rows.first { $0.key == "http_req_duration p(95)" })
        #expect(p95.regressed && abs(p95.change! - 0.2) < 0.02)
        #expect(c.regressions.contains { $0.key == "http_req_duration{name:/items/{id}} p(95)" })
        #expect(!c.regressions.contains { $0.metric == "login" }, "login did not change")
        #expect(!c.rows.first { $0.key == "http_req_duration max" }!.regressed, "max is shown, not judged")
        let md = c.markdown(baseLabel: "base", newLabel: "new")
        let lines = md.split(separator: "\n").map(String.init)
        #expect(lines[0] == "| metric | statistic | base | new | change | spread | verdict |")
        let row = try #require(lines.first { $0.hasPrefix("| http_req_duration | p(95) |") })
        #expect(row.contains("| +20 % |") && row.contains("✗ worse by more than 10 %"), "\(row)")
        #expect(lines.contains { $0.hasPrefix("| errors | rate |") })
        #expect(lines.contains { $0.hasPrefix("| http_reqs | per_second |") })
        #expect(md.contains("regressed past the limit: http_req_duration avg, http_req_duration p(50)"))
        // Overrides: the metric (and its tagged variants) off, or one statistic looser.
        let off = RunComparison.compare(base: Self.base, new: Self.later(1.2), maxRegression: 0.10, overrides: ["http_req_duration": .off])
        #expect(off.regressions.isEmpty)
        let loose = RunComparison.compare(base: Self.base, new: Self.later(1.2), maxRegression: 0.10,
                                          overrides: ["http_req_duration p(95)": .fraction(0.25)])
        #expect(!loose.regressions.contains { $0.key == "http_req_duration p(95)" })
        #expect(loose.regressions.contains { $0.key == "http_req_duration p(99)" })
        #expect(RunComparison.compare(base: Self.base, new: Self.later(1.05), maxRegression: 0.10).regressions.isEmpty)
        #expect(RunComparison.parseLimit("15%") == .fraction(0.15) && RunComparison.parseLimit("off") == .off)
        #expect(RunComparison.parseLimit("x") == nil && RunComparison.parseLimit("-5%") == nil)
    }

    @Test func compareCommandExitCodes() async throws {
        guard let bin = ShardProcessTests.loadkitBinary() else {
            Issue.record("the loadkit executable was not built next to the tests"); return
        }
        let root = NSTemporaryDirectory() + "loadkit-compare-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let writer = ReportWriter(root: root + "/base", keepRuns: 0)
        let baseFiles = try writer.write(Self.base)
        let worse = try ReportWriter(root: root + "/worse").write(Self.later(1.2))
        let fine = try ReportWriter(root: root + "/fine").write(Self.later(1.05))

        let regressed = try await ShardProcessTests.run(bin, ["compare", baseFiles.result, worse.result])
        #expect(regressed.status == 1, "\(regressed.stderr)")
        #expect(regressed.stdout.contains("| http_req_duration | p(95) |"))
        #expect(regressed.stdout.contains("✗ worse by more than 10 %"))
        let ok = try await ShardProcessTests.run(bin, ["compare", root + "/base", root + "/fine", "--out", root + "/cmp.md"])
        #expect(ok.status == 0, "\(ok.stdout)\n\(ok.stderr)")
        #expect(try String(contentsOfFile: root + "/cmp.md", encoding: .utf8).contains("No metric regressed past its limit"))
        #expect(ok.stdout.contains(RunHistory.folderName(startedAtMillis: Self.base.startedAtMillis)))
        let loosened = try await ShardProcessTests.run(bin, ["compare", baseFiles.directory, worse.directory, "--max-regression", "25%"])
        #expect(loosened.status == 0, "\(loosened.stdout)")
        let overridden = try await ShardProcessTests.run(bin, ["compare", baseFiles.directory, worse.directory,
                                                               "--max-regression", "http_req_duration=30%"])
        #expect(overridden.status == 0, "\(overridden.stdout)")
        let bad = try await ShardProcessTests.run(bin, ["compare", baseFiles.result, root + "/nothing"])
        #expect(bad.status == 2 && bad.stderr.contains("no such file or folder"))
        let typo = try await ShardProcessTests.run(bin, ["compare", baseFiles.result, fine.result, "--max-regression", "http_req_duraton=5%"])
        #expect(typo.status == 2 && typo.stderr.contains("names no metric"))
        let badLimit = try await ShardProcessTests.run(bin, ["compare", baseFiles.result, fine.result, "--max-regression", "lots"])
        #expect(badLimit.status == 2 && badLimit.stderr.contains("expected a percentage"))
    }
}
