import Foundation
import LoadKit
import LoadKitFixtures
import Synchronization

/// `loadkit bench held`: opens `--connections N` STOMP-over-WebSocket connections from this one
/// process to the chat fixture in another process (heart-beats on: `--heartbeat-ms`, default
/// 10,000 both ways, as the seed's server), subscribes each to a room, holds them for
/// `--hold-seconds`, and reports how many survived, the client's RSS per connection
/// ((RSS after − RSS before) / N) and its CPU while idle (getrusage over the hold).
///
/// `--sources K` spreads connections over 127.0.0.1 … 127.0.0.K (more ephemeral ports);
/// `--concurrency C` bounds connects in flight (default 256).
enum BenchHeld {
    static func run(_ o: BenchOptions) async throws {
        let target = max(1, try o.int("connections", 19_000))
        let hold = try o.double("hold-seconds", 30)
        let hb = try o.int("heartbeat-ms", 10_000)
        let sources = max(1, try o.int("sources", 1))
        let concurrency = max(1, try o.int("concurrency", 256))
        let rooms = max(1, try o.int("rooms", 100))
        let limit = ResourceLimits.raiseOpenFileLimit()
        if limit < target + 64 { err("held: note: open-file limit \(limit) is close to or below \(target) connections") }

        let server = try await BenchChatServer.start(o, extra: ["--heartbeat-ms", String(hb), "--users", "10"])
        defer { server.process.terminate() }
        let heartBeat = (Duration.milliseconds(hb), Duration.milliseconds(hb))
        let sourceAddrs: [SocketAddress?] = sources == 1 ? [nil] : (1...sources).map { SocketAddress(ip: "127.0.0.\($0)", port: 0) }
        let group = EventLoopGroup.shared
        err("held: \(target) connections, hold \(hold) s, heart-beat \(hb) ms, \(sources) source address(es), \(group.loops.count) loop(s), fixture pid \(server.process.pid), client cpus \(allowedCPUList())")

        let book = HeldBook()
        // Let the runtime, the loops and the first allocations settle before the baseline.
        try await Task.sleep(for: .milliseconds(300))
        let rssBefore = ProcessStats.rssBytes()
        let fixtureRSSBefore = ProcessStats.rssBytes(pid: server.process.pid)
        let openStart = monotonicNanos()
        let failures = await openConnections(target: target, concurrency: concurrency, rooms: rooms, server: server,
                                             heartBeat: heartBeat, sources: sourceAddrs, book: book)
        let openSeconds = Double(monotonicNanos() - openStart) / 1e9
        let opened = book.count
        err("held: \(opened) connections open in \(String(format: "%.1f", openSeconds)) s; failures \(failures)")
        // Let connect-time garbage (tasks, handshake buffers) be released before measuring.
        try await Task.sleep(for: .seconds(2))
        let rssOpen = ProcessStats.rssBytes()
        let closedBefore = book.closedCount
        let cpu0 = ProcessStats.cpuSeconds(), f0 = ProcessStats.cpuSeconds(pid: server.process.pid), t0 = monotonicNanos()
        var slept = 0.0
        while slept < hold {
            let step = min(10, hold - slept)
            try await Task.sleep(for: .seconds(step))
            slept += step
            err("held: \(Int(slept)) s: \(opened - book.closedCount) open, fixture \(server.lastStats)")
        }
        let cpu1 = ProcessStats.cpuSeconds(), f1 = ProcessStats.cpuSeconds(pid: server.process.pid), t1 = monotonicNanos()
        let rssAfter = ProcessStats.rssBytes()
        let fixtureRSS = ProcessStats.rssBytes(pid: server.process.pid)
        let drops = book.closedCount
        let held = opened - drops
        let elapsed = Double(t1 - t0) / 1e9
        let stats = server.lastStats

        emit("target_connections", target)
        emit("opened_connections", opened)
        emit("connect_failures", failures.values.reduce(0, +))
        emit("open_seconds", openSeconds, digits: 1)
        emit("hold_seconds", elapsed, digits: 1)
        emit("dropped_during_hold", drops - closedBefore)
        emit("held_connections", held)
        emit("fixture_stomp_sessions", stats["stomp"] ?? "?")
        emit("client_rss_before_mb", Double(rssBefore) / 1_048_576, digits: 1)
        emit("client_rss_open_mb", Double(rssOpen) / 1_048_576, digits: 1)
        emit("client_rss_after_mb", Double(rssAfter) / 1_048_576, digits: 1)
        emit("client_rss_kb_per_connection", Double(rssAfter - rssBefore) / 1024 / Double(max(1, held)), digits: 2)
        emit("client_idle_cpu_percent", 100 * (cpu1 - cpu0) / elapsed, digits: 2)
        emit("fixture_rss_kb_per_connection", Double(fixtureRSS - fixtureRSSBefore) / 1024 / Double(max(1, held)), digits: 2)
        emit("fixture_idle_cpu_percent", 100 * (f1 - f0) / elapsed, digits: 2)
        emit("messages_received", book.messages)
        book.closeAll()
    }

    /// Connects and subscribes `target` clients, at most `concurrency` connecting at once; the
    /// open ones go to `book`. Returns the failures by kind.
    static func openConnections(target: Int, concurrency: Int, rooms: Int, server: BenchChatServer,
                                heartBeat: (Duration, Duration), sources sourceAddrs: [SocketAddress?],
                                book: HeldBook) async -> [String: Int] {
        let auth = [("Authorization", "Bearer \(server.token)")]
        let group = EventLoopGroup.shared
        var failures: [String: Int] = [:]
        await withTaskGroup(of: Result<StompClient, any Error>.self) { g in
            var started = 0
            func launch(_ i: Int) {
                g.addTask {
                    do {
                        let c = try await StompClient.connect(webSocket: server.webSocketURL, connectHeaders: auth,
                                                              heartBeat: heartBeat, timeout: .seconds(30),
                                                              source: sourceAddrs[i % sourceAddrs.count],
                                                              on: group.next())
                        c.onClose = { _ in book.closed() }
                        try await c.subscribe(destination: "/sub/chat/room/held-\(i % rooms)") { _ in book.message() }
                        return .success(c)
                    } catch { return .failure(error) }
                }
            }
            while started < min(concurrency, target) { launch(started); started += 1 }
            while let r = await g.next() {
                switch r {
                case .success(let c): book.add(c)
                case .failure(let e):
                    let key = (e as? any ClassifiedError)?.kind ?? "\(type(of: e))"
                    if failures[key] == nil { err("held: connect failed: \(e)") }
                    failures[key, default: 0] += 1
                }
                if started < target { launch(started); started += 1 }
                if (book.count + failures.values.reduce(0, +)) % 2000 == 0 { err("held: \(book.count) open") }
            }
        }
        return failures
    }
}

/// The open clients and what happened to them (thread-safe).
final class HeldBook: Sendable {
    private let clients = Mutex<[StompClient]>([])
    private let closes = Atomic<Int>(0)
    private let received = Atomic<Int>(0)
    func add(_ c: StompClient) { clients.withLock { $0.append(c) } }
    var count: Int { clients.withLock { $0.count } }
    func closed() { closes.add(1, ordering: .relaxed) }
    var closedCount: Int { closes.load(ordering: .relaxed) }
    func message() { received.add(1, ordering: .relaxed) }
    var messages: Int { received.load(ordering: .relaxed) }
    func closeAll() {
        let all = clients.withLock { c in let a = c; c.removeAll(); return a }
        for c in all { c.close() }
    }
}
