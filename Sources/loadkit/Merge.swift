import Foundation
import LoadKit

/// `loadkit merge <result.json or folders…> [--out dir] [--expect-shards N] [--quiet]`
///
/// Exit status: 0 every threshold held on the merged result, 1 a threshold was breached (the CI
/// gate), 2 the shards could not be merged (missing, duplicate, mismatched, unreadable) or bad usage.
enum MergeCommand {
    static let usage = """
        usage: loadkit merge <result.json | folder>... [--out DIR] [--expect-shards N] [--quiet]
          Merges sharded runs' results (exact histograms), writes console/CSV/JSON reports for the
          whole into DIR/<test>/<start time>/ (with DIR/<test>/latest; default ./loadkit-reports/merged),
          including report.html, and judges the shards' SLA on the whole; shards of several tests are
          merged per test; LOADKIT_PUSH_URL pushes the merged values to a Pushgateway. Exit 0 = SLA held, 1 = SLA
          breached, 2 = shards missing/duplicate/mismatched or unreadable.
        """

    /// Parsed arguments.
    struct Arguments: Equatable {
        var inputs: [String] = []
        var out = "./loadkit-reports/merged"
        var expectShards: Int?
        var quiet = false
    }

    static func parse(_ args: [String]) throws -> Arguments {
        var a = Arguments()
        var cursor = ArgumentCursor(args)
        while let arg = cursor.next() {
            switch arg {
            case "--out", "-o": a.out = try cursor.value(for: arg)
            case "--expect-shards", "-n":
                let v = try cursor.value(for: arg)
                guard let n = Int(v), n >= 1 else { throw ScriptFailure("--expect-shards needs a count ≥ 1, not '\(v)'") }
                a.expectShards = n
            case "--quiet", "-q": a.quiet = true
            case "--help", "-h": throw ScriptFailure(usage)
            default:
                if arg.hasPrefix("--expect-shards="), let n = Int(arg.dropFirst("--expect-shards=".count)), n >= 1 {
                    a.expectShards = n
                } else if arg.hasPrefix("--out=") {
                    a.out = String(arg.dropFirst("--out=".count))
                } else if arg.hasPrefix("-") {
                    throw ScriptFailure("unknown option \(arg)")
                } else {
                    a.inputs.append(arg)
                }
            }
        }
        guard !a.inputs.isEmpty else { throw ScriptFailure("no shard results given") }
        return a
    }

    /// Runs the command and returns the exit status.
    static func run(_ args: [String]) async -> Int32 {
        let a: Arguments
        do { a = try parse(args) } catch {
            stderrLine("loadkit merge: \(error)")
            if !"\(error)".hasPrefix("usage") { stderrLine(usage) }
            return 2
        }
        let shards: [ShardResultFile]
        do { shards = try ShardMerge.load(a.inputs) } catch {
            report(error)
            return 2
        }
        // One merge per test (a sharded suite writes one folder per test); exit 2 beats exit 1.
        var status: Int32 = 0
        for (test, outcome) in ShardMerge.mergeEachTest(shards, expectShards: a.expectShards) {
            switch outcome {
            case .failure(let e):
                stderrLine("loadkit merge: test '\(test)':")
                report(e)
                status = 2
            case .success(let merged):
                if !a.quiet { print(merged.summary) }
                do {
                    let files = try merged.writeReports(root: a.out)
                    stderrLine("loadkit merge: '\(test)': reports for the whole in \(files.directory)")
                } catch {
                    report(error)
                    status = 2
                }
                await PrometheusPush.pushIfConfigured(merged.result, options: .init())   // LOADKIT_PUSH_URL
                for m in merged.breachMessages { stderrLine(m) }
                if merged.passed {
                    stderrLine("loadkit merge: '\(test)': \(merged.shards.count) shards merged; SLA held (\(merged.outcomes.count) thresholds)")
                } else {
                    stderrLine("loadkit merge: '\(test)': SLA breached on the merged result (\(merged.breachMessages.count) breach(es))")
                    status = max(status, 1)
                }
            }
        }
        return status
    }

    static func report(_ error: any Error) {
        if let e = error as? ShardMergeError {
            stderrLine("loadkit merge: error [\(e.kind)]: cannot merge shard results:")
            for p in e.problems { stderrLine("  - \(p)") }
        } else {
            stderrLine("loadkit merge: error: \(error)")
        }
    }
}

func stderrLine(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
