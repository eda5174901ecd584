import Foundation
import LoadKitTransport
import LoadKitProtocols

/// What a relative threshold compares a run with.
public enum ThresholdReference: String, Sendable, Hashable, Codable {
    /// An earlier run: the result named by `LOADKIT_BASELINE` (see ``Baseline``).
    case baseline
}

/// How much worse than its reference a relative threshold lets a value be.
public struct RelativeLimit: Sendable, Hashable, Codable {
    /// What the value is compared with.
    public var reference: ThresholdReference
    /// The allowed change as a fraction of the reference value (0.10 = 10 %).
    public var by: Double

    /// Creates a relative limit.
    public init(_ reference: ThresholdReference, by: Double) {
        self.reference = reference; self.by = by
    }

    /// The absolute limit for a reference value: up by `by` when higher is worse (`<`, `<=`),
    /// down by `by` when lower is worse (`>`, `>=`).
    public func limit(for reference: Double, _ comparison: Comparison) -> Double {
        higherIsWorse(comparison) ? reference * (1 + by) : reference * (1 - by)
    }

    func higherIsWorse(_ c: Comparison) -> Bool { c == .below || c == .atMost }

    /// `baseline + 10 %` / `baseline − 10 %`.
    func text(_ comparison: Comparison) -> String {
        "\(reference.rawValue) \(higherIsWorse(comparison) ? "+" : "−") \(Threshold.trim(by * 100)) %"
    }
}

extension SLA {
    /// Percentile `p` of trend `metric` at most `by` (a fraction: 0.10 = 10 %) above the same
    /// percentile in the baseline run (`LOADKIT_BASELINE`): a nightly job then fails on drift,
    /// not only on a breach of an absolute limit. See ``Baseline`` for how the baseline is found
    /// and what happens without one.
    public static func percentile(_ p: Double, _ metric: String, noWorseThan reference: ThresholdReference, by: Double) -> Threshold {
        relative(metric, .percentile(p), .duration, .atMost, reference, by)
    }

    /// The 50th percentile of `metric` at most `by` above the baseline's.
    public static func p50(_ metric: String, noWorseThan reference: ThresholdReference, by: Double) -> Threshold {
        percentile(50, metric, noWorseThan: reference, by: by)
    }

    /// The 90th percentile of `metric` at most `by` above the baseline's.
    public static func p90(_ metric: String, noWorseThan reference: ThresholdReference, by: Double) -> Threshold {
        percentile(90, metric, noWorseThan: reference, by: by)
    }

    /// The 95th percentile of `metric` at most `by` above the baseline's:
    /// `SLA.p95("http_req_duration", noWorseThan: .baseline, by: 0.10)`.
    public static func p95(_ metric: String, noWorseThan reference: ThresholdReference, by: Double) -> Threshold {
        percentile(95, metric, noWorseThan: reference, by: by)
    }

    /// The 99th percentile of `metric` at most `by` above the baseline's.
    public static func p99(_ metric: String, noWorseThan reference: ThresholdReference, by: Double) -> Threshold {
        percentile(99, metric, noWorseThan: reference, by: by)
    }

    /// The mean of `metric` at most `by` above the baseline's.
    public static func avg(_ metric: String, noWorseThan reference: ThresholdReference, by: Double) -> Threshold {
        relative(metric, .avg, .duration, .atMost, reference, by)
    }

    /// Counter `metric` per second at least the baseline's less `by` (throughput must not drop).
    public static func throughput(_ metric: String, noWorseThan reference: ThresholdReference, by: Double) -> Threshold {
        relative(metric, .perSecond, .perSecond, .atLeast, reference, by)
    }

    static func relative(_ metric: String, _ statistic: Statistic, _ unit: ThresholdUnit, _ comparison: Comparison,
                         _ reference: ThresholdReference, _ by: Double) -> Threshold {
        var t = Threshold(metric: metric, statistic: statistic, comparison: comparison, limit: 0, unit: unit)
        t.relative = RelativeLimit(reference, by: by)
        return t
    }
}

/// The earlier run relative thresholds compare with, named by `LOADKIT_BASELINE` (a path).
///
/// The path may be a `result.json`, a run folder, a test's history folder (its newest run
/// *older than the run being judged* is used, so pointing at the current report root compares
/// with the previous run), or a report root holding the test's folder (`loadkit-reports/`, a
/// `loadkit merge --out` folder, last night's downloaded artifact).
///
/// Without a baseline the decision is:
/// - **`LOADKIT_BASELINE` unset → the relative threshold is skipped, with a note** (it passes,
///   shown as skipped in the summary, the HTML report and JUnit). The first nightly run has
///   nothing to compare with, and the absolute thresholds still judge it.
/// - **`LOADKIT_BASELINE` set but unusable → the threshold fails**, naming the path and what was
///   looked for. A baseline that was asked for and cannot be read is a broken set-up; skipping
///   would switch the drift gate off silently, night after night.
/// - A baseline without samples of the metric (a metric new since then) is skipped, with a note.
public enum Baseline {
    /// The variable naming the baseline.
    public static let variable = "LOADKIT_BASELINE"

    /// What was found for one run.
    public enum Lookup: Sendable {
        /// `LOADKIT_BASELINE` is not set.
        case unset
        /// The baseline run and the file it came from.
        case found(RunResult, path: String)
        /// Set but unusable: why.
        case unusable(String)
    }

    /// Looks up the baseline for `result` from `LOADKIT_BASELINE` (environment or `.env`).
    public static func lookup(for result: RunResult, path: String? = Settings.current.string(variable)) -> Lookup {
        guard let path, !path.isEmpty else { return .unset }
        do {
            let (run, file) = try resolve(path, for: result)
            return .found(run, path: file)
        } catch {
            return .unusable("\(error)")
        }
    }

    /// Finds the baseline result for `result` under `path` (see the type's documentation).
    public static func resolve(_ path: String, for result: RunResult) throws -> (RunResult, String) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ReportError(message: "\(variable)=\(path): no such file or folder")
        }
        func load(_ file: String) throws -> (RunResult, String) {
            let run = try RunResult.load(from: file)
            guard run.name == result.name else {
                throw ReportError(message: "\(variable)=\(path): \(file) is a result of test '\(run.name)', not '\(result.name)'")
            }
            return (run, file)
        }
        if !isDir.boolValue { return try load(path) }
        let direct = (path as NSString).appendingPathComponent("result.json")
        if fm.fileExists(atPath: direct) { return try load(direct) }
        let runs = RunHistory.runs(in: path)
        if !runs.isEmpty {
            let current = RunHistory.folderName(startedAtMillis: result.startedAtMillis)
            guard let older = runs.last(where: { ($0 as NSString).lastPathComponent < current }) else {
                throw ReportError(message: "\(variable)=\(path): no run older than this one (\(current)) to compare with")
            }
            return try load((older as NSString).appendingPathComponent("result.json"))
        }
        let testDir = ReportWriter(root: path).testDirectory(for: result.name)
        if RunHistory.isDirectory(testDir) { return try resolve(testDir, for: result) }
        throw ReportError(message: "\(variable)=\(path): no result of test '\(result.name)' there (looked for result.json, "
                          + "run folders, and a '\((testDir as NSString).lastPathComponent)' folder)")
    }
}

extension Threshold {
    /// Evaluates a relative threshold against `result` and its baseline lookup.
    func evaluateRelative(_ result: RunResult, _ lookup: Baseline.Lookup) -> ThresholdOutcome {
        guard let rel = relative else { return evaluate(result) }
        let head = "\(metric) \(statistic)"
        guard let actual = actualValue(in: result.metrics, durationSeconds: result.durationSeconds) else {
            return ThresholdOutcome(threshold: self, actual: nil, passed: false,
                                    message: "\(head): no samples, limit \(comparison.rawValue) \(rel.text(comparison))")
        }
        let now = "\(head) = \(Threshold.format(actual, unit))"
        switch lookup {
        case .unset:
            return ThresholdOutcome(threshold: self, actual: actual, passed: true, skipped: true,
                                    message: "\(now), limit \(comparison.rawValue) \(rel.text(comparison)): skipped, no baseline "
                                        + "(\(Baseline.variable) is unset)")
        case .unusable(let why):
            return ThresholdOutcome(threshold: self, actual: actual, passed: false,
                                    message: "\(now), limit \(comparison.rawValue) \(rel.text(comparison)): baseline unusable: \(why)")
        case .found(let base, let path):
            guard let b = actualValue(in: base.metrics, durationSeconds: base.durationSeconds) else {
                return ThresholdOutcome(threshold: self, actual: actual, passed: true, skipped: true,
                                        message: "\(now), limit \(comparison.rawValue) \(rel.text(comparison)): skipped, "
                                            + "the baseline \(path) has no samples of \(metric)")
            }
            let limit = rel.limit(for: b, comparison)
            let passed = comparison.holds(actual, limit)
            var message = "\(now), limit \(comparison.rawValue) \(Threshold.format(limit, unit)) "
                + "(baseline \(Threshold.format(b, unit)) \(rel.higherIsWorse(comparison) ? "+" : "−") \(Threshold.trim(rel.by * 100)) %)"
            if b != 0 { message += ": \(Self.signedPercent((actual - b) / b)) vs baseline" }
            if let spread = result.withinSpread(of: statistic, metric: metric, value: actual, baseline: base, baselineValue: b) {
                message += spread.inside ? ", inside the run-to-run spread (±\(Threshold.trim(spread.relative * 100, decimals: 1)) %)"
                                         : ", beyond the run-to-run spread (±\(Threshold.trim(spread.relative * 100, decimals: 1)) %)"
            }
            return ThresholdOutcome(threshold: self, actual: actual, passed: passed, message: message)
        }
    }

    /// `+20 %`, `−3.5 %`.
    static func signedPercent(_ fraction: Double) -> String {
        guard fraction.isFinite else { return "new" }
        let p = fraction * 100
        let text = trim(Swift.abs(p), decimals: Swift.abs(p) >= 10 ? 0 : 1)
        return text == "0" ? "0 %" : (p > 0 ? "+" : "−") + text + " %"
    }
}
