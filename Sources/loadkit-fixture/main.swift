// Runs one fixture server as its own process, so a load test can hold more connections than
// one process's file descriptors allow (the client and the server each get their own limit).
//
//   swift run loadkit-fixture stomp|runnity|concert [--port N] [--latency-ms 10-40] [...]
//
// Prints `READY kind=<kind> port=<port> url=<url>` on stdout once listening; exits on
// SIGINT/SIGTERM or when standard input reaches end of file (so a child dies with its parent).
// Flags: see FixtureCommandLine in fixtures/LoadKitFixtures/Core/FixtureCommandLine.swift.
import Foundation
import LoadKit
import LoadKitFixtures
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a line to stdout unbuffered (a parent process waits for READY).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

var args = Array(CommandLine.arguments.dropFirst())
// `--watch-stdin`: exit when standard input reaches end of file (FixtureProcess passes it, so a
// child dies with its parent). Off by default: CI runs with stdin at /dev/null.
let watchStdin = args.contains("--watch-stdin")
args.removeAll { $0 == "--watch-stdin" }
guard let kindArg = args.first, let kind = FixtureKind(rawValue: kindArg) else {
    FileHandle.standardError.write(Data("usage: loadkit-fixture stomp|runnity|concert [--port N] [--latency-ms SPEC] ...\n".utf8))
    exit(64)
}
args.removeFirst()
let parsed: (FixtureOptions, [String: String])
do { parsed = try FixtureCommandLine.parse(args, environment: ProcessInfo.processInfo.environment) } catch {
    FileHandle.standardError.write(Data("loadkit-fixture: \(error)\n".utf8))
    exit(64)
}
let options = parsed.0
_ = ResourceLimits.raiseOpenFileLimit()

final class Running: @unchecked Sendable {
    var stop: (@Sendable () async -> Void)?
    var stats: (@Sendable () -> String)?
}
let running = Running()

Task {
    do {
        let url: String
        switch kind {
        case .stomp:
            let f = try await StompChatFixture.start(options)
            running.stop = { await f.stop() }
            running.stats = { "open=\(f.openConnections) ws=\(f.openWebSockets) stomp=\(f.connectedSessions) dropped=\(f.droppedConnections)" }
            url = f.url
            say("READY kind=stomp port=\(f.port) url=\(f.url) ws=\(f.webSocketURL)")
        case .runnity:
            let f = try await RunnityFixture.start(options)
            running.stop = { await f.stop() }
            running.stats = { "open=\(f.openConnections) sessions=\(f.openSessions) timeouts=\(f.timedOutSessions) rejected=\(f.rejectedTickets)" }
            url = f.url
            say("READY kind=runnity port=\(f.port) url=\(f.url) challenge=\(f.preseededChallengeId.map(String.init) ?? "none")")
        case .concert:
            let f = try await ConcertFixture.start(options)
            running.stop = { await f.stop() }
            running.stats = { "open=\(f.openConnections) rejected=\(f.rejectedByCapacity) cache=\(f.cacheStats.hits)/\(f.cacheStats.misses)" }
            url = f.url
            say("READY kind=concert port=\(f.port) url=\(f.url)")
        }
        _ = url
        if let s = parsed.1["stats-every-s"].flatMap(Int.init), s > 0 {
            Task {
                while true {
                    try? await Task.sleep(for: .seconds(s))
                    say("STATS \(running.stats?() ?? "")")
                }
            }
        }
    } catch {
        FileHandle.standardError.write(Data("loadkit-fixture: cannot start \(kind.rawValue): \(error)\n".utf8))
        exit(70)
    }
}

let shutdown: @Sendable () -> Void = {
    Task {
        await running.stop?()
        exit(0)
    }
}
signal(SIGINT, SIG_IGN)
signal(SIGTERM, SIG_IGN)
let sigint = DispatchSource.makeSignalSource(signal: SIGINT, queue: .main)
sigint.setEventHandler(handler: shutdown)
sigint.resume()
let sigterm = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .main)
sigterm.setEventHandler(handler: shutdown)
sigterm.resume()
// End of standard input (the parent closed its pipe or died) also stops the fixture.
if watchStdin {
    Thread.detachNewThread {
        var buf = [UInt8](repeating: 0, count: 256)
        while read(0, &buf, buf.count) > 0 {}
        shutdown()
    }
}
dispatchMain()
