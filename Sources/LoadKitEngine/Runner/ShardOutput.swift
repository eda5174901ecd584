import Foundation
import LoadKitTransport
import LoadKitProtocols

/// What a shard writes next to its `result.json` (as `shard.json`): who it is in which run, and
/// the SLA as data, so a merge can check it has every shard of one run and judge the same
/// thresholds on the whole.
public struct ShardManifest: Sendable, Codable, Equatable {
    /// Format version of this file.
    public var format: Int = 1
    /// The run all shards belong to (`LOADKIT_RUN_ID`, or the CI's run id); nil when none was given.
    public var runID: String?
    /// The test's name.
    public var test: String
    /// This shard's index, 0..<count.
    public var index: Int
    /// How many shards the run has.
    public var count: Int
    /// The thresholds the test declared (judged on the merged result).
    public var thresholds: [Threshold]
    /// The result file's name, relative to this manifest's folder.
    public var resultFile: String = "result.json"

    /// The manifest's file name.
    public static let fileName = "shard.json"

    /// Creates a manifest.
    public init(runID: String?, test: String, shard: Shard, thresholds: [Threshold]) {
        self.runID = runID; self.test = test; self.index = shard.index; self.count = shard.count
        self.thresholds = thresholds
    }
}

/// Where and how a shard writes its reports. With more than one shard each shard writes into
/// `<root>/shard-<index>/<test>/` (so shards sharing a volume never overwrite each other):
/// the usual reports plus `result.json` (mergeable) and ``ShardManifest`` `shard.json`.
package enum ShardOutput {
    /// The report root for `shard` under `root` (`<root>/shard-<index>` when sharded, else `root`).
    public static func reportRoot(_ root: String?, shard: Shard) -> String {
        let base = root ?? ReportWriter.defaultRoot
        return shard.count > 1 ? (base as NSString).appendingPathComponent("shard-\(shard.index)") : base
    }

    /// The result as a shard writes it: `shard`, `shard_index`, `shard_count` and `run_id` facts added.
    /// (`LoadTest` also records `shard_judge=local` when its settings ask to judge each shard alone.)
    public static func annotate(_ result: RunResult, shard: Shard, runID: String?) -> RunResult {
        var r = result
        r.environment["shard"] = "\(shard.index)/\(shard.count)"
        r.environment["shard_index"] = String(shard.index)
        r.environment["shard_count"] = String(shard.count)
        if let runID { r.environment["run_id"] = runID }
        return r
    }

    /// Writes the shard manifest into `directory` (the folder holding the shard's `result.json`).
    @discardableResult
    public static func writeManifest(_ manifest: ShardManifest, into directory: String) throws -> String {
        let path = (directory as NSString).appendingPathComponent(ShardManifest.fileName)
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try e.encode(manifest).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ReportError(message: "cannot write shard manifest \(path): \(error.localizedDescription)")
        }
        return path
    }

    /// Writes a shard's complete output (all reports, `result.json`, `shard.json`) under `root`
    /// and returns the report files. Used by ``LoadTest/run(_:)`` for sharded runs; call it
    /// directly when a run's result is produced another way.
    @discardableResult
    public static func write(_ result: RunResult, shard: Shard, runID: String?, thresholds: [Threshold],
                             root: String?) throws -> ReportFiles {
        try write(result, shard: shard, runID: runID, thresholds: thresholds, root: root, settings: .current)
    }

    /// ``write(_:shard:runID:thresholds:root:)`` with the run's own settings (`LOADKIT_KEEP_RUNS`,
    /// `LOADKIT_JUNIT`).
    static func write(_ result: RunResult, shard: Shard, runID: String?, thresholds: [Threshold],
                      root: String?, settings: Settings) throws -> ReportFiles {
        let annotated = annotate(result, shard: shard, runID: runID)
        var writer = ReportWriter(root: reportRoot(root, shard: shard))
        writer.settings = settings
        let outcomes = thresholds.isEmpty ? [] : thresholds.evaluate(annotated)
        let files = try writer.write(annotated, outcomes: outcomes)
        try writeManifest(ShardManifest(runID: runID, test: result.name, shard: shard, thresholds: thresholds),
                          into: files.directory)
        return files
    }
}

extension RunResult {
    /// One shard of a sharded run, judged by the merge rather than alone: unless the run's
    /// settings said `LOADKIT_SHARD_JUDGE=local` (recorded as `shard_judge`), or the process's do.
    var isJudgedByTheMerge: Bool {
        environment["shard_index"] != nil && environment["shard_judge"] != "local"
            && Settings.current.string("LOADKIT_SHARD_JUDGE") != "local"
    }
}
