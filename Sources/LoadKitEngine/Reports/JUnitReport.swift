import Foundation
import Synchronization
import LoadKitTransport
import LoadKitProtocols

/// JUnit XML of the thresholds — one `<testcase>` per threshold, passed ones included, each with
/// its actual value and limit — so CI systems list and chart them (Swift's own
/// `--xunit-output` only shows breached thresholds, as failed tests).
///
/// With `LOADKIT_JUNIT=path` every run of the process is added to that file as it ends (its
/// reports are written) and again when its SLA is judged (``SLA/expect(_:_:reporter:fileID:filePath:line:column:)``:
/// thresholds passed to `expect` but not declared with `.sla` are added). The file is rewritten
/// each time with every run of this process: one `<testsuite>` per run.
///
/// ```xml
/// <testsuites name="LoadKit thresholds" tests="2" failures="1" errors="0" skipped="0" time="12.5">
///   <testsuite name="stomp-chat" tests="2" failures="1" errors="0" skipped="0" time="12.5" timestamp="…" hostname="…">
///     <properties><property name="run_id" value="…"/></properties>
///     <testcase classname="loadkit.stomp-chat" name="message_latency p(95) &lt; 250 ms" time="0">
///       <system-out>actual: 11.6 ms&#10;limit: &lt; 250 ms</system-out>
///     </testcase>
///     <testcase classname="loadkit.stomp-chat" name="errors rate &lt; 0.1 %" time="0">
///       <failure type="threshold" message="errors rate = 1 %, limit &lt; 0.1 %">actual: 1 %&#10;limit: &lt; 0.1 %</failure>
///     </testcase>
///   </testsuite>
/// </testsuites>
/// ```
package enum JUnitReport {
    /// The variable naming the file.
    public static let variable = "LOADKIT_JUNIT"

    /// One run's thresholds.
    public struct Suite: Sendable {
        /// The run.
        public var result: RunResult
        /// Its judged thresholds.
        public var outcomes: [ThresholdOutcome]

        /// Creates a suite.
        public init(result: RunResult, outcomes: [ThresholdOutcome]) { self.result = result; self.outcomes = outcomes }
    }

    /// The document for `suites`.
    public static func render(_ suites: [Suite]) -> String {
        let tests = suites.reduce(0) { $0 + $1.outcomes.count }
        let failures = suites.reduce(0) { $0 + $1.outcomes.filter { !$0.passed }.count }
        let skipped = suites.reduce(0) { $0 + $1.outcomes.filter(\.skipped).count }
        let time = suites.reduce(0.0) { $0 + $1.result.durationSeconds }
        var out = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        out += "<testsuites name=\"LoadKit thresholds\" tests=\"\(tests)\" failures=\"\(failures)\" errors=\"0\" "
            + "skipped=\"\(skipped)\" time=\"\(seconds(time))\">\n"
        let host = ProcessInfo.processInfo.hostName
        for s in suites {
            let r = s.result
            let f = s.outcomes.filter { !$0.passed }.count
            let k = s.outcomes.filter(\.skipped).count
            let stamp = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(r.startedAtMillis) / 1000))
            out += "  <testsuite name=\"\(x(r.name))\" tests=\"\(s.outcomes.count)\" failures=\"\(f)\" errors=\"0\" skipped=\"\(k)\" "
                + "time=\"\(seconds(r.durationSeconds))\" timestamp=\"\(x(String(stamp.dropLast())))\" hostname=\"\(x(host))\">\n"
            var properties: [(String, String)] = [("run_folder", RunHistory.folderName(startedAtMillis: r.startedAtMillis))]
            for key in ["run_id", "shard_count", "build", "target"] { if let v = r.environment[key] { properties.append((key, v)) } }
            if let i = r.interruption { properties.append(("interrupted", i)) }
            out += "    <properties>\n"
            for (name, value) in properties { out += "      <property name=\"\(x(name))\" value=\"\(x(value))\"/>\n" }
            out += "    </properties>\n"
            for o in s.outcomes {
                let actual = o.actual.map { Threshold.format($0, o.threshold.unit) } ?? "no samples"
                let detail = "actual: \(actual)\n\(o.detail.isEmpty ? "limit: \(o.threshold.comparison.rawValue) \(Threshold.format(o.limit, o.threshold.unit))" : o.detail.replacingOccurrences(of: "limit ", with: "limit: ", options: .anchored))"
                out += "    <testcase classname=\"loadkit.\(x(r.name))\" name=\"\(x(o.threshold.description))\" time=\"0\">\n"
                if o.skipped {
                    out += "      <skipped message=\"\(x(o.message))\"/>\n"
                } else if !o.passed {
                    out += "      <failure type=\"threshold\" message=\"\(x(o.message))\">\(x(detail))</failure>\n"
                }
                out += "      <system-out>\(x(detail))</system-out>\n"
                out += "    </testcase>\n"
            }
            out += "  </testsuite>\n"
        }
        return out + "</testsuites>\n"
    }

    // Every run of this process that reached the file, in order (rewritten whole each time).
    private static let suites = Mutex<[Suite]>([])

    /// Adds (or updates) `result`'s suite in the process's JUnit file when `path` (default
    /// `LOADKIT_JUNIT`) is set. Outcomes of a run already there are merged by threshold (a
    /// threshold judged again replaces its earlier outcome). Failures to write go to stderr:
    /// the run's other reports are not lost over it.
    public static func add(_ result: RunResult, outcomes: [ThresholdOutcome],
                           path: String? = Settings.current.string(variable)) {
        guard let path, !path.isEmpty else { return }
        var safe = result
        safe.environment = Secrets.masked(result.environment)
        var outcomes = outcomes
        // One shard of a sharded run is not judged alone (see `SLA.expect`): its thresholds are
        // listed as skipped, and the merge's JUnit file (`loadkit merge`) carries the verdict.
        if result.isJudgedByTheMerge {
            outcomes = outcomes.map { o in
                var s = o
                s.passed = true
                s.skipped = true
                s.message = o.message + "; judged on the merged result (loadkit merge), not per shard"
                return s
            }
        }
        let all = suites.withLock { list -> [Suite] in
            if let i = list.firstIndex(where: { $0.result.name == result.name && $0.result.startedAtMillis == result.startedAtMillis }) {
                var merged = list[i].outcomes
                for o in outcomes {
                    if let j = merged.firstIndex(where: { $0.threshold == o.threshold }) { merged[j] = o } else { merged.append(o) }
                }
                list[i] = Suite(result: safe, outcomes: merged)
            } else {
                list.append(Suite(result: safe, outcomes: outcomes))
            }
            return list
        }
        do {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            try Data(Secrets.scrub(render(all), environment: result.environment).utf8)
                .write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            FileHandle.standardError.write(Data("loadkit: cannot write the JUnit file \(variable)=\(path): \(error.localizedDescription)\n".utf8))
        }
    }

    /// Forgets the runs added so far (tests).
    static func reset() { suites.withLock { $0.removeAll() } }

    static func seconds(_ s: Double) -> String { Fmt.num(s, 3) }

    /// XML-escapes text for attributes and content (see ``Markup/escape(_:newlinesAsEntities:)``).
    static func x(_ s: String) -> String { Markup.escape(s, newlinesAsEntities: true) }
}
