import Testing
import Synchronization
import Dispatch
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// A small broker on the server-role codec: topic fan-out, receipts, ACK log, and scripted faults
/// (`/error` destination → ERROR, login `bad` → ERROR echoing the passcode, `silent` → promises
/// heart-beats it never sends).
final class StompTestBroker: Sendable {
    struct State {
        var subscribers: [(conn: Connection, id: String, destination: String)] = []
        var acks: [String] = []
        var heartBeatsReceived = 0
        var heartBeatsSent = 0
        var disconnects = 0
        var messageCounter = 0
    }

    /// The broker side's byte pipe: raw TCP or one STOMP frame per WebSocket text message.
    enum Pipe {
        case tcp(any Transport)
        case ws(WebSocketConnection)
        var loop: EventLoop { switch self { case .tcp(let t): t.loop; case .ws(let w): w.loop } }
        func write(_ b: [UInt8]) {
            switch self {
            case .tcp(let t): t.write(b)
            case .ws(let w): _ = b.withUnsafeBytes { w.sendOnLoop(.text, payload: $0) }
            }
        }
        func close() { switch self { case .tcp(let t): t.close(); case .ws(let w): w.closeOnLoop(code: 1000) } }
        func shutdownOutput() { switch self { case .tcp(let t): t.shutdownOutput(); case .ws(let w): w.closeOnLoop(code: 1000) } }
    }

    final class WSAdapter: WebSocketHandler {
        let conn: Connection
        init(_ conn: Connection) { self.conn = conn }
        func webSocket(_ ws: WebSocketConnection, didReceive opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) {
            conn.received(payload)
        }
        func webSocket(_ ws: WebSocketConnection, didCloseWith info: WebSocketCloseInfo) { conn.closed() }
    }

    final class Connection: ConnectionDelegate, @unchecked Sendable {
        let tcp: Pipe
        unowned let broker: StompTestBroker
        var session = StompServerSession()
        var parser = StompFrameParser(peer: .loadGenerator)
        var out: [UInt8] = []
        var timer: LoopTimer?
        var silent = false
        var noReceipt = false
        init(_ pipe: Pipe, broker: StompTestBroker) { self.tcp = pipe; self.broker = broker }

        func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) { received(bytes) }
        func connection(_ c: any Transport, didCloseWith error: TransportError?) { closed() }

        func received(_ bytes: UnsafeRawBufferPointer) {
            // Any bytes, heart-beat EOLs included, show the client is alive (frames alone left the
            // server's clock judging a beating client silent after 30 ms, and it stopped beating).
            session.bytesReceived(now: monotonicNanos())
            let before = parser.heartBeats
            do {
                try parser.parse(bytes) { frame in handle(frame) }
            } catch {
                send(StompServerSession.errorFrame(message: "\(error)"))
                tcp.close()
            }
            let beats = parser.heartBeats - before
            if beats > 0 { broker.state.withLock { $0.heartBeatsReceived += beats } }
        }

        func closed() {
            timer?.cancel()
            broker.state.withLock { $0.subscribers.removeAll { $0.conn === self } }
        }

        func send(_ frame: StompFrame) {
            out.removeAll(keepingCapacity: true)
            StompFrameEncoder.encode(frame, into: &out)
            tcp.write(out)
        }

        func handle(_ frame: StompFrame) {
            switch session.receive(frame) {
            case .failure(let e):
                send(StompServerSession.errorFrame(message: e.message))
                tcp.close()
                return
            case .success(let request):
                switch request {
                case .connect(let f):
                    if f["login"] == "bad" || f["login"] == "bad-slow-close" {
                        send(StompServerSession.errorFrame(message: "login refused", body: "bad passcode \(f["passcode"] ?? "")"))
                        // `bad-slow-close`: the close follows 30 ms after the ERROR, in a read of its own.
                        if f["login"] == "bad-slow-close" {
                            let pipe = tcp
                            pipe.loop.schedule(after: .milliseconds(30)) { pipe.close() }
                        } else {
                            tcp.close()
                        }
                        return
                    }
                    silent = f["login"] == "silent"
                    noReceipt = f["login"] == "noreceipt"
                    let hb: (UInt64, UInt64) = silent ? (30, 0) : (f["login"] == "beat" ? (20, 20) : (0, 0))
                    switch session.accept(f, heartBeat: hb) {
                    case .success(let reply): send(reply)
                    case .failure(let e): send(StompServerSession.errorFrame(message: e.message)); tcp.close(); return
                    }
                    if !silent, let t = session.heartBeatClock.heartBeat.tickIntervalMillis {
                        timer = tcp.loop.scheduleRepeating(every: .milliseconds(Int64(t))) { [self] in
                            if session.tick(now: monotonicNanos()) == .sendHeartBeat {
                                tcp.write([0x0A])
                                broker.state.withLock { $0.heartBeatsSent += 1 }
                            }
                        }
                    }
                case .subscribe(let id, let destination, _, _):
                    broker.state.withLock { $0.subscribers.append((self, id, destination)) }
                case .unsubscribe(let id, _):
                    broker.state.withLock { $0.subscribers.removeAll { $0.conn === self && $0.id == id } }
                case .send(let destination, let f):
                    if destination == "/close-1011" || destination == "/drop" {
                        // The server ends the session without ERROR: a WebSocket close 1011, or
                        // the connection dropped (no close frame; over TCP both are a plain close).
                        switch tcp {
                        case .ws(let w) where destination == "/close-1011": w.closeOnLoop(code: 1011, reason: "internal error")
                        case .ws(let w): w.transport.close()
                        case .tcp(let t): t.close()
                        }
                        return
                    }
                    if destination == "/error" {
                        send(StompServerSession.errorFrame(message: "boom", body: "destination /error always fails",
                                                           receiptID: f["receipt"]))
                        tcp.close()
                        return
                    }
                    broker.publish(destination: destination, frame: f)
                case .ack(let id, _), .nack(let id, _):
                    broker.state.withLock { $0.acks.append(id) }
                case .transaction:
                    break
                case .disconnect:
                    broker.state.withLock { $0.disconnects += 1 }
                    if noReceipt { tcp.close(); return }   // orderly close (WebSocket 1000 / TCP FIN), no RECEIPT
                    if let r = StompServerSession.receiptFrame(for: frame) { send(r) }
                    tcp.shutdownOutput()
                    return
                }
            }
            if let r = StompServerSession.receiptFrame(for: frame) { send(r) }
        }
    }

    let state = Mutex(State())
    let listener: TCPListener

    init(webSocket: Bool = false, port: Int = 0, tls: TLSConfiguration? = nil) throws {
        let box = Mutex<StompTestBroker?>(nil)
        listener = try TCPListener(port: port, tls: tls) { tcp in
            guard let broker = box.withLock({ $0 }) else { tcp.close(); return }
            if webSocket {
                WebSocketServer.accept(tcp, supportedSubprotocols: ["v12.stomp"], authorize: { head in
                    head.target.contains("deny") ? WebSocketServer.Refusal(status: 403, body: "FORBIDDEN") : nil
                }) { ws, _ in
                    ws.setHandler(WSAdapter(Connection(.ws(ws), broker: broker)))
                }
            } else {
                tcp.start(delegate: Connection(.tcp(tcp), broker: broker))
            }
        }
        box.withLock { $0 = self }
    }

    var webSocketURL: String { "ws://\(address.host):\(address.port)/stomp" }

    var address: SocketAddress { listener.address }

    func publish(destination: String, frame: StompFrame) {
        let (targets, n) = state.withLock { s -> ([(Connection, String)], Int) in
            s.messageCounter += 1
            return (s.subscribers.filter { $0.destination == destination }.map { ($0.conn, $0.id) }, s.messageCounter)
        }
        let body = frame.body
        let contentType = frame["content-type"]
        for (conn, id) in targets {
            let encode: @Sendable () -> Void = {
                var wire: [UInt8] = []
                body.withUnsafeBytes {
                    StompServerSession.encodeMessage(destination: destination, subscription: id, messageID: "m-\(n)",
                                                     ack: "ack-\(n)", contentType: contentType, body: $0, into: &wire)
                }
                conn.tcp.write(wire)
            }
            if conn.tcp.loop.inLoop { encode() } else { conn.tcp.loop.execute(encode) }
        }
    }

    func close() { listener.close() }
}

/// Thread-safe list of received messages for assertions.
final class StompInbox: Sendable {
    let items = Mutex<[String]>([])
    func add(_ m: StompMessage) { let t = m.text; items.withLock { $0.append(t) } }
    var count: Int { items.withLock { $0.count } }

    /// Waits (polling every 5 ms, at most `seconds`) until `count` items arrived.
    func wait(for count: Int, seconds: Double = 5) async -> [String] {
        let deadline = monotonicNanos() + UInt64(seconds * 1e9)
        while self.count < count && monotonicNanos() < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        return items.withLock { $0 }
    }
}

@Suite struct StompLoopbackTests {
    private func connect(_ broker: StompTestBroker, login: String = "user", passcode: String = "pw-secret-1",
                         heartBeat: (send: Duration, receive: Duration) = (.zero, .zero),
                         toleranceMillis: UInt64 = 250, webSocket: Bool = false) async throws -> StompClient {
        let config = StompClientConfiguration(host: "test-vhost", connectHeaders: [("login", login), ("passcode", passcode)],
                                              heartBeat: heartBeat, toleranceMillis: toleranceMillis)
        if webSocket {
            let c = try await StompClient.connect(webSocket: broker.webSocketURL, configuration: config, timeout: .seconds(5))
            #expect(c.webSocketConnectNanos > 0)
            return c
        }
        return try await StompClient.connect(tcp: broker.address, configuration: config, timeout: .seconds(5))
    }

    @Test(arguments: [false, true])
    func subscribeSendBroadcastAndReceipts(webSocket: Bool) async throws {
        let broker = try StompTestBroker(webSocket: webSocket)
        defer { broker.close() }
        let a = try await connect(broker, webSocket: webSocket)
        let b = try await connect(broker, webSocket: webSocket)
        #expect(a.stompConnectNanos > 0)
        #expect(a.version == "1.2")
        let inboxA = StompInbox(), inboxB = StompInbox()
        let sidA = try await a.subscribe(destination: "/topic/room", receipt: true) { inboxA.add($0) }
        _ = try await b.subscribe(destination: "/topic/room", id: "mine", receipt: true) { inboxB.add($0) }
        #expect(sidA == "sub-0")
        for i in 0..<200 { a.send(destination: "/topic/room", text: "msg \(i)") }
        try await b.send(destination: "/topic/room", body: Array("last".utf8), receipt: true)
        // A's own messages arrive in order; B's "last" may overtake some (another connection).
        let expected = (0..<200).map { "msg \($0)" }
        for inbox in [inboxA, inboxB] {
            let got = await inbox.wait(for: 201)
            #expect(got.filter { $0 != "last" } == expected)
            #expect(got.contains("last"))
        }
        // Unsubscribed: no more deliveries to A.
        try await a.unsubscribe(id: sidA, receipt: true)
        try await b.send(destination: "/topic/room", body: [0, 1, 0], receipt: true)
        #expect(await inboxB.wait(for: 202).count == 202)
        #expect(inboxA.count == 201)
        await a.disconnect()
        await b.disconnect()
        #expect(broker.state.withLock { $0.disconnects } == 2)
        #expect(await a.waitClosed() == nil)
    }

    @Test func ackModesSendAckFrames() async throws {
        let broker = try StompTestBroker()
        defer { broker.close() }
        let c = try await connect(broker)
        let inbox = StompInbox()
        _ = try await c.subscribe(destination: "/q", ack: .clientIndividual, receipt: true) { m in
            inbox.add(m)
            c.ack(m)  // on the loop: written at once
        }
        try await c.send(destination: "/q", body: Array("x".utf8), receipt: true)
        _ = await inbox.wait(for: 1)
        try await c.send(destination: "/nowhere", body: [], receipt: true)  // orders the ACK before this receipt
        #expect(broker.state.withLock { $0.acks }.count == 1)
        #expect(broker.state.withLock { $0.acks }.first?.hasPrefix("ack-") == true)
        await c.disconnect()
    }

    @Test(arguments: [false, true])
    func errorFrameIsSurfacedToTheClient(webSocket: Bool) async throws {
        let broker = try StompTestBroker(webSocket: webSocket)
        defer { broker.close() }
        let c = try await connect(broker, webSocket: webSocket)
        let seen = Mutex<[String]>([])
        c.onError = { e in seen.withLock { $0.append(e.kind) } }
        c.onClose = { e in seen.withLock { $0.append("close:\(e?.kind ?? "nil")") } }
        do {
            try await c.send(destination: "/error", body: Array("x".utf8), receipt: true)
            Issue.record("send to /error succeeded")
        } catch let e as StompError {
            #expect(e.kind == "stomp_error")
            #expect(e.source == .server)
            #expect(e.description.contains("boom"))
            #expect(e.description.contains("always fails"))
        }
        let cause = await c.waitClosed()
        #expect(cause?.loadKitKind == "stomp_error")
        #expect(seen.withLock { $0 } == ["stomp_error", "close:stomp_error"])
        // Later calls fail clearly instead of hanging.
        await #expect(throws: StompError.self) { try await c.subscribe(destination: "/a") { _ in } }
    }

    @Test func refusedLoginHidesThePasscode() async throws {
        let broker = try StompTestBroker()
        defer { broker.close() }
        do {
            _ = try await connect(broker, login: "bad", passcode: "pw-secret-1")
            Issue.record("bad login accepted")
        } catch let e as StompError {
            #expect(e.kind == "stomp_error")
            #expect(e.description.contains("login refused"))
            #expect(!e.description.contains("pw-secret-1"))
        }
    }

    @Test(arguments: [false, true])
    func silentServerTimesOutAndBeatsFlowBothWays(webSocket: Bool) async throws {
        let broker = try StompTestBroker(webSocket: webSocket)
        defer { broker.close() }
        // The "silent" server promises a beat every 30 ms and sends none.
        let c = try await connect(broker, login: "silent", heartBeat: (.zero, .milliseconds(30)), toleranceMillis: 0,
                                webSocket: webSocket)
        #expect(c.heartBeat.receiveTimeoutMillis == 45)
        // Timed on the client's loop: this test's own task resumes on Swift's shared pool, which
        // parallel tests can hold; the loop keeps time.
        let (cause, waited) = await Task(executorPreference: c.loop) {
            let start = monotonicNanos()
            let cause = await c.waitClosed()
            return (cause, monotonicNanos() - start)
        }.value
        #expect(cause?.loadKitKind == "stomp_heartbeat_timeout")
        #expect(cause?.loadKitSource == .server)
        #expect(waited < 2_000_000_000, "\(waited / 1_000_000) ms")

        // A beating server keeps an idle client alive, and the client's beats reach the server.
        // (A generous receive tolerance: on a loaded 2-core machine a loop can stall for a few
        // hundred milliseconds, and this part tests that beats flow, not how fast.)
        let d = try await connect(broker, login: "beat", heartBeat: (.milliseconds(20), .milliseconds(20)), toleranceMillis: 3000,
                                webSocket: webSocket)
        #expect(d.heartBeat.sendEveryMillis == 20)
        // At least 4 beats each way (≈ 80 ms of beating), waited for up to 5 s: in a parallel test
        // run a fixed 300 ms sleep once saw only 3 — the loops were busy with other tests. The
        // server beats on only while it hears the client (its own receive timeout is 30 ms).
        let deadline = monotonicNanos() + 5_000_000_000
        while broker.state.withLock({ $0.heartBeatsReceived < 4 || $0.heartBeatsSent < 4 }), monotonicNanos() < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(broker.state.withLock { $0.heartBeatsReceived } >= 4)
        #expect(broker.state.withLock { $0.heartBeatsSent } >= 4)
        try await d.send(destination: "/nowhere", body: [], receipt: true)  // still connected
        await d.disconnect()
        #expect(await d.waitClosed() == nil)
    }

    @Test func connectTimeoutAndClosedServer() async throws {
        // A listener that accepts and never answers CONNECT.
        let mute = try TCPListener { tcp in
            final class Sink: ConnectionDelegate, @unchecked Sendable {
                func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {}
                func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
            }
            tcp.start(delegate: Sink())
        }
        defer { mute.close() }
        do {
            _ = try await StompClient.connect(tcp: mute.address, configuration: .init(), timeout: .milliseconds(100))
            Issue.record("connected to a mute server")
        } catch {
            #expect(error.loadKitKind == "stomp_timeout")
        }
        // A server that closes straight away: a transport error, not a hang.
        let closer = try TCPListener { tcp in tcp.close() }
        defer { closer.close() }
        do {
            _ = try await StompClient.connect(tcp: closer.address, configuration: .init(), timeout: .seconds(2))
            Issue.record("connected to a closing server")
        } catch {
            #expect(["closed_by_peer", "reset"].contains(error.loadKitKind))
        }
    }

    /// The caller's executor can be slow to resume it (parallel tests hold Swift's shared pool):
    /// that wait is not the server's and must not eat the CONNECT budget or the connect time.
    /// Here every resume of the caller waits 2 s; the TCP connect and the handshake get a 1.5 s
    /// budget (a 300 ms one was too short for the loops of a parallel run). They used to be timed
    /// from the caller's task, which left CONNECT 1 ms ("no CONNECTED within 0.001 seconds", seen
    /// in parallel runs).
    @Test(arguments: [false, true])
    func aSlowCallerDoesNotEatTheConnectBudget(webSocket: Bool) async throws {
        let broker = try StompTestBroker(webSocket: webSocket)
        defer { broker.close() }
        let config = StompClientConfiguration(host: "test-vhost", connectHeaders: [("login", "user"), ("passcode", "pw-secret-1")],
                                              heartBeat: (.zero, .zero))
        let slow = SlowResumeExecutor(delay: .seconds(2))
        let c = try await withTaskExecutorPreference(slow) {
            webSocket ? try await StompClient.connect(webSocket: broker.webSocketURL, configuration: config, timeout: .milliseconds(1500))
                      : try await StompClient.connect(tcp: broker.address, configuration: config, timeout: .milliseconds(1500))
        }
        #expect(slow.resumes.load(ordering: .relaxed) > 0, "the caller did run on the slow executor")
        #expect(c.transportConnectNanos > 0 && c.transportConnectNanos < 1_500_000_000, "\(c.transportConnectNanos) ns")
        #expect(c.stompConnectNanos > 0 && c.stompConnectNanos < 1_500_000_000, "\(c.stompConnectNanos) ns")
        await c.disconnect()
    }

    @Test func webSocketHandshakeRefusalAndSubprotocol() async throws {
        let broker = try StompTestBroker(webSocket: true)
        defer { broker.close() }
        do {
            _ = try await StompClient.connect(webSocket: broker.webSocketURL + "?deny=1", timeout: .seconds(5))
            Issue.record("refused upgrade accepted")
        } catch {
            #expect(error.loadKitKind == "ws_handshake_403")
        }
        let c = try await StompClient.connect(webSocket: broker.webSocketURL, connectHeaders: [("login", "u")],
                                              heartBeat: (.zero, .zero), timeout: .seconds(5),
                                              wsHeaders: [("Authorization", "Bearer abc")])
        #expect(c.stompConnectNanos > 0)
        #expect(c.webSocketSubprotocol == "v12.stomp")
        await c.disconnect()
        #expect(await c.waitClosed() == nil)
    }

    /// A hand-written WebSocket server puts several frames in one message and splits one frame
    /// over two messages; the client must see every MESSAGE.
    @Test func framesSplitAndBatchedAcrossWebSocketMessages() async throws {
        final class Scripted: WebSocketHandler {
            var parser = StompFrameParser(peer: .loadGenerator)
            func webSocket(_ ws: WebSocketConnection, didReceive opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) {
                var frames: [StompFrame] = []
                try? parser.parse(payload) { frames.append($0) }
                for f in frames {
                    if f.command == .connect {
                        _ = ws.sendOnLoop(text: "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0")
                    } else if f.command == .subscribe, let r = f["receipt"] {
                        let m1 = "MESSAGE\nsubscription:\(f["id"]!)\nmessage-id:1\ndestination:/d\n\none\0"
                        let m2 = "MESSAGE\nsubscription:\(f["id"]!)\nmessage-id:2\ndestination:/d\ncontent-length:3\n\ntwo\0\n"
                        let all = "RECEIPT\nreceipt-id:\(r)\n\n\0\n" + m1 + m2 + m1
                        let bytes = Array(all.utf8)
                        let cut = bytes.count - 10
                        _ = bytes[..<cut].withUnsafeBytes { ws.sendOnLoop(.text, payload: $0) }
                        _ = bytes[cut...].withUnsafeBytes { ws.sendOnLoop(.binary, payload: $0) }
                    }
                }
            }
            func webSocket(_ ws: WebSocketConnection, didCloseWith info: WebSocketCloseInfo) {}
        }
        let listener = try TCPListener { tcp in
            WebSocketServer.accept(tcp, supportedSubprotocols: ["v12.stomp"]) { ws, _ in ws.setHandler(Scripted()) }
        }
        defer { listener.close() }
        let c = try await StompClient.connect(webSocket: "ws://127.0.0.1:\(listener.address.port)/", heartBeat: (.zero, .zero),
                                              timeout: .seconds(5))
        let inbox = StompInbox()
        _ = try await c.subscribe(destination: "/d", receipt: true) { inbox.add($0) }
        #expect(await inbox.wait(for: 3) == ["one", "two", "one"])
        c.close()
        #expect(await c.waitClosed() == nil)
    }

    /// Issue 13: brokers may close right after DISCONNECT without the RECEIPT (STOMP 1.2 warns
    /// of it). An orderly close (WebSocket 1000, TCP FIN) after our DISCONNECT is success, at once.
    @Test(arguments: [false, true])
    func orderlyCloseAfterDisconnectWithoutReceiptIsSuccess(webSocket: Bool) async throws {
        let broker = try StompTestBroker(webSocket: webSocket)
        defer { broker.close() }
        let c = try await connect(broker, login: "noreceipt", webSocket: webSocket)
        // The close is timed on the loop (onClose), not when this task resumes on Swift's shared
        // pool, which parallel suites can hold for seconds (3.15 s seen for an at-once close).
        let closedAt = Atomic<UInt64>(0)
        c.onClose = { _ in closedAt.store(monotonicNanos(), ordering: .relaxed) }
        let start = monotonicNanos()
        await c.disconnect(timeout: .seconds(5))
        let cause = await c.waitClosed()
        let end = closedAt.load(ordering: .relaxed)
        #expect(end > start && end - start < 3_000_000_000, "disconnect waited for the time-out: \(end &- start) ns")
        #expect(cause == nil, "\(cause.map { "\($0.kind): \($0)" } ?? "")")
        #expect(broker.state.withLock { $0.disconnects } == 1)
    }

    /// A server that never answers DISCONNECT: `disconnect(timeout:)` still returns, bounded.
    @Test func disconnectIsBoundedWhenTheReceiptNeverComes() async throws {
        final class NoReceipt: ConnectionDelegate, @unchecked Sendable {
            var parser = StompFrameParser(peer: .loadGenerator)
            func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
                var frames: [StompFrame] = []
                try? parser.parse(bytes) { frames.append($0) }
                for f in frames where f.command == .connect {
                    c.write(Array("CONNECTED\nversion:1.2\n\n\0".utf8))
                }
            }
            func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
        }
        let listener = try TCPListener { tcp in tcp.start(delegate: NoReceipt()) }
        defer { listener.close() }
        let c = try await StompClient.connect(tcp: listener.address, configuration: .init(heartBeat: (.zero, .zero)), timeout: .seconds(5))
        // The end is taken on the loop when the connection closes, not when this task resumes
        // (Swift's shared pool, which parallel suites can hold for seconds).
        let closedAt = Atomic<UInt64>(0)
        c.onClose = { _ in closedAt.store(monotonicNanos(), ordering: .relaxed) }
        let start = monotonicNanos()
        await c.disconnect(timeout: .milliseconds(100))
        #expect(await c.waitClosed() == nil)
        let end = closedAt.load(ordering: .relaxed)
        #expect(end > start)
        let waited = end &- start
        #expect(waited >= 90_000_000 && waited < 2_000_000_000, "\(waited) ns")
    }
}

/// A task executor that runs every job `delay` late (a caller on a busy shared pool).
final class SlowResumeExecutor: TaskExecutor, @unchecked Sendable {
    let delay: Duration
    let resumes = Atomic<Int>(0)
    init(delay: Duration) { self.delay = delay }
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        resumes.add(1, ordering: .relaxed)
        let ms = Int(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(ms)) {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
