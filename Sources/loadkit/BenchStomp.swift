import Foundation
import LoadKit
import LoadKitFixtures
import Synchronization

/// `loadkit bench stomp`: MESSAGE frames received per second by one client process (run it
/// pinned to one core) from the chat fixture in its own process (pinned to another core).
///
/// Fan-out: `--publishers P` STOMP clients SEND into one room that `--subscribers S` STOMP
/// clients subscribe to, so every SEND comes back as S MESSAGE frames. Publishers keep at most
/// `--window W` SENDs unanswered (credit counted in frames received), so the pipe stays full
/// without the server queueing without bound. A second phase counts WebSocket messages with a
/// bare `WebSocketHandler` on the same kind of subscriber connections (no STOMP parsing).
enum BenchStomp {
    static func run(_ o: BenchOptions) async throws {
        let seconds = try o.double("seconds", 10)
        let publishers = max(1, try o.int("publishers", 4))
        let subscribers = max(1, try o.int("subscribers", 100))
        let window = max(1, try o.int("window", 64))
        _ = ResourceLimits.raiseOpenFileLimit()
        let server = try await BenchChatServer.start(o, extra: ["--loops", "1", "--heartbeat-ms", "0"])
        defer { server.process.terminate() }
        let group = EventLoopGroup(loops: 1, label: "bench.stomp")
        let loop = group.loops[0]
        let auth = [("Authorization", "Bearer \(server.token)")]
        err("stomp: fixture pid \(server.process.pid) at \(server.webSocketURL); \(publishers) publishers → room ← \(subscribers) subscribers, window \(window), client cpus \(allowedCPUList())")

        // Publishers (STOMP clients on the same loop).
        var pubs: [StompClient] = []
        for _ in 0..<publishers {
            pubs.append(try await StompClient.connect(webSocket: server.webSocketURL, connectHeaders: auth,
                                                      heartBeat: (.zero, .zero), on: loop))
        }
        let body = Array(#"{"roomId":"bench","type":"TALK","message":"hello, this is a chat message of ordinary size"}"#.utf8)

        // Phase 1: STOMP subscribers.
        let pump = Pump(publishers: pubs, body: body, destination: "/pub/chat/room/bench",
                        fanout: subscribers, window: window)
        var subs: [StompClient] = []
        for _ in 0..<subscribers {
            let c = try await StompClient.connect(webSocket: server.webSocketURL, connectHeaders: auth,
                                                  heartBeat: (.zero, .zero), on: loop)
            try await c.subscribe(destination: "/sub/chat/room/bench", receipt: true) { _ in pump.received() }
            subs.append(c)
        }
        let stomp = try await pump.measure(on: loop, seconds: seconds, fixturePID: server.process.pid)
        for c in subs { c.close() }

        // Phase 2: the same fan-out counted at the WebSocket layer (STOMP frames not parsed).
        let ws = try await webSocketPhase(server, pubs, subscribers: subscribers, window: window, seconds: seconds, on: loop)
        for p in pubs { p.close() }

        emit("fanout", "\(publishers)x\(subscribers)")
        emit("stomp_frames", stomp.frames)
        emit("stomp_frames_per_second", stomp.perSecond, digits: 0)
        emit("stomp_client_cpu_percent", stomp.cpuPercent, digits: 0)
        emit("stomp_frames_per_second_per_core", stomp.perCoreSecond, digits: 0)
        emit("stomp_fixture_cpu_percent", stomp.fixtureCPUPercent, digits: 0)
        emit("websocket_messages_per_second", ws.perSecond, digits: 0)
        emit("websocket_client_cpu_percent", ws.cpuPercent, digits: 0)
        emit("websocket_messages_per_second_per_core", ws.perCoreSecond, digits: 0)
        emit("websocket_fixture_cpu_percent", ws.fixtureCPUPercent, digits: 0)
    }

    /// Subscribers as bare WebSocket connections (STOMP frames written by hand, counted as
    /// WebSocket messages, not parsed); the same publishers and fan-out as the STOMP phase.
    static func webSocketPhase(_ server: BenchChatServer, _ pubs: [StompClient], subscribers: Int, window: Int,
                               seconds: Double, on loop: EventLoop) async throws -> Pump.Result {
        let wsPump = Pump(publishers: pubs, body: Array(#"{"roomId":"bench-ws","type":"TALK","message":"hello, this is a chat message of ordinary size"}"#.utf8),
                          destination: "/pub/chat/room/bench-ws", fanout: subscribers, window: window)
        var sockets: [WebSocketClient] = []
        for i in 0..<subscribers {
            let ws = try await WebSocketClient.connect(server.webSocketURL, subprotocols: ["v12.stomp"], on: loop)
            let counter = CountingHandler(pump: wsPump)
            ws.connection.setHandler(counter)
            let connect = "CONNECT\naccept-version:1.2\nhost:127.0.0.1\nAuthorization:Bearer \(server.token)\nheart-beat:0,0\n\n\0"
            let subscribe = "SUBSCRIBE\nid:sub-\(i)\ndestination:/sub/chat/room/bench-ws\nreceipt:r-\(i)\n\n\0"
            ws.connection.send(text: connect)
            ws.connection.send(text: subscribe)
            sockets.append(ws)
        }
        // Each subscriber gets CONNECTED and RECEIPT first: wait for those, then reset the count.
        let deadline = monotonicNanos() + 10_000_000_000
        while await wsPump.snapshot(on: loop).received < 2 * subscribers, monotonicNanos() < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        await wsPump.reset(on: loop)
        let measured = try await wsPump.measure(on: loop, seconds: seconds, fixturePID: server.process.pid)
        for s in sockets { s.connection.transport.close() }
        return measured
    }
}

/// Counts received messages and tops up publishers' SENDs; confined to the client's loop.
final class Pump: @unchecked Sendable {
    private let publishers: [StompClient]
    private let body: [UInt8]
    private let destination: String
    private let fanout: Int
    private let window: Int
    private var sent = 0
    private var next = 0
    private(set) var count = 0
    private var running = false

    init(publishers: [StompClient], body: [UInt8], destination: String, fanout: Int, window: Int) {
        self.publishers = publishers
        self.body = body
        self.destination = destination
        self.fanout = fanout
        self.window = window
    }

    /// One message arrived (on the loop).
    @inline(__always)
    func received() {
        count &+= 1
        // Top up when fewer than half the window's SENDs are still unanswered.
        if running, sent &* fanout &- count < window &* fanout / 2 { topUp() }
    }

    private func topUp() {
        while running, sent * fanout - count < window * fanout {
            publishers[next].send(destination: destination, body: body, contentType: "application/json")
            next = next + 1 == publishers.count ? 0 : next + 1
            sent += 1
        }
    }

    func snapshot(on loop: EventLoop) async -> (received: Int, sent: Int) {
        await withCheckedContinuation { c in loop.execute { c.resume(returning: (self.count, self.sent)) } }
    }

    func reset(on loop: EventLoop) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in loop.execute { self.count = 0; c.resume() } }
    }

    struct Result {
        var frames: Int
        var perSecond: Double
        var cpuPercent: Double
        var perCoreSecond: Double
        var fixtureCPUPercent: Double
    }

    /// Starts the pump, counts for `seconds` after a one-second warm-up, stops and drains.
    func measure(on loop: EventLoop, seconds: Double, fixturePID: Int32) async throws -> Result {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            loop.execute { self.running = true; self.sent = self.count / max(1, self.fanout); self.topUp(); c.resume() }
        }
        try await Task.sleep(for: .seconds(1))
        let c0 = await snapshot(on: loop).received
        let cpu0 = ProcessStats.cpuSeconds(), f0 = ProcessStats.cpuSeconds(pid: fixturePID), t0 = monotonicNanos()
        try await Task.sleep(for: .seconds(seconds))
        let c1 = await snapshot(on: loop).received
        let cpu1 = ProcessStats.cpuSeconds(), f1 = ProcessStats.cpuSeconds(pid: fixturePID), t1 = monotonicNanos()
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in loop.execute { self.running = false; c.resume() } }
        try await Task.sleep(for: .milliseconds(500))  // let in-flight deliveries land before the next phase
        let elapsed = Double(t1 - t0) / 1e9
        let frames = c1 - c0
        let cpu = cpu1 - cpu0
        return Result(frames: frames, perSecond: Double(frames) / elapsed, cpuPercent: 100 * cpu / elapsed,
                      perCoreSecond: cpu > 0 ? Double(frames) / cpu : 0, fixtureCPUPercent: 100 * (f1 - f0) / elapsed)
    }
}

/// Counts WebSocket messages without parsing them (phase 2 of the stomp section).
final class CountingHandler: WebSocketHandler {
    let pump: Pump
    init(pump: Pump) { self.pump = pump }
    func webSocket(_ ws: WebSocketConnection, didReceive opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) {
        pump.received()
    }
    func webSocket(_ ws: WebSocketConnection, didCloseWith info: WebSocketCloseInfo) {}
}
