import Foundation

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
    /// The report folder.
    public var directory: String
    /// Console summary text (`summary.txt`).
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
}

/// Writes every report of a run into `<root>/<name>/`. Call it for every run, also a failed or
/// interrupted one: it only needs the ``RunResult`` (whatever was measured until then).
public struct ReportWriter: Sendable {
    /// Folder holding one sub-folder per test name.
    public var root: String

    /// `$LOADKIT_REPORT_DIR` when set, else `./loadkit-reports`.
    public static var defaultRoot: String {
        let env = ProcessInfo.processInfo.environment["LOADKIT_REPORT_DIR"] ?? ""
        return env.isEmpty ? "./loadkit-reports" : env
    }

    /// Creates a writer for `root` (default ``defaultRoot``).
    public init(root: String? = nil) {
        self.root = root ?? ReportWriter.defaultRoot
    }

    /// The folder for test `name` (characters other than letters, digits, `-`, `_`, `.` become `_`).
    public func directory(for name: String) -> String {
        let safe = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
        return (root as NSString).appendingPathComponent(safe.isEmpty || safe == "." || safe == ".." ? "run" : safe)
    }

    /// Writes all report files for `result` (environment secrets masked) and returns their paths.
    @discardableResult
    public func write(_ result: RunResult, outcomes: [ThresholdOutcome] = []) throws -> ReportFiles {
        let dir = directory(for: result.name)
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
                                errorLog: path("load_test.log"), k6Text: path("k6-summary.txt"))
        try save(Data(ConsoleSummary.render(result, outcomes: outcomes).utf8), files.summary)
        try save(Data(CSVReport.render(safe).utf8), files.csv)
        try save(JSONSummary.render(safe, outcomes: outcomes), files.json)
        try save(safe.jsonData(), files.result)
        try save(Data(ErrorLog.render(result).utf8), files.errorLog)
        try save(Data(K6TextSummary.render(safe, outcomes: outcomes).utf8), files.k6Text)
        return files
    }

    /// Writes a markdown comparison table (`comparison.md` in `<root>/<name>/`) and returns its path.
    @discardableResult
    public func writeComparison(_ columns: [(label: String, result: RunResult)], name: String,
                                rows: [ComparisonTable.Row]? = nil) throws -> String {
        let dir = directory(for: name)
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
        let outcomes = thresholds.evaluate(result)
        var report = RunReport(outcomes: outcomes, files: nil, writeError: nil)
        do {
            report.files = try write(result, outcomes: outcomes)
        } catch {
            report.writeError = String(describing: error)
            FileHandle.standardError.write(Data("loadkit: \(error)\n".utf8))
        }
        if printSummary {
            var text = ConsoleSummary.render(result, outcomes: outcomes)
            if let f = report.files { text += "\nReports: \(f.directory)\n" }
            print(text)
        }
        return report
    }
}
