import Foundation
import LoadKit

/// `loadkit compare BASE NEW [--max-regression 10%] [--max-regression 'METRIC[ STAT]=N%|off']… [--test NAME] [--out FILE]`
///
/// Prints a Markdown table of every metric of both runs side by side with its change, and exits
/// 0 when nothing regressed past its limit, 1 when something did (a CI gate), 2 on bad input.
enum CompareCommand {
    static let usage = """
        usage: loadkit compare BASE NEW [--max-regression 10%] [--max-regression 'METRIC[ STAT]=N%|off']... [--test NAME] [--out FILE]
          BASE and NEW: a result.json, a run folder, a test's history folder (its latest run) or a
          report root (with --test when it holds several tests). Prints a Markdown table of every
          metric side by side; judged rows (trend avg/p50/p90/p95/p99, error rate, rates) that got
          worse by more than the limit (default 10 %) fail. Overrides: 'http_req_duration p(99)=25%',
          'errors=off', 'http_reqs=5%' (also judges a counter's rate). Exit 0 = no regression,
          1 = regression, 2 = bad input.
        """

    struct Arguments {
        var base = "", new = ""
        var maxRegression = 0.10
        var overrides: [String: RunComparison.Limit] = [:]
        var test: String?
        var out: String?
    }

    static func parse(_ args: [String]) throws -> Arguments {
        var a = Arguments()
        var inputs: [String] = []
        var cursor = ArgumentCursor(args)
        while let arg = cursor.next() {
            switch arg {
            case "--max-regression", "-r":
                let v = try cursor.value(for: arg)
                if let eq = v.lastIndex(of: "=") {
                    let key = v[..<eq].trimmingCharacters(in: .whitespaces)
                    guard !key.isEmpty, let limit = RunComparison.parseLimit(String(v[v.index(after: eq)...])) else {
                        throw ScriptFailure("--max-regression '\(v)': expected METRIC[ STAT]=N% or METRIC=off")
                    }
                    a.overrides[key] = limit
                } else {
                    guard case .fraction(let f)? = RunComparison.parseLimit(v) else {
                        throw ScriptFailure("--max-regression '\(v)': expected a percentage such as 10%")
                    }
                    a.maxRegression = f
                }
            case "--test": a.test = try cursor.value(for: arg)
            case "--out", "-o": a.out = try cursor.value(for: arg)
            case "--help", "-h": throw ScriptFailure(usage)
            default:
                if arg.hasPrefix("-") { throw ScriptFailure("unknown option \(arg)") }
                inputs.append(arg)
            }
        }
        guard inputs.count == 2 else { throw ScriptFailure("expected BASE and NEW, got \(inputs.count) path(s)") }
        a.base = inputs[0]; a.new = inputs[1]
        return a
    }

    static func run(_ args: [String]) -> Int32 {
        let a: Arguments
        do { a = try parse(args) } catch {
            stderrLine("loadkit compare: \(error)")
            if !"\(error)".hasPrefix("usage") { stderrLine(usage) }
            return 2
        }
        let base: (RunResult, String), new: (RunResult, String)
        do {
            base = try RunResult.locate(a.base, test: a.test)
            new = try RunResult.locate(a.new, test: a.test ?? base.0.name)
        } catch {
            stderrLine("loadkit compare: \(error)")
            return 2
        }
        if base.0.name != new.0.name {
            stderrLine("loadkit compare: note: comparing different tests, '\(base.0.name)' and '\(new.0.name)'")
        }
        let comparison = RunComparison.compare(base: base.0, new: new.0, maxRegression: a.maxRegression, overrides: a.overrides)
        let known = Set(comparison.rows.map(\.metric)).union(comparison.rows.map(\.key))
        for key in a.overrides.keys where !known.contains(key) {
            stderrLine("loadkit compare: --max-regression '\(key)=…' names no metric of these runs")
            return 2
        }
        let title = "## \(new.0.name): \(label(new.1)) against \(label(base.1))\n\n"
        let text = title + comparison.markdown(baseLabel: "base " + label(base.1), newLabel: "new " + label(new.1))
        print(text, terminator: "")
        if let out = a.out {
            do { try Data(text.utf8).write(to: URL(fileURLWithPath: out), options: .atomic) } catch {
                stderrLine("loadkit compare: cannot write \(out): \(error.localizedDescription)")
                return 2
            }
        }
        return comparison.regressions.isEmpty ? 0 : 1
    }

    /// A short name for a result file: its run folder (`2026-11-23_02-00-00.123Z`) or its path.
    static func label(_ file: String) -> String {
        let dir = ((file as NSString).deletingLastPathComponent as NSString).lastPathComponent
        return RunHistory.isRunFolderName(dir) ? dir : file
    }
}
