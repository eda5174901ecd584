import Foundation
import LoadKit

/// `loadkit bench http --url URL`: HTTP/1.1 GETs against one URL through the kit's general path.
/// Run it pinned to one core (`taskset -c 0`, like `wrk -t1`): the shared event-loop group then
/// has one loop.
///
/// - `--mode scenario` (default): the README's scenario — a `LoadTest` of `--connections` users
///   (closed model), each iteration `user.measure("get") { try await client.get(url) }` with a
///   default `HTTPClient`, full per-request recording.
/// - `--mode execute`: no runner — one task per connection (on the loop) calling `execute` in a loop.
/// - `--mode open --rate R`: the open model (`LoadTest(rate: .constant(R))`, `maxUsers` =
///   `--connections`), same script; prints dropped and late iterations.
/// - `--mode ceiling`: the open model at rising rates (`--from`, `--step` factor), `--seconds`
///   each, then two steps of bisection between the last rate that held and the first that did
///   not; prints the highest rate that dropped fewer than 0.1 % of its iterations.
/// - `--max-connections N` (any mode): the client's pool capped at N connections per host
///   (`HTTPClient(maxConnectionsPerHost:)`); requests beyond wait in the client for a connection.
///   With the open model this is wrk2's shape (`-c N -R rate`): N connections, iterations on
///   schedule, and the wait for a connection inside the latency timed from the schedule.
/// - `--mode paced --rate R`: what `hey -c N -q R/N` does — `--connections` users started together,
///   each sending on its own tick (`user.every(N/R s)`), so requests leave in bursts of up to N
///   (the open model spreads the same rate evenly).
///
/// Prints requests per second, latency percentiles, client CPU µs and context switches per request.
enum BenchHTTP {
    struct Round {
        var requests = 0, errors = 0, dropped = 0, late = 0
        /// The client's own `http_reqs` (built-in metric), to compare with what the server served.
        var httpReqs = 0
        var histogram = Histogram()
        /// How late open-model iterations started after their scheduled instant (µs).
        var lateness = Histogram()
        var elapsed = 0.0, cpu = 0.0, switches = 0
        /// The kernel's part of `cpu` (system calls, the loopback's network stack).
        var kernelCPU = 0.0
        /// What the run itself reported (`RunResult.generatorCPUSeconds`), to set beside `cpu`.
        var runCPU: Double?
    }

    static func run(_ o: BenchOptions) async throws {
        guard let url = o.string("url") else { throw BenchError("--url is required") }
        let connections = max(1, try o.int("connections", 50))
        let seconds = try o.double("seconds", 10)
        let warmup = try o.double("warmup-seconds", 1)
        let mode = o.string("mode") ?? "scenario"
        _ = try HTTPRequest(url: url)  // a bad URL fails here, before any load
        let maxConnections = try o.int("max-connections", 0)
        guard maxConnections >= 0 else { throw BenchError("--max-connections must be ≥ 0 (0: no cap)") }
        let makeClient = { maxConnections > 0 ? HTTPClient(maxConnectionsPerHost: maxConnections) : HTTPClient() }

        err("http: \(mode) mode, \(connections) \(maxConnections > 0 ? "users, pool capped at \(maxConnections) connections" : "connections"), \(seconds) s (+\(warmup) s warm-up) against \(url), cpus \(allowedCPUList()), \(EventLoopGroup.shared.loops.count) loop(s)")
        if mode == "ceiling" {  // a fresh client per rate (see `ceiling`)
            try await ceiling(url, users: connections, seconds: seconds, o, client: makeClient)
            return
        }
        let client = makeClient()
        defer { client.shutdown() }
        let r: Round
        switch mode {
        case "scenario":
            let w = warmup > 0 ? try await scenario(client, url, users: connections, seconds: warmup) : Round()
            r = try await scenario(client, url, users: connections, seconds: seconds)
            // Every request this process made (warm-up included): the bench compares it with the
            // server's own count (nginx stub_status).
            emit("http_reqs_total", w.httpReqs + r.httpReqs)
        case "execute":
            if warmup > 0 { _ = try await executeLoop(client, url, connections: connections, seconds: warmup) }
            r = try await executeLoop(client, url, connections: connections, seconds: seconds)
        case "open":
            let rate = try o.double("rate", 10_000)
            let w = warmup > 0 ? try await openModel(client, url, rate: rate, users: connections, seconds: warmup) : Round()
            r = try await openModel(client, url, rate: rate, users: connections, seconds: seconds)
            emit("rate_asked", rate, digits: 0)
            emit("http_reqs_total", w.httpReqs + r.httpReqs)  // compared with the server's count
        case "paced":
            let rate = try o.double("rate", 10_000)
            let w = warmup > 0 ? try await paced(client, url, rate: rate, users: connections, seconds: warmup) : Round()
            r = try await paced(client, url, rate: rate, users: connections, seconds: seconds)
            emit("rate_asked", rate, digits: 0)
            emit("http_reqs_total", w.httpReqs + r.httpReqs)
        default:
            throw BenchError("--mode must be scenario, execute, open, paced or ceiling")
        }
        print(r)
    }

    static func print(_ r: Round) {
        let n = max(1, r.requests)
        emit("requests", r.requests)
        emit("errors", r.errors)
        emit("dropped", r.dropped)
        emit("late", r.late)
        emit("elapsed_s", r.elapsed, digits: 2)
        emit("requests_per_second", Double(r.requests) / r.elapsed, digits: 0)
        emit("p50_us", Int(r.histogram.value(atPercentile: 50)))
        emit("p90_us", Int(r.histogram.value(atPercentile: 90)))
        emit("p99_us", Int(r.histogram.value(atPercentile: 99)))
        emit("max_us", Int(r.histogram.max))
        if r.lateness.count > 0 {
            emit("start_lateness_p50_us", Int(r.lateness.value(atPercentile: 50)))
            emit("start_lateness_p99_us", Int(r.lateness.value(atPercentile: 99)))
        }
        emit("client_cpu_percent", 100 * r.cpu / r.elapsed, digits: 0)
        emit("cpu_us_per_request", 1e6 * r.cpu / Double(n), digits: 2)
        // Where the CPU went: peers' user and kernel parts come from GNU time in the same run.
        emit("cpu_user_us_per_request", 1e6 * (r.cpu - r.kernelCPU) / Double(n), digits: 2)
        emit("cpu_kernel_us_per_request", 1e6 * r.kernelCPU / Double(n), digits: 2)
        emit("context_switches_per_request", Double(r.switches) / Double(n), digits: 4)
        // The kit's own figure (what its summary prints), beside the bench's bracket above.
        if let run = r.runCPU { emit("run_reported_cpu_us_per_request", 1e6 * run / Double(n), digits: 2) }
    }

    /// CPU seconds and context switches of the whole process around `body`.
    static func measured(_ body: () async throws -> Round) async rethrows -> Round {
        let cpu0 = ProcessStats.cpuSplit(), cs0 = ProcessStats.contextSwitches()
        var r = try await body()
        let cpu1 = ProcessStats.cpuSplit()
        r.cpu = (cpu1.user - cpu0.user) + (cpu1.kernel - cpu0.kernel)
        r.kernelCPU = cpu1.kernel - cpu0.kernel
        r.switches = ProcessStats.contextSwitches() - cs0
        return r
    }

    /// The README's scenario: closed-model users, one measured `get` per iteration.
    static func scenario(_ client: HTTPClient, _ url: String, users: Int, seconds: Double) async throws -> Round {
        try await measured {
            let result = try await LoadTest("bench-http") {
                Stage("all", to: users, over: .zero)
                Hold(.nanoseconds(Int64(seconds * 1e9)))
            }
            .gracefulStop(.seconds(2)).reports(false).progress(false)
            .run { user in
                try await user.measure("get") { _ = try await client.get(url) }
            }
            return round(result)
        }
    }

    /// The open model at `rate` iterations per second, at most `users` in flight.
    static func openModel(_ client: HTTPClient, _ url: String, rate: Double, users: Int, seconds: Double) async throws -> Round {
        try await measured {
            let result = try await LoadTest("bench-http-open", rate: .constant(rate, for: .nanoseconds(Int64(seconds * 1e9))),
                                            maxUsers: users)
            .gracefulStop(.seconds(2)).reports(false).progress(false)
            .run { user in
                try await user.measure("get") { _ = try await client.get(url) }
            }
            return round(result)
        }
    }

    /// Closed-model users started together, each on its own tick of `users / rate` seconds (hey -q's pacing).
    static func paced(_ client: HTTPClient, _ url: String, rate: Double, users: Int, seconds: Double) async throws -> Round {
        guard rate > 0 else { throw BenchError("--rate must be positive") }
        let tick = Duration.nanoseconds(Int64(Double(users) / rate * 1e9))
        return try await measured {
            let result = try await LoadTest("bench-http-paced") {
                Stage("all", to: users, over: .zero)
                Hold(.nanoseconds(Int64(seconds * 1e9)))
            }
            .gracefulStop(.seconds(2)).reports(false).progress(false)
            .run { user in
                try await user.every(tick) { try await user.measure("get") { _ = try await client.get(url) } }
            }
            return round(result)
        }
    }

    static func round(_ result: RunResult) -> Round {
        let m = result.metrics
        var r = Round()
        r.histogram = m.trends["get"] ?? Histogram()
        r.lateness = m.trends[RunnerMetrics.iterationLateness] ?? Histogram()
        r.requests = Int(r.histogram.count)
        r.httpReqs = Int(m.counters[BuiltInMetrics.httpReqs] ?? 0)
        r.errors = Int(m.totalErrors)
        r.dropped = Int(m.counters[RunnerMetrics.iterationsDropped] ?? 0)
        r.late = Int(m.counters[RunnerMetrics.iterationsLate] ?? 0)
        r.elapsed = result.durationSeconds
        r.runCPU = result.generatorCPUSeconds
        return r
    }

    /// No runner: a task per connection on the loop, `execute` in a loop.
    static func executeLoop(_ client: HTTPClient, _ url: String, connections: Int, seconds: Double) async throws -> Round {
        let request = try HTTPRequest(url: url)
        return try await measured {
            let start = monotonicNanos()
            let end = start + UInt64(seconds * 1e9)
            var r = Round()
            try await withThrowingTaskGroup(of: (Int, Int, Histogram).self) { g in
                for _ in 0..<connections {
                    g.addTask(executorPreference: EventLoopGroup.shared.next()) {
                        var h = Histogram()
                        var ok = 0, bad = 0
                        while monotonicNanos() < end {
                            let resp = try await client.execute(request, timeout: .seconds(5))
                            if resp.status == 200 { ok += 1 } else { bad += 1 }
                            h.record(Int64(truncatingIfNeeded: (resp.totalNanos &+ 500) / 1000))
                        }
                        return (ok, bad, h)
                    }
                }
                for try await (ok, bad, h) in g {
                    r.requests += ok; r.errors += bad
                    r.histogram.merge(h)
                }
            }
            r.elapsed = Double(monotonicNanos() - start) / 1e9
            return r
        }
    }

    /// Rising open-model rates until one drops 0.1 % or more of its iterations (or fails one),
    /// then two bisection steps between the last rate that held and the first that did not. Each
    /// rate gets a fresh client (warmed up once): connections a failed rate piled up do not
    /// weigh on the next.
    static func ceiling(_ url: String, users: Int, seconds: Double, _ o: BenchOptions,
                        client makeClient: () -> HTTPClient) async throws {
        var rate = try o.double("from", 20_000)
        let factor = max(1.01, try o.double("step", 1.1))
        let maxRate = try o.double("max-rate", 1_000_000)
        // Every request of the search, warm-up included: the bench compares it with the server's count.
        var sent = 0
        do {  // warm-up: the code paths, not a pool
            let warm = makeClient()
            defer { warm.shutdown() }
            sent += try await openModel(warm, url, rate: rate, users: users, seconds: 1).httpReqs
        }
        var best: (rate: Double, round: Round)?
        func holds(_ rate: Double) async throws -> Bool {
            let client = makeClient()
            defer { client.shutdown() }
            let r = try await openModel(client, url, rate: rate, users: users, seconds: seconds)
            sent += r.httpReqs
            let planned = Double(r.requests + r.dropped + r.errors)
            let droppedShare = planned > 0 ? Double(r.dropped) / planned : 1
            err(String(format: "http: open model at %.0f/s: %d requests, %d dropped (%.3f %%), %d late, cpu %.1f µs/request",
                       rate, r.requests, r.dropped, 100 * droppedShare, r.late, 1e6 * r.cpu / Double(max(1, r.requests))))
            guard droppedShare < 0.001, r.errors == 0 else { return false }
            if rate > best?.rate ?? 0 { best = (rate, r) }
            return true
        }
        var failed: Double?
        while rate <= maxRate {
            guard try await holds(rate) else { failed = rate; break }
            rate *= factor
        }
        if let held = best?.rate, var above = failed {
            var below = held
            for _ in 0..<2 {
                let mid = (below * above).squareRoot()
                if try await holds(mid) { below = mid } else { above = mid }
            }
        }
        guard let best else { throw BenchError("the open model dropped ≥ 0.1 % already at the first rate; lower --from") }
        emit("ceiling_rate", best.rate, digits: 0)
        emit("http_reqs_total", sent)
        print(best.round)
    }
}
