import Foundation
import LoadKit

/// `loadkit bench http --url URL`: closed-loop HTTP/1.1 GETs over N keep-alive connections on one
/// event loop (run it pinned to one core, like `wrk -t1 -cN`), through the kit's `HTTPClient`
/// and response parser: `--mode pump` (default) uses `HTTPClient.closedLoop` (loop-level
/// request/response pump), `--mode tasks` one Swift task per connection calling `execute`. Prints requests per second and latency percentiles.
enum BenchHTTP {
    static func run(_ o: BenchOptions) async throws {
        guard let url = o.string("url") else { throw BenchError("--url is required") }
        let connections = max(1, try o.int("connections", 50))
        let seconds = try o.double("seconds", 10)
        let warmup = try o.double("warmup-seconds", 1)
        let mode = o.string("mode") ?? "pump"
        let request = try HTTPRequest(url: url)

        var config = HTTPClient.Configuration()
        config.maxConnectionsPerHost = connections
        let group = EventLoopGroup(loops: 1, label: "bench.http")
        config.group = group
        let client = HTTPClient(configuration: config)
        defer { client.shutdown() }
        let executor = EventLoopTaskExecutor(group.loops[0])

        // One closed-loop user per connection, each a task running on the loop itself, so a
        // request costs no thread hop in either direction.
        func round(_ secs: Double) async throws -> (requests: Int, errors: Int, histogram: Histogram, elapsed: Double, cpu: Double) {
            let cpu0 = ProcessStats.cpuSeconds()
            let start = monotonicNanos()
            let end = start + UInt64(secs * 1e9)
            var merged = Histogram()
            var requests = 0, errors = 0
            try await withThrowingTaskGroup(of: (Int, Int, Histogram).self) { g in
                for _ in 0..<connections {
                    g.addTask(executorPreference: executor) {
                        var h = Histogram()
                        var ok = 0, bad = 0
                        while monotonicNanos() < end {
                            let r = try await client.execute(request, timeout: .seconds(5))
                            if r.status == 200 { ok += 1 } else { bad += 1 }
                            h.record(Int64(truncatingIfNeeded: (r.totalNanos &+ 500) / 1000))
                        }
                        return (ok, bad, h)
                    }
                }
                for try await (ok, bad, h) in g {
                    requests += ok; errors += bad
                    merged.merge(h)
                }
            }
            let elapsed = Double(monotonicNanos() - start) / 1e9
            return (requests, errors, merged, elapsed, ProcessStats.cpuSeconds() - cpu0)
        }

        err("http: \(mode) mode, \(connections) connections, \(seconds) s (+\(warmup) s warm-up) against \(url), cpus \(allowedCPUList())")
        let r: (requests: Int, errors: Int, histogram: Histogram, elapsed: Double, cpu: Double)
        switch mode {
        case "tasks":
            if warmup > 0 { _ = try await round(warmup) }
            r = try await round(seconds)
        case "pump":
            // HTTPClient.closedLoop: the next request is written from the response's read callback.
            if warmup > 0 { _ = try await client.closedLoop(request, connections: connections, duration: .seconds(warmup)) }
            let cpu0 = ProcessStats.cpuSeconds()
            let p = try await client.closedLoop(request, connections: connections, duration: .seconds(seconds), timeout: .seconds(5))
            let cpu = ProcessStats.cpuSeconds() - cpu0
            if !p.failures.isEmpty || !p.connectFailures.isEmpty { err("http: failures \(p.failures) connect failures \(p.connectFailures)") }
            r = (p.statusCounts[200] ?? 0, p.responses - (p.statusCounts[200] ?? 0) + p.failures.values.reduce(0, +),
                 p.latency, p.elapsedSeconds, cpu)
        default:
            throw BenchError("--mode must be pump or tasks")
        }
        let rps = Double(r.requests) / r.elapsed
        emit("requests", r.requests)
        emit("errors", r.errors)
        emit("elapsed_s", r.elapsed, digits: 2)
        emit("requests_per_second", rps, digits: 0)
        emit("p50_us", Int(r.histogram.value(atPercentile: 50)))
        emit("p90_us", Int(r.histogram.value(atPercentile: 90)))
        emit("p99_us", Int(r.histogram.value(atPercentile: 99)))
        emit("max_us", Int(r.histogram.max))
        emit("client_cpu_percent", 100 * r.cpu / r.elapsed, digits: 0)
    }
}
