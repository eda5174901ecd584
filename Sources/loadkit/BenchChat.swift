import Foundation
import LoadKit
import LoadKitFixtures

/// `loadkit bench chat`: memory of a whole virtual user — the STOMP chat worker
/// (`StompChatConfiguration.runWorker`, WebSocket + STOMP + its task and state) — at
/// `--workers N` (default 10,000), ramped over `--ramp-seconds` and held `--hold-seconds`,
/// against the chat fixture in its own process, `--rooms` rooms (default 100), one SEND per
/// worker every `--interval-ms` (default 10,000). Prints the generator's RSS per worker:
/// (RSS at the end of the hold − RSS before the first worker) / workers connected then, and the
/// same for the C heap in use (`client_heap_kb_per_worker`: live memory only, without the
/// allocator's slack and fragmentation, so less noisy than RSS).
///
/// `--mode users` runs the same plan with users that only wait in `user.every` (no connection):
/// the cost of the runner's user alone, for comparison.
enum BenchChat {
    static func run(_ o: BenchOptions) async throws {
        let workers = max(1, try o.int("workers", 10_000))
        let ramp = try o.double("ramp-seconds", 20)
        let hold = try o.double("hold-seconds", 15)
        let interval = max(1, try o.int("interval-ms", 10_000))
        let rooms = max(1, try o.int("rooms", 100))
        let mode = o.string("mode") ?? "chat"
        let limit = ResourceLimits.raiseOpenFileLimit()
        if limit < workers + 64 { err("chat: note: open-file limit \(limit) is below \(workers) connections") }

        let server = try await BenchChatServer.start(o, extra: ["--users", String(max(10_000, workers))])
        defer { server.process.terminate() }
        let settings = Settings(["SERVER_URL": "127.0.0.1:\(server.process.port)", "EMAIL": "test@test.com",
                                 "PASSWORD": "password123!", "CREATE_NEW_ROOM": "true", "MEMBER_IDS": "1,2,3",
                                 "STOMP_ROOMS": String(rooms), "MESSAGE_INTERVAL_MS": String(interval),
                                 "CONNECT_TIMEOUT_MS": "60000"])
        let chat = try await StompChatConfiguration(settings: settings).prepared()
        err("chat: \(mode) mode, \(workers) workers over \(ramp) s, hold \(hold) s, \(rooms) rooms, a SEND every \(interval) ms each, fixture pid \(server.process.pid), client cpus \(allowedCPUList())")

        try await Task.sleep(for: .milliseconds(300))
        let rssBefore = ProcessStats.rssBytes()
        let heapBefore = HeapStats.inUseBytes()
        // The heap in use near the end of the hold (live memory, without the allocator's slack).
        // Divided by the workers connected in the same second (not by the hold's best second): a
        // ramp that lags must not mix a heap from one moment with a count from another.
        let heapProbe = Task { () -> (bytes: Int, atMillis: Int64)? in
            try? await Task.sleep(for: .milliseconds(Int64((ramp + hold * 0.9) * 1000)))
            return HeapStats.inUseBytes().map { ($0, wallClockMillis()) }
        }
        defer { heapProbe.cancel() }
        let test = LoadTest("bench-chat") {
            Stage("ramp", to: workers, over: .nanoseconds(Int64(ramp * 1e9)))
            Hold(.nanoseconds(Int64(hold * 1e9)))
        }
        .gracefulStop(.seconds(5)).reports(false).progress(false).connections(perUser: mode == "chat" ? 1 : 0)
        let result: RunResult
        if mode == "users" {
            result = try await test.run { user in
                user.markConnected()
                try await user.every(.milliseconds(Int64(interval))) { user.count("ticks") }
            }
        } else {
            result = try await test.run { user in try await chat.runWorker(user) }
        }
        // The last once-a-second sample with the most workers connected (the hold).
        let connected = result.metrics.series[RunnerMetrics.connected] ?? []
        let samples = result.generator
        let n = min(connected.count, samples.count)
        let i = (0..<n).max { (connected[$0], $0) < (connected[$1], $1) } ?? 0
        let held = n > 0 ? Int(connected[i]) : 0
        let rssHold = n > 0 ? Int(samples[i].rssBytes) : 0
        let m = result.metrics
        emit("workers", workers)
        emit("workers_connected_at_hold", held)
        emit("messages_sent", Int(m.counters[StompChatMetrics.messagesSent] ?? 0))
        emit("messages_received", Int(m.counters[StompChatMetrics.messagesReceived] ?? 0))
        emit("errors", Int(m.totalErrors))
        emit("client_rss_before_mb", Double(rssBefore) / 1_048_576, digits: 1)
        emit("client_rss_hold_mb", Double(rssHold) / 1_048_576, digits: 1)
        emit("client_rss_kb_per_worker", Double(rssHold - rssBefore) / 1024 / Double(max(1, held)), digits: 2)
        if let before = heapBefore, let probe = await heapProbe.value, !connected.isEmpty {
            let second = Int((probe.atMillis - result.startedAtMillis) / 1000)
            let workersThen = Int(connected[max(0, min(connected.count - 1, second))])
            emit("workers_connected_at_heap_probe", workersThen)
            emit("client_heap_kb_per_worker", Double(probe.bytes - before) / 1024 / Double(max(1, workersThen)), digits: 2)
        }
        if let p95 = m.trends[StompChatMetrics.messageLatency]?.value(atPercentile: 95) { emit("message_latency_p95_us", Int(p95)) }
    }
}
