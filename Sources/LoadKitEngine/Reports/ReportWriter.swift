import Foundation
import LoadKitTransport
import LoadKitProtocols

/// A report file could not be written.
public struct ReportError: ClassifiedError, Sendable {
    /// What failed (path and cause).
    public var message: String
    /// `report_write`.
    public var kind: String { "report_write" }
    /// The load generator's own file system.
    public var source: FailureSource { .loadGenerator }
    public var description: String { message }
}

/// The files one run's report consists of.
public struct ReportFiles: Sendable, Hashable {
    /// The run's folder (`<root>/<test>/<start time>/`).
    public var directory: String
    /// Console summary text in seed 000's full layout (`summary.txt`).
    public var summary: String
    /// `load_test_result.csv` (`Metric,Value,Unit`).
    public var csv: String
    /// k6-like JSON summary (`summary.json`).
    public var json: String
    /// The full mergeable ``RunResult`` (`result.json`) shards merge from.
    public var result: String
    /// Error log (`load_test.log`).
    public var errorLog: String
    /// k6-like text summary (`k6-summary.txt`).
    public var k6Text: String
    /// The self-contained HTML report (`report.html`).
    public var html: String
    /// Per-second values (`timeseries.csv`: `second,metric,value`).
    public var timeSeries: String
}

/// Writes every report of a run into its own folder, `<root>/<test>/<start time>/`, points
/// `<root>/<test>/latest` at it and deletes runs beyond the retention (see ``RunHistory``).
/// Call it for every run, also a failed or interrupted one: it only needs the ``RunResult``
/// (whatever was measured until then).
public struct ReportWriter: Sendable {
    /// Folder holding one sub-folder per test name.
    public var root: String
    /// Runs kept per test: nil reads `LOADKIT_KEEP_RUNS` (default ``RunHistory/defaultKeep``);
    /// 0 keeps every run.
    public var keepRuns: Int?
    /// Whether `latest` may be a symbolic link (tests turn it off to exercise the plain file).
    var symlinks = true
    /// Where `LOADKIT_KEEP_RUNS`, `LOADKIT_SUMMARY` and `LOADKIT_JUNIT` are read: the run's settings (environment
    /// + `.env`); ``Settings/current`` for a writer used on its own.
    var settings = Settings.current

    /// `LOADKIT_REPORT_DIR` (environment or `.env`) when set, else `./loadkit-reports`.
    public static var defaultRoot: String {
        let env = Settings.current.string("LOADKIT_REPORT_DIR") ?? ""
        return env.isEmpty ? "./loadkit-reports" : env
    }

    /// Creates a writer for `root` (default ``defaultRoot``).
    public init(root: String? = nil, keepRuns: Int? = nil) {
        self.root = root ?? ReportWriter.defaultRoot
        self.keepRuns = keepRuns
    }

    /// The history folder of test `name`, holding its run folders and `latest` (characters other
    /// than letters, digits, `-`, `_`, `.` become `_`).
    public func testDirectory(for name: String) -> String {
        let safe = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
        return (root as NSString).appendingPathComponent(safe.isEmpty || safe == "." || safe == ".." ? "run" : safe)
    }

    /// The folder of test `name`'s newest run (through `latest`), or its history folder when it
    /// has no run yet. After `write`, this is where that run's files are.
    public func directory(for name: String) -> String {
        let dir = testDirectory(for: name)
        return RunHistory.latest(in: dir) ?? dir
    }

    /// The folder `result`'s reports go to: `<root>/<test>/<UTC start>/`.
    public func runDirectory(for result: RunResult) -> String {
        (testDirectory(for: result.name) as NSString)
            .appendingPathComponent(RunHistory.folderName(startedAtMillis: result.startedAtMillis))
    }

    /// Writes all report files for `result` (environment secrets masked) into its run folder,
    /// points `latest` at it, applies the retention, adds the run to `LOADKIT_JUNIT` when set,
    /// and returns the paths.
    @discardableResult
    public func write(_ result: RunResult, outcomes: [ThresholdOutcome] = []) throws -> ReportFiles {
        try write(result, outcomes: outcomes, junit: true)
    }

    /// ``write(_:outcomes:)``; `junit: false` leaves `LOADKIT_JUNIT` alone (the caller adds the outcomes itself).
    @discardableResult
    func write(_ result: RunResult, outcomes: [ThresholdOutcome], junit: Bool) throws -> ReportFiles {
        let dir = runDirectory(for: result)
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw ReportError(message: "cannot create report folder \(dir): \(error.localizedDescription)")
        }
        var safe = result
        safe.environment = Secrets.masked(result.environment)
        func path(_ f: String) -> String { (dir as NSString).appendingPathComponent(f) }
        let files = ReportFiles(directory: dir, summary: path("summary.txt"), csv: path("load_test_result.csv"),
                                json: path("summary.json"), result: path("result.json"),
                                errorLog: path("load_test.log"), k6Text: path("k6-summary.txt"),
                                html: path("report.html"), timeSeries: path("timeseries.csv"))
        try save(Data(ConsoleSummary.full(result, outcomes: outcomes).utf8), files.summary)
        try save(Data(CSVReport.render(safe).utf8), files.csv)
        try save(JSONSummary.render(safe, outcomes: outcomes), files.json)
        try save(safe.jsonData(), files.result)
        try save(Data(ErrorLog.render(result).utf8), files.errorLog)
        try save(Data(K6TextSummary.render(safe, outcomes: outcomes).utf8), files.k6Text)
        try save(Data(TimeSeriesCSV.render(safe).utf8), files.timeSeries)
        try save(Data(HTMLReport.render(result, outcomes: outcomes).utf8), files.html)
        // The run's files are complete: the history pointer and retention can no longer lose them.
        let history = testDirectory(for: result.name)
        try RunHistory.pointLatest(in: history, to: (dir as NSString).lastPathComponent, symlinks: symlinks)
        do {
            let keep = try keepRuns.map { $0 == 0 ? nil : $0 }
                ?? settings.keepRuns()
            if let keep { RunHistory.prune(history, keep: keep, protecting: dir) }
        } catch {
            FileHandle.standardError.write(Data("loadkit: \(error); no old runs were deleted\n".utf8))
        }
        if junit { JUnitReport.add(result, outcomes: outcomes, path: settings.string(JUnitReport.variable)) }
        return files
    }

    /// Writes a markdown comparison table (`comparison.md` in `<root>/<name>/`, no history) and
    /// returns its path.
    @discardableResult
    package func writeComparison(_ columns: [(label: String, result: RunResult)], name: String,
                                rows: [ComparisonTable.Row]? = nil) throws -> String {
        let dir = testDirectory(for: name)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let p = (dir as NSString).appendingPathComponent("comparison.md")
        try save(Data(ComparisonTable.markdown(columns, rows: rows).utf8), p)
        return p
    }

    private func save(_ data: Data, _ path: String) throws {
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw ReportError(message: "cannot write report file \(path): \(error.localizedDescription)")
        }
    }
}

extension RunResult {
    /// The result as JSON (histograms in their compact form), sorted keys.
    public func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return try e.encode(self)
    }

    /// Reads a result written by ``jsonData()`` (a shard's `result.json`).
    public static func load(from path: String) throws -> RunResult {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ReportError(message: "cannot read result file \(path): \(error.localizedDescription)")
        }
        do { return try JSONDecoder().decode(RunResult.self, from: data) } catch {
            throw ReportError(message: "result file \(path) is not a LoadKit result: \(error)")
        }
    }
}

/// What ``ReportWriter/finish(_:thresholds:printSummary:)`` produced.
public struct RunReport: Sendable {
    /// The evaluated thresholds (with the no-work failure when nothing was done).
    public var outcomes: [ThresholdOutcome]
    /// The files written, nil when writing failed (see ``writeError``).
    public var files: ReportFiles?
    /// Why the files could not be written, if they could not.
    public var writeError: String?
    /// Whether every threshold passed.
    public var passed: Bool { outcomes.allSatisfy(\.passed) }
}

extension ReportWriter {
    /// The end of every run, also a failed or interrupted one: evaluates `thresholds`, writes
    /// every report file, prints the console summary to standard output (when `printSummary`)
    /// and never throws — a report that cannot be written is noted in the result and on stderr.
    /// Test failures are recorded separately with ``SLA/expect(_:_:reporter:fileID:filePath:line:column:)``.
    @discardableResult
    public func finish(_ result: RunResult, thresholds: [Threshold], printSummary: Bool = true) -> RunReport {
        // No SLA, no verdict: a run without thresholds is not judged (not even for "no work").
        let outcomes = thresholds.isEmpty ? [] : thresholds.evaluate(result)
        var report = RunReport(outcomes: outcomes, files: nil, writeError: nil)
        do {
            report.files = try write(result, outcomes: outcomes)
        } catch {
            report.writeError = String(describing: error)
        }
        if printSummary {
            let whereTo = report.files.map { "\nloadkit: \(result.name): reports in \($0.directory)" } ?? ""
            ConsoleSummary.printOut(ConsoleSummary.render(result, outcomes: outcomes, full: settings.wantsFullSummary) + whereTo)
        }
        if report.files == nil, let e = report.writeError {
            writeStderr("loadkit: \(result.name): could not write reports: \(e)\n")
        }
        return report
    }
}
