// `loadkit`: LoadKit's command-line companion. This file only dispatches; each command lives in
// its own files (bench: Bench*.swift; merge, shard-demo: Merge*.swift; fuzz: Fuzz.swift).
//
//   loadkit bench record|http|stomp|held [--flag value …]   side-by-side benchmark sections
//   loadkit merge <result.json | folder>… [--out DIR] [--expect-shards N]   merge shard results, gate on the SLA
//   loadkit compare BASE NEW [--max-regression 10%]           two runs side by side, gate on regressions
//   loadkit shard-demo --url URL …                          a tiny sharded scenario (tests, trying a set-up)
//   loadkit fuzz [--parser P] [--count N] [--seed S]        differential fuzzing of the parsers (whole vs split)
import Foundation

/// A subcommand: takes its arguments (after the command name) and returns the exit status.
typealias Command = @Sendable ([String]) async -> Int32

/// One line per subcommand (e.g. `"merge": { MergeCommand.run($0) },` for shard results).
let commands: [String: Command] = [
    "bench": { await BenchCommand.run($0) },
    "compare": { CompareCommand.run($0) },
    "fuzz": { FuzzCommand.run($0) },
    "merge": { await MergeCommand.run($0) },
    "shard-demo": { await ShardDemoCommand.run($0) },
]

let argv = Array(CommandLine.arguments.dropFirst())
guard let name = argv.first, let command = commands[name] else {
    FileHandle.standardError.write(Data("usage: loadkit <\(commands.keys.sorted().joined(separator: "|"))> …\n".utf8))
    exit(64)
}
exit(await command(Array(argv.dropFirst())))
