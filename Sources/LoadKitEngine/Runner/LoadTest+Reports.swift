import Foundation
import LoadKitTransport
import LoadKitProtocols

extension LoadTest {
    /// Writes the run's reports (a shard's under `shard-<i>/` with `shard.json`) and prints the
    /// console summary; returns the report root when a plain run's files were written. Errors are
    /// printed, never thrown: the result is worth more than its files.
    func writeReports(_ result: RunResult) -> String? {
        let root = options.reportRoot ?? settings.string("LOADKIT_REPORT_DIR")
        if options.shard.count > 1 {
            let outcomes = options.thresholds.isEmpty ? [] : options.thresholds.evaluate(result)
            do {
                let files = try ShardOutput.write(result, shard: options.shard, runID: settings.runID,
                                                  thresholds: options.thresholds, root: root, settings: settings)
                ConsoleSummary.printOut(ConsoleSummary.render(result, outcomes: outcomes, full: settings.wantsFullSummary)
                    + "\nloadkit: \(name): shard \(options.shard.index)/\(options.shard.count) reports in \(files.directory)")
            } catch {
                writeStderr("loadkit: \(name): could not write shard reports: \(error)\n")
            }
            return nil
        }
        var writer = ReportWriter(root: root)
        writer.settings = settings   // LOADKIT_KEEP_RUNS, LOADKIT_SUMMARY from this run's environment + .env
        return writer.finish(result, thresholds: options.thresholds).files == nil ? nil : writer.root
    }
}

/// Runs CPU- or I/O-heavy or blocking work (encoding and writing reports, a child process's pipe)
/// on a thread of its own and resumes the caller with its result, keeping Swift's cooperative
/// pool — one thread per core — free for the tasks that need it.
package func offThePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        Thread { c.resume(with: Result { try work() }) }.start()
    }
}
