import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

private let ms: UInt64 = 1_000_000

private func connected(_ s: inout StompClientSession, server hb: String = "0,0", at now: UInt64 = 0) -> StompClientSession.Action {
    _ = s.connectFrame(now: now)
    return s.received(StompFrame(.connected, headers: [("version", "1.2"), ("heart-beat", hb)]), now: now)
}

@Suite struct StompSessionTests {
    struct NegotiationCase: Sendable, CustomTestStringConvertible {
        var own: (UInt64, UInt64), peer: (UInt64, UInt64), send: UInt64, expect: UInt64
        var testDescription: String { "own \(own) peer \(peer)" }
    }

    @Test(arguments: [
        NegotiationCase(own: (0, 0), peer: (100, 100), send: 0, expect: 0),
        NegotiationCase(own: (100, 0), peer: (0, 0), send: 0, expect: 0),
        NegotiationCase(own: (100, 200), peer: (300, 50), send: 100, expect: 300),
        NegotiationCase(own: (1000, 1000), peer: (5000, 5000), send: 5000, expect: 5000),
        NegotiationCase(own: (4000, 0), peer: (10000, 2000), send: 4000, expect: 0),
        NegotiationCase(own: (0, 4000), peer: (10000, 2000), send: 0, expect: 10000),
    ])
    func heartBeatNegotiation(_ c: NegotiationCase) {
        let hb = StompHeartBeat.negotiate(own: (c.own.0, c.own.1), peer: (c.peer.0, c.peer.1), toleranceFactor: 1.5, toleranceMillis: 10)
        #expect(hb.sendEveryMillis == c.send)
        #expect(hb.expectReceiveEveryMillis == c.expect)
        #expect(hb.receiveTimeoutMillis == (c.expect == 0 ? 0 : c.expect * 3 / 2 + 10))
    }

    @Test func heartBeatHeaderParsing() {
        #expect(StompHeartBeat.parseHeader("10, 20")! == (10, 20))
        #expect(StompHeartBeat.parseHeader(nil)! == (0, 0))
        #expect(StompHeartBeat.parseHeader("10") == nil)
        #expect(StompHeartBeat.parseHeader("a,b") == nil)
        #expect(StompHeartBeat.parseHeader("-1,0") == nil)
    }

    @Test func connectFrameCarriesEverything() {
        var s = StompClientSession(configuration: .init(host: "vh", connectHeaders: [("login", "u"), ("passcode", "p"), ("Authorization", "Bearer t")],
                                                        heartBeat: (.milliseconds(1500), .seconds(2)), useStompCommand: true))
        let f = s.connectFrame(now: 0)
        #expect(f.command == .stomp)
        #expect(f.headers.map(\.name) == ["accept-version", "host", "heart-beat", "login", "passcode", "Authorization"])
        #expect(f["accept-version"] == "1.2")
        #expect(f["host"] == "vh")
        #expect(f["heart-beat"] == "1500,2000")
        #expect(f["Authorization"] == "Bearer t")
        #expect(s.state == .connecting)
        #expect(!s.canSend)
    }

    @Test func connectedNegotiatesAndTicksDriveHeartBeats() {
        var s = StompClientSession(configuration: .init(heartBeat: (.milliseconds(100), .milliseconds(100)), toleranceFactor: 1.5, toleranceMillis: 0))
        guard case .connected(let v, let hb) = connected(&s, server: "200,50") else { Issue.record("not connected"); return }
        #expect(v == "1.2")
        #expect(hb == StompHeartBeat(sendEveryMillis: 100, expectReceiveEveryMillis: 200, receiveTimeoutMillis: 300))
        #expect(hb.tickIntervalMillis == 50)
        #expect(s.canSend)
        // Idle for one tick short of the interval: a beat is due so the gap stays ≤ 100 ms.
        #expect(s.tick(now: 20 * ms) == .none)
        #expect(s.tick(now: 50 * ms) == .sendHeartBeat)
        #expect(s.tick(now: 60 * ms) == .none)  // the beat counted as a write
        s.bytesSent(now: 90 * ms)
        #expect(s.tick(now: 100 * ms) == .none)
        // Server bytes keep the session alive; silence past 300 ms fails it.
        s.bytesReceived(now: 250 * ms)
        #expect(s.tick(now: 540 * ms) != .peerSilent(silentMillis: 290))
        #expect(s.tick(now: 551 * ms) == .peerSilent(silentMillis: 301))
        #expect(s.state == .closed)
        #expect(s.failure?.kind == "stomp_heartbeat_timeout")
        #expect(s.failure?.source == .server)
    }

    @Test func receiptsAndDisconnect() {
        var s = StompClientSession(configuration: .init())
        _ = connected(&s)
        let rid = s.makeReceiptID()
        let (sid, sub) = s.subscribeFrame(destination: "/t", ack: .clientIndividual, receipt: rid)
        #expect(sid == "sub-0")
        #expect(sub["ack"] == "client-individual")
        #expect(sub["receipt"] == rid)
        guard case .receipt(let got) = s.received(StompFrame(.receipt, headers: [("receipt-id", rid)]), now: 1) else {
            Issue.record("no receipt"); return
        }
        #expect(got == rid)
        let msg = StompFrame(.message, headers: [("subscription", sid), ("message-id", "m1"), ("ack", "a1")])
        guard case .message = s.received(msg, now: 2) else { Issue.record("no message"); return }
        #expect(s.ackFrame(for: StompMessage(frame: msg))?["id"] == "a1")
        #expect(s.ackFrame(for: StompMessage(frame: msg), negative: true)?.command == .nack)
        let d = s.disconnectFrame()
        #expect(s.state == .disconnecting)
        // Messages still arrive while disconnecting; then the DISCONNECT receipt ends the session.
        guard case .message = s.received(msg, now: 3) else { Issue.record("no message"); return }
        guard case .disconnected = s.received(StompFrame(.receipt, headers: [("receipt-id", d["receipt"]!)]), now: 4) else {
            Issue.record("not disconnected"); return
        }
        #expect(s.state == .closed)
        #expect(s.failure == nil)
    }

    @Test func errorFrameIsSurfacedWithoutSecrets() {
        var s = StompClientSession(configuration: .init(connectHeaders: [("login", "bob"), ("passcode", "hunter22"),
                                                                         ("Authorization", "Bearer tok-123456")]))
        _ = s.connectFrame(now: 0)
        let err = StompFrame(.error, headers: [("message", "access denied for hunter22")],
                             text: "token tok-123456 rejected\nsecond line")
        guard case .failed(let e) = s.received(err, now: 1) else { Issue.record("not failed"); return }
        #expect(e.kind == "stomp_error")
        #expect(e.source == .server)
        #expect(e.description.contains("access denied"))
        #expect(e.description.contains("rejected second line"))
        #expect(!e.description.contains("hunter22"))
        #expect(!e.description.contains("tok-123456"))
        #expect(s.state == .closed)
    }

    @Test func unexpectedFramesFail() {
        var s = StompClientSession(configuration: .init())
        _ = s.connectFrame(now: 0)
        guard case .failed(let e) = s.received(StompFrame(.message), now: 1) else { Issue.record("accepted"); return }
        #expect(e.kind == "stomp_protocol")
        var t = StompClientSession(configuration: .init())
        _ = t.connectFrame(now: 0)
        guard case .failed(let e2) = t.received(StompFrame(.connected, headers: [("heart-beat", "x")]), now: 1) else {
            Issue.record("accepted"); return
        }
        #expect(e2.kind == "stomp_malformed")
    }

    @Test func serverSessionJudgesClientFrames() throws {
        var s = StompServerSession(now: 0)
        guard case .failure(let early) = s.receive(StompFrame(.send, headers: [("destination", "/a")]), now: 0) else {
            Issue.record("SEND before CONNECT accepted"); return
        }
        #expect(early.source == .loadGenerator)
        var client = StompClientSession(configuration: .init(heartBeat: (.milliseconds(100), .milliseconds(300))))
        let connect = client.connectFrame(now: 0)
        guard case .success(.connect(let c)) = s.receive(connect, now: 0) else { Issue.record("no connect"); return }
        let reply = try s.accept(c, heartBeat: (200, 50), now: 0, session: "s1").get()
        #expect(reply["version"] == "1.2")
        #expect(reply["heart-beat"] == "200,50")
        #expect(s.heartBeatClock.heartBeat.sendEveryMillis == 300)
        #expect(s.heartBeatClock.heartBeat.expectReceiveEveryMillis == 100)
        guard case .connected(_, let hb) = client.received(reply, now: 0) else { Issue.record("client not connected"); return }
        #expect(hb.sendEveryMillis == 100)
        #expect(hb.expectReceiveEveryMillis == 300)

        guard case .success(.subscribe(let id, let dest, let ack, _)) =
                s.receive(StompFrame(.subscribe, headers: [("id", "7"), ("destination", "/q"), ("ack", "client")]), now: 1) else {
            Issue.record("no subscribe"); return
        }
        #expect((id, dest, ack) == ("7", "/q", .client))
        #expect(s.subscriptions["7"]?.destination == "/q")
        guard case .failure(let bad) = s.receive(StompFrame(.subscribe, headers: [("destination", "/q")]), now: 1) else {
            Issue.record("SUBSCRIBE without id accepted"); return
        }
        #expect(bad.kind == "stomp_malformed")
        let withReceipt = StompFrame(.send, headers: [("destination", "/q"), ("receipt", "r9")])
        guard case .success(.send("/q", _)) = s.receive(withReceipt, now: 2) else { Issue.record("no send"); return }
        #expect(StompServerSession.receiptFrame(for: withReceipt)?["receipt-id"] == "r9")

        var wire: [UInt8] = []
        Array("hi".utf8).withUnsafeBytes {
            StompServerSession.encodeMessage(destination: "/q", subscription: "7", messageID: "m:1", ack: "a1", body: $0, into: &wire)
        }
        var p = StompFrameParser(peer: .server)
        let m = try p.frames(from: wire)
        #expect(m.count == 1)
        #expect(m[0]["message-id"] == "m:1")
        #expect(m[0]["content-length"] == "2")
        #expect(m[0].bodyText == "hi")
    }

    @Test func serverRejectsUnsupportedVersion() {
        var s = StompServerSession(now: 0)
        let f = StompFrame(.connect, headers: [("accept-version", "2.0")])
        guard case .failure(let e) = s.accept(f) else { Issue.record("accepted 2.0"); return }
        #expect(e.source == .loadGenerator)
        #expect(StompServerSession.errorFrame(message: "no", body: "b")["message"] == "no")
    }
}
