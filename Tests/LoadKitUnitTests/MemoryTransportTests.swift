import Testing
import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitFixtures
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Records every read (its size and bytes) and how the stream ended.
final class ReadRecorder: ConnectionDelegate, @unchecked Sendable {
    let state = Mutex<(reads: [Int], bytes: [UInt8], end: TransportError??)>(([], [], nil))
    func connection(_ c: any Transport, didRead b: UnsafeRawBufferPointer) {
        state.withLock { $0.reads.append(b.count); $0.bytes.append(contentsOf: b) }
    }
    func connection(_ c: any Transport, didCloseWith error: TransportError?) { state.withLock { $0.end = .some(error) } }

    /// Waits (bounded) until the stream ended; nil when it had not by `seconds` from now. Looks
    /// once more after the deadline: this task resumes on Swift's shared pool, which other tests
    /// can hold for seconds, so it may wake after the deadline although the end came long before
    /// (without this look, parallel run 23 of 2026-12-01 reported no end for a FIN the loop
    /// delivers in one turn, in a test that took 9.2 s).
    func waitEnd(seconds: Double = 5) async -> TransportError?? {
        let deadline = monotonicNanos() + UInt64(seconds * 1e9)
        while true {
            if let e = state.withLock({ $0.end }) { return .some(e) }
            if monotonicNanos() >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Waits (bounded) until the bytes so far satisfy `done`; returns them.
    func waitBytes(seconds: Double = 5, until done: ([UInt8]) -> Bool) async -> [UInt8] {
        let deadline = monotonicNanos() + UInt64(seconds * 1e9)
        while monotonicNanos() < deadline {
            let b = state.withLock { $0.bytes }
            if done(b) { return b }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return state.withLock { $0.bytes }
    }
}

/// Runs `body` on `loop` and returns its result.
private func on<T: Sendable>(_ loop: EventLoop, _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { k in loop.execute { k.resume(returning: body()) } }
}

/// The in-memory transport pair (issue 14's transport seam): protocol drivers — the same ones the
/// clients and fixture servers use over TCP and TLS — run over it without sockets.
@Suite struct MemoryTransportTests {
    /// A pair whose server end the chat fixture serves, both ends delivering one byte per read.
    private func byteByByte(to chat: StompChatFixture) -> (client: MemoryTransport, server: MemoryTransport) {
        let (client, server) = MemoryTransport.pair(on: chat.server.group.loops[0])
        client.readChunk = 1
        server.readChunk = 1
        chat.server.adopt(server)
        return (client, server)
    }

    @Test func bytesArriveInOrderInReadsOfTheChunkSizeThenTheEnd() async throws {
        let (client, server) = MemoryTransport.pair()
        let rec = ReadRecorder()
        server.readChunk = 3
        server.start(delegate: rec)
        await on(client.loop) {
            client.write(Array("hello ".utf8))
            Array("world".utf8).withUnsafeBytes { w in Array("big ".utf8).withUnsafeBytes { client.write(rawBytes: $0, w) } }
            client.shutdownOutput()
            client.write(Array("after the end".utf8))  // dropped: the output is shut
        }
        let end = await rec.waitEnd()
        let (reads, bytes) = rec.state.withLock { ($0.reads, $0.bytes) }
        #expect(String(decoding: bytes, as: UTF8.self) == "hello big world")
        #expect(reads.allSatisfy { $0 <= 3 } && reads.count == 5)
        guard case .some(.some(.closedByPeer(let endpoint))) = end else {
            Issue.record("expected closedByPeer after the bytes, got \(String(describing: end))"); return
        }
        #expect(endpoint == "memory-client")
        #expect(client.bytesWritten == 15)
        // The server closed on the end of its stream; that ends the client's stream too (a FIN).
        let back = ReadRecorder()
        client.start(delegate: back)
        #expect(server.isOpen == false)
        #expect(await back.waitEnd() != nil)
    }

    @Test func abortResetsThePeerAndDropsWhatItHadNotRead() async throws {
        let (client, server) = MemoryTransport.pair()
        let rec = ReadRecorder()
        server.start(delegate: rec)
        await on(client.loop) {
            // In one loop turn: the bytes sit in the server's inbox, not yet delivered, when the
            // reset comes — a reset drops them, as TCP's RST does.
            client.write(Array("never read".utf8))
            client.abort()
        }
        let end = await rec.waitEnd()
        guard case .some(.some(.reset(let endpoint))) = end else {
            Issue.record("expected a reset, got \(String(describing: end))"); return
        }
        #expect(endpoint == "memory-client")
        #expect(rec.state.withLock { $0.bytes }.isEmpty)
        #expect(server.isOpen == false && client.isOpen == false)
    }

    /// The fixture's HTTP driver over a pair split at every byte: login answered as over TCP.
    @Test func fixtureHTTPServerOverAPairSplitAtEveryByte() async throws {
        let chat = try await StompChatFixture.start()
        defer { Task { await chat.stop() } }
        let (client, server) = byteByByte(to: chat)
        let rec = ReadRecorder()
        client.start(delegate: rec)
        let body = #"{"email":"test1@test.com","password":"password123!"}"#
        let request = Array("POST /api/v1/auth/login HTTP/1.1\r\nHost: memory\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
        await on(client.loop) { client.write(request) }   // loop-confined, like every transport
        let reply = await rec.waitBytes { String(decoding: $0, as: UTF8.self).contains("accessToken") && $0.last == UInt8(ascii: "}") }
        let text = String(decoding: reply, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200"), "\(text.prefix(200))")
        #expect(rec.state.withLock { $0.reads }.allSatisfy { $0 == 1 })
        client.close()   // thread-safe
    }

    /// The STOMP client over the WebSocket client over a pair split at every byte, against the
    /// chat fixture's broker (the server drivers): subscribe, send, the broadcast comes back.
    @Test func stompOverWebSocketAgainstTheChatFixtureWithoutASocket() async throws {
        let chat = try await StompChatFixture.start()
        defer { Task { await chat.stop() } }
        let (client, server) = byteByByte(to: chat)
        // Budgets for correctness, not speed: a byte per loop turn on loops that every parallel
        // test shares took 5 s once (swift test in parallel); each handshake gets its own 20 s.
        let start = monotonicNanos()
        let ws = try await WebSocketClient.handshake(over: client, endpoint: try Endpoint(chat.webSocketURL, defaultScheme: .ws),
                                                     headers: [], subprotocols: ["v12.stomp"], timeout: .seconds(20),
                                                     maxMessageSize: 1 << 20,
                                                     closeTimeout: .seconds(2), observer: nil, start: start)
        #expect(ws.subprotocol == "v12.stomp")
        let stomp = try await StompClient.handshake(over: ws, configuration: StompClientConfiguration(connectHeaders: chat.connectHeaders(token: chat.token())),
                                                    limits: .init(), timeout: .seconds(20), start: monotonicNanos())
        #expect(chat.connectedSessions == 1)
        let inbox = StompInbox()
        _ = try await stomp.subscribe(destination: chat.roomDestination(chat.lobbyRoomId), receipt: true, timeout: .seconds(20)) { inbox.add($0) }
        try await stomp.send(destination: chat.publishDestination,
                             body: Array(#"{"roomId":1,"message":"no socket","messageId":"m-1"}"#.utf8),
                             contentType: "application/json", receipt: true, timeout: .seconds(20))
        let got = await inbox.wait(for: 1, seconds: 20)
        #expect(got.count == 1)
        let o = try #require(try JSONSerialization.jsonObject(with: Data((got.first ?? "{}").utf8)) as? [String: Any])
        #expect(o["message"] as? String == "no socket")
        #expect(o["senderId"] as? Int == 1)
        await stomp.disconnect()
        #expect(await stomp.waitClosed() == nil)
        #expect(client.bytesWritten > 0 && server.bytesWritten > client.bytesWritten / 4)
    }
}
