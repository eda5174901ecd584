import Foundation
#if canImport(Testing)
import Testing
#endif
#if canImport(XCTest)
import XCTest
#endif
import LoadKitTransport
import LoadKitProtocols

/// Where a failure is recorded: the caller's source location.
public struct FailureLocation: Sendable, Hashable {
    /// `Module/File.swift`.
    public var fileID: String
    /// Full path of the file.
    public var filePath: StaticString
    /// Line.
    public var line: UInt
    /// Column.
    public var column: UInt

    /// Creates a location (defaults: the caller's).
    public init(fileID: String = #fileID, filePath: StaticString = #filePath, line: UInt = #line, column: UInt = #column) {
        self.fileID = fileID; self.filePath = filePath; self.line = line; self.column = column
    }

    public static func == (a: FailureLocation, b: FailureLocation) -> Bool {
        a.fileID == b.fileID && "\(a.filePath)" == "\(b.filePath)" && a.line == b.line && a.column == b.column
    }

    public func hash(into h: inout Hasher) { h.combine(fileID); h.combine(line); h.combine(column) }
}

/// Records test failures. The default records a Swift Testing issue when a test is running on
/// the current task (`Test.current != nil`), otherwise an `XCTFail`; tests of LoadKit itself
/// can install their own to capture messages.
public struct FailureReporter: Sendable {
    /// Records one failure message at a location.
    public var record: @Sendable (_ message: String, _ location: FailureLocation) -> Void

    /// A reporter with a custom action.
    public init(_ record: @escaping @Sendable (_ message: String, _ location: FailureLocation) -> Void) {
        self.record = record
    }

    /// Swift Testing's `Issue.record` when a test is current, else `XCTFail(file:line:)`, else
    /// a line on standard error.
    public static let testFramework = FailureReporter { message, loc in
        #if canImport(Testing)
        if Test.current != nil {
            Issue.record(Comment(rawValue: message),
                         sourceLocation: SourceLocation(fileID: loc.fileID, filePath: "\(loc.filePath)",
                                                        line: Int(loc.line), column: Int(loc.column)))
            return
        }
        #endif
        #if canImport(XCTest)
        XCTFail(message, file: loc.filePath, line: loc.line)
        #else
        print("SLA breach at \(loc.fileID):\(loc.line): \(message)")
        #endif
    }
}

extension SLA {
    /// Evaluates `thresholds` against `result` and records one test failure per breach (and one
    /// for a run that did no work) at the caller's source location. Returns every outcome so
    /// the test can also assert on them. Call it on the test's own task (not from Dispatch).
    @discardableResult
    public static func expect(_ result: RunResult, _ thresholds: [Threshold],
                              reporter: FailureReporter = .testFramework,
                              fileID: String = #fileID, filePath: StaticString = #filePath,
                              line: UInt = #line, column: UInt = #column) -> [ThresholdOutcome] {
        let judged = applying(result.slaOverrides ?? [], to: thresholds)
        let outcomes = judged.evaluate(result)
        JUnitReport.add(result, outcomes: outcomes)   // LOADKIT_JUNIT: every threshold, passed ones too
        if let root = result.reportRoot, result.environment["shard_index"] == nil, Set(judged) != Set(result.sla ?? []) {
            // Judged against an SLA the run was not declared with: the files written at the end of
            // the run must not say "no thresholds" (or an older verdict) while the test fails.
            var judgedResult = result
            judgedResult.sla = judged
            do {
                let files = try ReportWriter(root: root).write(judgedResult, outcomes: outcomes, junit: false)
                print("Thresholds of '\(result.name)' (judged by expect; reports updated in \(files.directory)):\n"
                      + outcomes.map { "  \($0)" }.joined(separator: "\n"))
            } catch {
                FileHandle.standardError.write(Data("loadkit: \(result.name): could not update the reports with the SLA: \(error)\n".utf8))
            }
        }
        let loc = FailureLocation(fileID: fileID, filePath: filePath, line: line, column: column)
        // One shard of a sharded run: a count or budget can pass on every shard and fail on the
        // whole (or the reverse), so the verdict belongs to `loadkit merge`. Only "no work" fails
        // here. LOADKIT_SHARD_JUDGE=local judges each shard on its own as well.
        let isShard = result.isJudgedByTheMerge
        if isShard {
            let breaches = outcomes.filter { !$0.passed }.count
            FileHandle.standardError.write(Data(("loadkit: \(result.name): shard \(result.environment["shard"] ?? "?"): "
                + "\(breaches) threshold(s) breached on this shard alone; the SLA is judged on the merge (loadkit merge)\n").utf8))
        }
        // A breached latency says on which side its time went, as the summary does: a CI log
        // often shows the failure and nothing else.
        // A breached failure rate (or a metric never sampled) names the failures behind it.
        let blame = ConsoleSummary.LatencyBlame(result, outcomes: outcomes).map { " — " + $0.text }
        let cause = FailureCause(result.metrics).map { " — " + $0.text }
        for o in outcomes where !o.passed && (!isShard || o == .noWork) {
            let why = ConsoleSummary.LatencyBlame.isLatencyBreach(o) ? blame ?? ""
                : FailureCause.explains(o) ? cause ?? "" : ""
            reporter.record("SLA breached in '\(result.name)': \(o.message)\(why)", loc)
        }
        // A run stopped before its plan ended judged its SLA on part of it: not a pass, whatever
        // the thresholds say — unless the abort threshold that stopped it fails above, as itself.
        if let cut = result.interruptedBy, !cut.failsAsItself(in: outcomes) {
            reporter.record("'\(result.name)' was cut short (\(cut.text)) after \(Fmt.upTo3(result.durationSeconds)) s: its SLA was "
                + "judged on part of its plan" + cut.advice, loc)
        }
        return outcomes
    }
}

extension Interruption {
    /// Whether `outcomes` already fail the run for this cut: the abort threshold that stopped
    /// it is among them and breached. Any other cut (or that threshold left out of the SLA
    /// judged, or passing on the whole run) fails on its own.
    func failsAsItself(in outcomes: [ThresholdOutcome]) -> Bool {
        guard case .abortOnThreshold(let threshold, _) = self else { return false }
        return outcomes.contains { $0.threshold == threshold && !$0.passed }
    }

    /// What to do about it, after a dash (only the cap has a setting to change).
    var advice: String {
        switch self {
        case .deadline: " — raise LOADKIT_MAX_DURATION (or .maxDuration) above the plan, or shorten the plan (LOADKIT_SCALE scales it)"
        case .abortCheck: " — its .abort(when:) check stopped it"
        case .abortOnThreshold: " — the abortOnFail threshold that stopped it is not failed by the SLA judged here"
        case .cancelled, .signal, .other: ""
        }
    }
}

extension RunResult {
    /// Judges the SLA the run was declared with (``LoadTest/sla(_:)``, `LOADKIT_SLA` applied) and
    /// records one failure per breach at the caller's location — the SLA is written once. A run
    /// declared without an SLA records a failure saying so (there is nothing to judge).
    @discardableResult
    public func expect(reporter: FailureReporter = .testFramework,
                       fileID: String = #fileID, filePath: StaticString = #filePath,
                       line: UInt = #line, column: UInt = #column) -> [ThresholdOutcome] {
        guard let sla, !sla.isEmpty else {
            reporter.record("'\(name)' has no SLA to judge: declare it with .sla { … } on the LoadTest (or LOADKIT_SLA)",
                            FailureLocation(fileID: fileID, filePath: filePath, line: line, column: column))
            return []
        }
        return SLA.expect(self, sla, reporter: reporter, fileID: fileID, filePath: filePath, line: line, column: column)
    }

    /// Evaluates thresholds written with the builder and records one failure per breach at the
    /// caller's location (see ``SLA/expect(_:_:reporter:fileID:filePath:line:column:)``).
    @discardableResult
    public func expect(reporter: FailureReporter = .testFramework,
                       fileID: String = #fileID, filePath: StaticString = #filePath,
                       line: UInt = #line, column: UInt = #column,
                       @SLABuilder _ thresholds: () -> [Threshold]) -> [ThresholdOutcome] {
        SLA.expect(self, thresholds(), reporter: reporter, fileID: fileID, filePath: filePath, line: line, column: column)
    }

    /// Evaluates a list of thresholds and records one failure per breach at the caller's location.
    @discardableResult
    public func expect(_ thresholds: [Threshold], reporter: FailureReporter = .testFramework,
                       fileID: String = #fileID, filePath: StaticString = #filePath,
                       line: UInt = #line, column: UInt = #column) -> [ThresholdOutcome] {
        SLA.expect(self, thresholds, reporter: reporter, fileID: fileID, filePath: filePath, line: line, column: column)
    }
}
