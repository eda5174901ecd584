import Testing
import Foundation
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Throughput check against an external server, run by hand next to wrk:
/// `LOADKIT_HTTP_BENCH_URL=http://127.0.0.1:18089/ swift test -c release --filter HTTPBenchmarkTests`
/// (`LOADKIT_HTTP_BENCH_CONNECTIONS`, default 50; `LOADKIT_HTTP_BENCH_SECONDS`, default 3).
@Suite struct HTTPBenchmarkTests {
    static let env = ProcessInfo.processInfo.environment

    @Test(.enabled(if: env["LOADKIT_HTTP_BENCH_URL"] != nil))
    func executeLoopThroughput() async throws {
        let url = Self.env["LOADKIT_HTTP_BENCH_URL"]!
        let connections = Int(Self.env["LOADKIT_HTTP_BENCH_CONNECTIONS"] ?? "") ?? 50
        let seconds = Double(Self.env["LOADKIT_HTTP_BENCH_SECONDS"] ?? "") ?? 3
        var config = HTTPClient.Configuration()
        config.maxConnectionsPerHost = connections
        let group = EventLoopGroup(loops: 1, label: "bench")
        config.group = group
        // LOADKIT_HTTP_BENCH_EXECUTOR=global runs the users on the global executor instead of the loop.
        let onLoop = Self.env["LOADKIT_HTTP_BENCH_EXECUTOR"] != "global"
        let executor = EventLoopTaskExecutor(group.loops[0])
        let client = HTTPClient(configuration: config)
        defer { client.shutdown() }
        let request = try HTTPRequest(url: url)
        let end = monotonicNanos() + UInt64(seconds * 1e9)
        let started = monotonicNanos()
        let total = try await withThrowingTaskGroup(of: Int.self) { g in
            for _ in 0..<connections {
                g.addTask(executorPreference: onLoop ? executor : nil) {
                    var n = 0
                    while monotonicNanos() < end {
                        let r = try await client.execute(request, timeout: .seconds(5))
                        if r.status == 200 { n += 1 }
                    }
                    return n
                }
            }
            return try await g.reduce(0, +)
        }
        let elapsed = Double(monotonicNanos() - started) / 1e9
        print("HTTPBenchmark: \(total) requests in \(elapsed) s = \(Int(Double(total) / elapsed)) req/s over \(connections) connections, users on \(onLoop ? "the loop" : "the global executor")")
        #expect(total > 0)
    }
}
