import Foundation
import LoadKit

// Dispatcher: one line per subcommand.
let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "merge": exit(MergeCommand.run(Array(arguments.dropFirst())))
case "shard-demo": exit(await ShardDemoCommand.run(Array(arguments.dropFirst())))
default:
    FileHandle.standardError.write(Data("usage: loadkit <merge|shard-demo> …\n".utf8))
    exit(2)
}
