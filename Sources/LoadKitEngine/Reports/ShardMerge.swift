import Foundation
import LoadKitTransport
import LoadKitProtocols

/// One shard's output as loaded for a merge.
public struct ShardResultFile: Sendable {
    /// The `result.json` it came from.
    public var path: String
    /// Its manifest (`shard.json`), or one rebuilt from the result's `shard`/`run_id` facts.
    public var manifest: ShardManifest
    /// The shard's result.
    public var result: RunResult

    /// Creates a loaded shard (tests build them in memory).
    public init(path: String, manifest: ShardManifest, result: RunResult) {
        self.path = path; self.manifest = manifest; self.result = result
    }
}

/// Why shard results were not merged. Every problem found is listed, never silently merged over.
public struct ShardMergeError: ClassifiedError, Sendable, Equatable {
    /// One problem with the set of shard results.
    public enum Problem: Sendable, Equatable, CustomStringConvertible {
        /// Shard indices absent (count from the manifests or `--expect-shards`).
        case missing(indices: [Int], count: Int)
        /// The same index delivered more than once (the files named).
        case duplicate(index: Int, paths: [String])
        /// Shards disagree on something that must be equal (run id, test name, shard count, thresholds).
        case mismatch(field: String, values: [String])
        /// A file or folder that could not be read as a shard result, or nothing to merge.
        case input(String)

        /// Stable key: `shard_missing`, `shard_duplicate`, `shard_mismatch`, `shard_input`.
        public var kind: String {
            switch self {
            case .missing: return "shard_missing"
            case .duplicate: return "shard_duplicate"
            case .mismatch: return "shard_mismatch"
            case .input: return "shard_input"
            }
        }

        public var description: String {
            switch self {
            case .missing(let ix, let count):
                return "missing shard\(ix.count == 1 ? "" : "s") \(ix.map { "\($0)" }.joined(separator: ", ")) of \(count) "
                    + "(have \(count - ix.count))"
            case .duplicate(let i, let paths):
                return "shard \(i) delivered \(paths.count) times: \(paths.joined(separator: ", "))"
            case .mismatch(let field, let values):
                return "shards disagree on \(field): \(values.joined(separator: " vs "))"
            case .input(let m):
                return m
            }
        }
    }

    /// Every problem found.
    public var problems: [Problem]
    /// The first problem's kind (`shard_missing`, `shard_duplicate`, `shard_mismatch`, `shard_input`).
    public var kind: String { problems.first?.kind ?? "shard_input" }
    /// The merge's own inputs are wrong: the load generator's side.
    public var source: FailureSource { .loadGenerator }
    public var description: String {
        "cannot merge shard results: " + problems.map(\.description).joined(separator: "; ")
    }
    /// Whether some problem has this kind.
    public func has(_ kind: String) -> Bool { problems.contains { $0.kind == kind } }
}

/// The merge of every shard of one run, judged on the whole.
public struct MergedRun: Sendable {
    /// The merged result (histograms merged bucket by bucket, counters summed).
    public var result: RunResult
    /// The thresholds the shards declared.
    public var thresholds: [Threshold]
    /// The thresholds judged on ``result`` (same evaluation and messages as a single-machine run).
    public var outcomes: [ThresholdOutcome]
    /// The run id shared by the shards.
    public var runID: String?
    /// The shards merged, by index.
    public var shards: [ShardResultFile]
    /// Whether every threshold held on the whole.
    public var passed: Bool { outcomes.allSatisfy(\.passed) }
    /// The breaches as a single-machine run states them: `SLA breached in 'name': message`.
    public var breachMessages: [String] {
        outcomes.filter { !$0.passed }.map { "SLA breached in '\(result.name)': \($0.message)" }
    }
}

/// Loads, checks and merges shard results: the library side of `loadkit merge`.
///
/// ```swift
/// let merged = try ShardMerge.merge(paths: ["reports/"], expectShards: 3)
/// merged.result.expect(merged.thresholds)       // one test failure per breach on the whole
/// ```
public enum ShardMerge {
    /// Loads shard results from `result.json` files or folders. A folder is searched (recursively)
    /// for `result.json` files with a `shard.json` beside them; in a test's run history
    /// (`<test>/<run>/`, see ``RunHistory``) only the run `latest` names is taken, so a shared
    /// volume holding earlier runs merges the newest one. A `result.json` named directly may
    /// lack the manifest: its `shard` (`i/n`) and `run_id` facts are used, with no thresholds.
    public static func load(_ paths: [String]) throws -> [ShardResultFile] {
        var files: [String] = []
        var problems: [ShardMergeError.Problem] = []
        let fm = FileManager.default
        for p in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: p, isDirectory: &isDir) else { problems.append(.input("no such file or folder: \(p)")); continue }
            if !isDir.boolValue { files.append(p); continue }
            let found = (fm.enumerator(atPath: p)?.allObjects as? [String] ?? [])
                .filter { ($0 as NSString).lastPathComponent == ShardManifest.fileName }
                .sorted()
                .map { (((p as NSString).appendingPathComponent($0)) as NSString).deletingLastPathComponent }
                .filter(isNewestRun)
                .map { ($0 as NSString).appendingPathComponent("result.json") }
            if found.isEmpty { problems.append(.input("no shard results (shard.json + result.json) under \(p)")) }
            files += found
        }
        var out: [ShardResultFile] = []
        for f in files {
            do { out.append(try loadOne(f)) } catch { problems.append(.input(String(describing: error))) }
        }
        if out.isEmpty && problems.isEmpty { problems.append(.input("no shard result files given")) }
        if !problems.isEmpty { throw ShardMergeError(problems: problems) }
        return out
    }

    /// Whether `directory` is not an older run of a run history (a folder not named like a run,
    /// or the run its history's `latest` points at).
    static func isNewestRun(_ directory: String) -> Bool {
        let name = (directory as NSString).lastPathComponent
        guard RunHistory.isRunFolderName(name) else { return true }
        let history = (directory as NSString).deletingLastPathComponent
        guard let latest = RunHistory.latest(in: history) else { return true }
        return (latest as NSString).lastPathComponent == name
    }

    /// Loads one shard's `result.json` and its manifest (or the facts in the result).
    public static func loadOne(_ resultPath: String) throws -> ShardResultFile {
        let result = try RunResult.load(from: resultPath)
        let dir = (resultPath as NSString).deletingLastPathComponent
        let manifestPath = (dir as NSString).appendingPathComponent(ShardManifest.fileName)
        if let data = FileManager.default.contents(atPath: manifestPath) {
            do {
                return ShardResultFile(path: resultPath, manifest: try JSONDecoder().decode(ShardManifest.self, from: data), result: result)
            } catch {
                throw ReportError(message: "shard manifest \(manifestPath) is not readable: \(error)")
            }
        }
        let parts = (result.environment["shard"] ?? "").split(separator: "/").compactMap { Int($0) }
        guard parts.count == 2, parts[1] >= 1, (0..<parts[1]).contains(parts[0]) else {
            throw ReportError(message: "\(resultPath) is not a shard result: no \(ShardManifest.fileName) beside it and no 'shard' fact")
        }
        var m = ShardManifest(runID: result.environment["run_id"], test: result.name,
                              shard: Shard(uncheckedIndex: parts[0], count: parts[1]), thresholds: [])
        m.resultFile = (resultPath as NSString).lastPathComponent
        return ShardResultFile(path: resultPath, manifest: m, result: result)
    }

    /// Checks that `shards` are exactly one run's shards 0..<count, each once (`expectShards`
    /// overrides the count the manifests state and must agree with it), then merges them and
    /// judges the thresholds on the whole. Throws ``ShardMergeError`` listing every problem.
    public static func merge(_ shards: [ShardResultFile], expectShards: Int? = nil) throws -> MergedRun {
        var problems: [ShardMergeError.Problem] = []
        guard !shards.isEmpty else { throw ShardMergeError(problems: [.input("no shard results to merge")]) }
        func distinct(_ field: String, _ value: (ShardResultFile) -> String) {
            var seen: [String] = []
            for s in shards { let v = value(s); if !seen.contains(v) { seen.append(v) } }
            if seen.count > 1 { problems.append(.mismatch(field: field, values: seen)) }
        }
        distinct("run id") { $0.manifest.runID ?? "(none)" }
        distinct("test name") { $0.manifest.test }
        distinct("shard count") { String($0.manifest.count) }
        distinct("thresholds") { $0.manifest.thresholds.map(\.description).joined(separator: ", ") }
        let declared = shards[0].manifest.count
        if let e = expectShards, e != declared, !problems.contains(where: { if case .mismatch("shard count", _) = $0 { true } else { false } }) {
            problems.append(.mismatch(field: "shard count", values: ["--expect-shards \(e)", "shards say \(declared)"]))
        }
        let count = expectShards ?? shards.map(\.manifest.count).max() ?? declared
        let byIndex = Dictionary(grouping: shards, by: \.manifest.index)
        for (i, group) in byIndex.sorted(by: { $0.key < $1.key }) where group.count > 1 {
            problems.append(.duplicate(index: i, paths: group.map(\.path)))
        }
        let outOfRange = byIndex.keys.filter { !(0..<count).contains($0) }.sorted()
        if !outOfRange.isEmpty {
            problems.append(.mismatch(field: "shard index", values: outOfRange.map { "\($0) not in 0..<\(count)" }))
        }
        let missing = (0..<count).filter { byIndex[$0] == nil }
        if !missing.isEmpty { problems.append(.missing(indices: missing, count: count)) }
        if !problems.isEmpty {
            // Report the most telling problem first: duplicates, then missing, then mismatches.
            let order = ["shard_duplicate", "shard_missing", "shard_mismatch", "shard_input"]
            problems.sort { order.firstIndex(of: $0.kind)! < order.firstIndex(of: $1.kind)! }
            throw ShardMergeError(problems: problems)
        }
        let ordered = shards.sorted { $0.manifest.index < $1.manifest.index }
        let first = ordered[0].manifest
        var result = RunResult.merged(alignedSeries(ordered.map(\.result)), name: first.test)!
        for key in ["shard", "shard_index", "shard_judge"] { result.environment[key] = nil }
        result.environment["shard_count"] = String(count)
        result.environment["shards_merged"] = ordered.map { String($0.manifest.index) }.joined(separator: ",")
        if let id = first.runID { result.environment["run_id"] = id }
        let outcomes = first.thresholds.evaluate(result)
        return MergedRun(result: result, thresholds: first.thresholds, outcomes: outcomes, runID: first.runID, shards: ordered)
    }

    /// Shards started at different wall-clock moments: their per-second series are shifted by
    /// whole seconds so that second k of the merge is the same wall-clock second on every shard
    /// (with `LOADKIT_START_AT` the shift is 0).
    static func alignedSeries(_ results: [RunResult]) -> [RunResult] {
        guard let origin = results.map(\.startedAtMillis).min() else { return results }
        return results.map { r in
            let shift = Int((r.startedAtMillis - origin + 500) / 1000)
            guard shift > 0 else { return r }
            var r = r
            r.metrics = r.metrics.shiftedSeries(by: shift)
            return r
        }
    }

    /// Merges the shards of each test separately (a sharded suite writes one folder per test):
    /// one entry per test name, in name order, each the merged run or why it could not be merged.
    public static func mergeEachTest(_ shards: [ShardResultFile], expectShards: Int? = nil)
        -> [(test: String, outcome: Result<MergedRun, ShardMergeError>)] {
        Dictionary(grouping: shards, by: \.manifest.test).sorted { $0.key < $1.key }.map { test, group in
            do { return (test, .success(try merge(group, expectShards: expectShards))) } catch let e as ShardMergeError {
                return (test, .failure(e))
            } catch {
                return (test, .failure(ShardMergeError(problems: [.input(String(describing: error))])))
            }
        }
    }

    /// Loads (``load(_:)``) and merges (``merge(_:expectShards:)``).
    public static func merge(paths: [String], expectShards: Int? = nil) throws -> MergedRun {
        try merge(load(paths), expectShards: expectShards)
    }
}

extension MergedRun {
    /// Writes the whole run's reports (summary, CSV, JSON, `report.html`, `timeseries.csv`,
    /// mergeable `result.json`) into `<root>/<test>/<start time>/` (with `latest`), with the
    /// thresholds judged on the whole.
    @discardableResult
    public func writeReports(root: String) throws -> ReportFiles {
        try ReportWriter(root: root).write(result, outcomes: outcomes)
    }

    /// The console summary of the whole, with a line naming the merged shards.
    public var summary: String {
        "Merged \(shards.count) shard\(shards.count == 1 ? "" : "s") of run \(runID ?? "(no run id)")\n"
            + ConsoleSummary.render(result, outcomes: outcomes)
    }
}
