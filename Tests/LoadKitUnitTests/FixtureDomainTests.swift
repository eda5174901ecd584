import Testing
import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport
@testable import LoadKitFixtures

private func body(_ s: String) -> [UInt8] { Array(s.utf8) }
private func json(_ r: FixtureResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any] ?? [:]
}

@Suite struct FixtureTokenTests {
    @Test func issuedTokenValidatesAndCarriesClaims() {
        let issuer = TokenIssuer(secret: 7)
        let t = issuer.issue(subject: 42, email: "test42@test.com", lifetime: .seconds(60))
        #expect(t.split(separator: ".").count == 3)
        let c = try? issuer.validate("Bearer " + t).get()
        #expect(c?.subject == 42)
        #expect(c?.email == "test42@test.com")
    }

    @Test func forgedExpiredForeignAndMalformedTokensAreRejected() {
        let issuer = TokenIssuer(secret: 7)
        let t = issuer.issue(subject: 1, email: nil, lifetime: .seconds(60))
        // Altered payload: swap in another subject, keep the signature.
        let parts = t.split(separator: ".")
        let forgedPayload = TokenIssuer.base64URL(Array(#"{"sub":"2","iat":1,"exp":99999999999}"#.utf8))
        #expect(issuer.validate("\(parts[0]).\(forgedPayload).\(parts[2])") == .failure(.badSignature))
        #expect(TokenIssuer(secret: 8).validate(t) == .failure(.badSignature))
        #expect(issuer.validate(issuer.issue(subject: 1, email: nil, lifetime: .zero)) == .failure(.expired))
        #expect(issuer.validate("abc") == .failure(.malformed))
        #expect(issuer.validate(nil) == .failure(.missing))
        #expect(issuer.validate(t, nowMillis: wallClockMillis() + 61_000) == .failure(.expired))
    }
}

@Suite struct FixtureJSONTests {
    @Test func scannerFindsTopLevelFieldsOnly() {
        let b = body(#"{"nested":{"roomId":9},"s":"a\"b","roomId": 12 ,"messageId":"m-1","ok":true,"n":null}"#)
        #expect(JSONFieldScanner.find("roomId", in: b) == .number("12"))
        #expect(JSONFieldScanner.find("messageId", in: b) == .string("m-1"))
        #expect(JSONFieldScanner.find("s", in: b) == .string("a\"b"))
        #expect(JSONFieldScanner.find("ok", in: b) == .bool(true))
        #expect(JSONFieldScanner.find("n", in: b) == .null)
        #expect(JSONFieldScanner.find("nested", in: b) == .composite)
        #expect(JSONFieldScanner.find("missing", in: b) == nil)
        #expect(JSONFieldScanner.find("roomId", in: body(#"{"roomId":"#)) == nil)
        #expect(JSONFieldScanner.find("roomId", in: body("not json")) == nil)
    }

    @Test func writerEscapes() {
        var w = JSONObjectWriter()
        w.add("a", "x\"y\n\u{1}")
        w.add("b", 3)
        w.addNull("c")
        let o = (try? JSONSerialization.jsonObject(with: Data(w.text.utf8))) as? [String: Any]
        #expect(o?["a"] as? String == "x\"y\n\u{1}")
        #expect(o?["b"] as? Int == 3)
    }

    @Test func broadcastBodyKeepsClientFieldsVerbatim() {
        let out = chatBroadcastBody(clientBody: body(#" {"roomId":1,"message":"hi","clientMessageId":"w7-3"}"#), senderId: 5, sentAtMillis: 10)
        let o = (try? JSONSerialization.jsonObject(with: Data(out!))) as? [String: Any]
        #expect(o?["clientMessageId"] as? String == "w7-3")
        #expect(o?["senderId"] as? Int == 5)
        #expect(String(decoding: chatBroadcastBody(clientBody: body("{}"), senderId: 1, sentAtMillis: 2)!, as: UTF8.self) == #"{"senderId":1,"sentAt":2}"#)
        #expect(chatBroadcastBody(clientBody: body("[1]"), senderId: 1, sentAtMillis: 2) == nil)
    }

    @Test func latencyModelsParseAndSample() {
        var rng = FixtureRandom(seed: 1)
        #expect(LatencyModel(parsing: "25") == .fixed(.milliseconds(25)))
        #expect(LatencyModel(parsing: "10-40") == .uniform(min: .milliseconds(10), max: .milliseconds(40)))
        #expect(LatencyModel(parsing: "50~10") == .normal(mean: .milliseconds(50), standardDeviation: .milliseconds(10)))
        #expect(LatencyModel(parsing: "x") == nil)
        for hostile in ["inf", "1e30", "nan", "0-inf", "5~1e300"] { #expect(LatencyModel(parsing: hostile) == nil, "\(hostile)") }
        let u = LatencyModel.uniform(min: .milliseconds(10), max: .milliseconds(20))
        for _ in 0..<1000 {
            let v = u.sampleNanos(&rng)
            #expect(v >= 10_000_000 && v <= 20_000_000)
        }
        let n = LatencyModel.normal(mean: .milliseconds(50), standardDeviation: .milliseconds(5))
        let mean = (0..<4000).map { _ in Double(n.sampleNanos(&rng)) }.reduce(0, +) / 4000
        #expect(abs(mean - 50_000_000) < 1_000_000)
    }

    @Test func requestTargetIsParsed() {
        let r = FixtureRequest(method: "post", target: "/api/v1/auth/test-login?memberId=3&x=a%20b", headers: ["Authorization": "Bearer  tok "])
        #expect(r.method == "POST")
        #expect(r.path == "/api/v1/auth/test-login")
        #expect(r.query["memberId"] == "3")
        #expect(r.query["x"] == "a b")
        #expect(r.bearerToken == "tok")
    }
}

/// A subscriber that records deliveries (and checks they run on its own loop).
final class RecordingSubscriber: ChatSubscriber, @unchecked Sendable {
    let loop: EventLoop
    let received = Mutex<[String]>([])
    let offLoop = Atomic<Int>(0)
    init(loop: EventLoop) { self.loop = loop }
    func deliver(_ message: ChatBroadcast, subscriptionId: String, cache: inout [String: [UInt8]]) {
        if !loop.inLoop { offLoop.add(1, ordering: .relaxed) }
        let frame = cache[subscriptionId] ?? { let f = Array("\(subscriptionId):".utf8) + message.body; cache[subscriptionId] = f; return f }()
        received.withLock { $0.append(String(decoding: frame, as: UTF8.self)) }
    }
}

@Suite struct FixtureChatDomainTests {
    @Test func loginAndRoomCreation() throws {
        let api = ChatHTTPAPI(directory: ChatDirectory())
        let bad = api.handle(FixtureRequest(method: "POST", target: "/api/v1/auth/login", body: body(#"{"email":"test@test.com","password":"nope"}"#)))
        #expect(bad?.status == 401)
        #expect(bad?.bodyText.contains("nope") == false)
        let ok = try #require(api.handle(FixtureRequest(method: "POST", target: "/api/v1/auth/login", body: body(#"{"email":"test7@test.com","password":"password123!"}"#))))
        #expect(ok.status == 200)
        let token = try #require(json(ok)["accessToken"] as? String)
        #expect(json(ok)["memberId"] as? Int == 7)
        let noAuth = api.handle(FixtureRequest(method: "POST", target: "/api/v1/chat/rooms/group", body: body(#"{"memberIds":[1,2]}"#)))
        #expect(noAuth?.status == 401)
        let room = try #require(api.handle(FixtureRequest(method: "POST", target: "/api/v1/chat/rooms/group",
                                                           headers: ["Authorization": "Bearer \(token)"], body: body(#"{"roomName":"r","memberIds":"1, 2,3"}"#))))
        #expect(room.status == 201)
        #expect(json(room)["roomId"] as? Int == 2)
        #expect(json(room)["memberIds"] as? [Int] == [1, 2, 3])
        #expect(api.handle(FixtureRequest(method: "GET", target: "/nowhere")) == nil)
    }

    @Test func brokerFansOutOnEachSubscribersLoop() async throws {
        let group = EventLoopGroup(loops: 2, label: "fixture.test")
        let broker = ChatBroker()
        let subs = (0..<10).map { i in RecordingSubscriber(loop: group.loops[i % 2]) }
        for s in subs { broker.subscribe(s, roomId: "1", subscriptionId: "sub-1") }
        broker.subscribe(subs[0], roomId: "1", subscriptionId: "sub-1")  // idempotent
        let other = RecordingSubscriber(loop: group.loops[0])
        broker.subscribe(other, roomId: "2", subscriptionId: "sub-1")
        #expect(broker.subscriberCount(roomId: "1") == 10)
        #expect(broker.publish(roomId: "1", body: body("{\"m\":1}")) == 10)
        broker.unsubscribeAll(subs[9], roomIds: ["1"])
        #expect(broker.publish(roomId: "1", body: body("{\"m\":2}")) == 9)
        // Wait for both loops to run the deliveries.
        for l in group.loops { await withCheckedContinuation { k in l.execute { k.resume() } } }
        for (i, s) in subs.enumerated() {
            #expect(s.received.withLock { $0 } == (i == 9 ? ["sub-1:{\"m\":1}"] : ["sub-1:{\"m\":1}", "sub-1:{\"m\":2}"]))
            #expect(s.offLoop.load(ordering: .relaxed) == 0)
        }
        #expect(other.received.withLock { $0.isEmpty })
    }
}

@Suite struct FixtureRunnityDomainTests {
    func setup(ttl: Duration = .seconds(30)) -> (RunnityHTTPAPI, String) {
        var s = RunnitySettings()
        s.memberCount = 50
        s.ticketTTL = ttl
        let api = RunnityHTTPAPI(state: RunnityState(settings: s), webSocketBase: "ws://127.0.0.1:9")
        let login = api.handle(FixtureRequest(method: "POST", target: "/api/v1/auth/test-login?memberId=3"))!
        let data = json(login)["data"] as? [String: Any]
        return (api, data?["accessToken"] as? String ?? "")
    }

    @Test func fullSetupFlowWithEnvelopes() throws {
        let (api, token) = setup()
        let auth = ["Authorization": "Bearer \(token)"]
        #expect(api.handle(FixtureRequest(method: "POST", target: "/api/v1/auth/test-login?memberId=51"))?.status == 404)
        let created = try #require(api.handle(FixtureRequest(method: "POST", target: "/api/v1/admin/challenges", headers: auth,
            body: body(#"{"title":"부하 테스트용 챌린지","description":"d","maxParticipants":10000,"startAt":"2025-11-21T10:00:00","distance":"FIVE","isPrivate":false,"password":null,"isBroadcast":false}"#))))
        #expect(created.status == 201)
        #expect(json(created)["isSuccess"] as? Bool == true)
        let cid = try #require((json(created)["data"] as? [String: Any])?["challengeId"] as? Int)
        #expect(cid == 101)
        // Not joined yet: enter is refused.
        #expect(api.handle(FixtureRequest(method: "POST", target: "/api/v1/challenges/\(cid)/enter", headers: auth))?.status == 403)
        let joined = try #require(api.handle(FixtureRequest(method: "POST", target: "/api/v1/challenges/\(cid)/join", headers: auth, body: body("{}"))))
        #expect(joined.status == 201)
        #expect((json(joined)["data"] as? [String: Any])?["status"] as? String == "WAITING")
        #expect(api.handle(FixtureRequest(method: "POST", target: "/api/v1/challenges/\(cid)/join", headers: auth))?.status == 409)
        let entered = try #require(api.handle(FixtureRequest(method: "POST", target: "/api/v1/challenges/\(cid)/enter", headers: auth)))
        let data = try #require(json(entered)["data"] as? [String: Any])
        #expect(data["wsUrl"] as? String == "ws://127.0.0.1:9/ws/ws-1")
        #expect(data["expiresIn"] as? Int == 30)
        #expect(data["userId"] as? Int == 3)
        let ticket = try #require(data["ticket"] as? String)
        #expect(api.state.consumeTicket(ticket).map(\.memberId) == .success(3))
        #expect(api.state.consumeTicket(ticket) == .failure(.unknown))  // single use
        // Bad token.
        let unauth = api.handle(FixtureRequest(method: "POST", target: "/api/v1/challenges/100/enter", headers: ["Authorization": "Bearer x.y.z"]))
        #expect(unauth?.status == 401)
        #expect(json(unauth!)["isSuccess"] as? Bool == false)
    }

    @Test func ticketsExpire() throws {
        let (api, _) = setup(ttl: .milliseconds(100))
        let t = try api.state.enter(challengeId: 100, memberId: 4, nowNanos: 1_000).get()
        #expect(api.state.consumeTicket(t.id, nowNanos: 1_000 + 99_000_000).map(\.memberId) == .success(4))
        let t2 = try api.state.enter(challengeId: 100, memberId: 4, nowNanos: 1_000).get()
        #expect(api.state.consumeTicket(t2.id, nowNanos: 1_000 + 100_000_000) == .failure(.expired))
        #expect(api.state.consumeTicket(nil) == .failure(.unknown))
    }

    @Test func socketProtocolAnswersPing() {
        let pong = RunnitySocketProtocol.reply(to: body(#"{"type":"PING","timestamp":1700000000000}"#), nowMillis: 5)
        #expect(pong == #"{"type":"PONG","timestamp":1700000000000,"serverTime":5}"#)
        #expect(RunnitySocketProtocol.reply(to: body("garbage"))?.contains("ERROR") == true)
        #expect(RunnitySocketProtocol.reply(to: body(#"{"type":"PONG"}"#)) == nil)
        let t = RunnityTicket(id: "t", memberId: 2, challengeId: 100, expiresAtNanos: 0)
        #expect(RunnitySocketProtocol.connected(ticket: t, sessionId: "s", serverId: "ws-1", nowMillis: 1).hasPrefix(#"{"type":"CONNECTED""#))
    }
}

@Suite struct FixtureConcertDomainTests {
    func respond(_ api: ConcertHTTPAPI, _ method: String, _ target: String, _ b: String = "", headers: [String: String] = [:]) -> FixtureResponse? {
        let now = monotonicNanos()
        if case .respond(let r, _)? = api.handle(FixtureRequest(method: method, target: target, headers: headers, body: body(b)), firstAttemptNanos: now, nowNanos: now) { return r }
        return nil
    }

    @Test func catalogueReadsAreCached() {
        let api = ConcertHTTPAPI()
        #expect(respond(api, "GET", "/health")?.bodyText == #"{"status":"ok"}"#)
        let first = respond(api, "GET", "/concerts/concert_test_1/schedules")
        #expect(first?.header("X-Cache") == "MISS")
        #expect(respond(api, "GET", "/concerts/concert_test_1/schedules")?.header("x-cache") == "HIT")
        #expect(first?.bodyText.contains("schedule_test_2") == true)
        #expect(respond(api, "GET", "/concerts/nope")?.status == 404)
        #expect(respond(api, "GET", "/schedules/schedule_test_1/seats")?.header("X-Cache") == "MISS")
        _ = respond(api, "POST", "/reservations", #"{"userId":"u1","seatId":"schedule_test_1_seat_1"}"#)
        let seats = respond(api, "GET", "/schedules/schedule_test_1/seats")
        #expect(seats?.header("X-Cache") == "MISS")  // invalidated by the reservation
        #expect(seats?.bodyText.contains("RESERVED") == true)
        #expect(api.cache.stats.hits == 1)
    }

    @Test func concurrentReservationsOfOneSeatGiveOneWinner() async {
        let api = ConcertHTTPAPI()
        let statuses = await withTaskGroup(of: Int.self, returning: [Int].self) { g in
            for i in 0..<200 {
                g.addTask { respond(api, "POST", "/reservations", "{\"userId\":\"u\(i)\",\"scheduleId\":\"schedule_test_2\",\"seatNo\":7}")?.status ?? 0 }
            }
            return await g.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses.filter { $0 == 201 }.count == 1)
        #expect(statuses.filter { $0 == 409 }.count == 199)
        let t = api.state.totals()
        #expect(t.reservedSeats == 1 && t.reservations == 1 && t.conflicts == 199)
        api.reset()
        #expect(respond(api, "POST", "/reservations", #"{"userId":"u","seatId":"schedule_test_2_seat_7"}"#)?.status == 201)
    }

    @Test func busySeatLockRetriesThenTimesOut() {
        var s = ConcertSettings()
        s.lockHold = .milliseconds(50)
        s.lockTimeout = .milliseconds(120)
        let api = ConcertHTTPAPI(settings: s)
        let req = FixtureRequest(method: "POST", target: "/reservations", body: body(#"{"userId":"a","seatId":"schedule_test_1_seat_2"}"#))
        guard case .respond(let r, let delay)? = api.handle(req, firstAttemptNanos: 0, nowNanos: 0) else { Issue.record("no reply"); return }
        #expect(r.status == 201 && delay == 50_000_000)
        guard case .retry(let at)? = api.handle(req, firstAttemptNanos: 10, nowNanos: 10) else { Issue.record("expected retry"); return }
        #expect(at == 50_000_000)
        guard case .respond(let c, _)? = api.handle(req, firstAttemptNanos: 10, nowNanos: at) else { Issue.record("no reply"); return }
        #expect(c.status == 409)
        // A lock that stays busy beyond the time-out answers 500.
        s.lockTimeout = .milliseconds(10)
        let strict = ConcertHTTPAPI(settings: s)
        let a = FixtureRequest(method: "POST", target: "/reservations", body: body(#"{"userId":"a","seatId":"schedule_test_1_seat_3"}"#))
        let b = FixtureRequest(method: "POST", target: "/reservations", body: body(#"{"userId":"b","seatId":"schedule_test_1_seat_3"}"#))
        _ = strict.handle(a, firstAttemptNanos: 0, nowNanos: 0)
        guard case .respond(let e, _)? = strict.handle(b, firstAttemptNanos: 0, nowNanos: 0) else { Issue.record("expected a time-out"); return }
        #expect(e.status == 500)
        #expect(strict.state.totals().lockTimeouts == 1)
    }

    @Test func duplicatePaymentsDeductOnce() async throws {
        let api = ConcertHTTPAPI()
        let res = try #require(respond(api, "POST", "/reservations", #"{"userId":"payer","seatId":"schedule_test_3_seat_1"}"#))
        let rid = try #require(json(res)["reservationId"] as? String)
        let statuses = await withTaskGroup(of: Int.self, returning: [Int].self) { g in
            for _ in 0..<100 {
                g.addTask { respond(api, "POST", "/payments", "{\"userId\":\"payer\",\"reservationId\":\"\(rid)\"}", headers: ["Idempotency-Key": "k-1"])?.status ?? 0 }
            }
            return await g.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses.filter { $0 == 201 }.count == 1)
        #expect(statuses.filter { $0 == 200 }.count == 99)
        #expect(api.state.balance(userId: "payer") == ConcertSettings().initialPoints - 50_000)
        // Another key for the same reservation: already paid.
        #expect(respond(api, "POST", "/payments", "{\"userId\":\"payer\",\"reservationId\":\"\(rid)\"}", headers: ["Idempotency-Key": "k-2"])?.status == 409)
        // Plain amount payments, and insufficient points.
        #expect(respond(api, "POST", "/payments", #"{"userId":"p2","amount":1000}"#, headers: ["Idempotency-Key": "k-3"])?.status == 201)
        #expect(respond(api, "POST", "/payments", #"{"userId":"p3","amount":1000000000001}"#)?.status == 400)
        let totals = try #require(respond(api, "GET", "/admin/totals"))
        #expect(json(totals)["payments"] as? Int == 2)
        #expect(json(totals)["paidAmount"] as? Int == 51_000)
        #expect(json(totals)["pointsDeducted"] as? Int == 51_000)
        #expect(json(totals)["replayedPayments"] as? Int == 99)
        #expect(json(totals)["consistent"] as? Bool == true)
        #expect(respond(api, "POST", "/admin/reset")?.status == 200)
        #expect(api.state.balance(userId: "payer") == ConcertSettings().initialPoints)
    }

    @Test func queueTokens() throws {
        let api = ConcertHTTPAPI()
        let r = try #require(respond(api, "POST", "/queue/token", #"{"userId":"u1"}"#))
        #expect(r.status == 201)
        let token = try #require(json(r)["token"] as? String)
        #expect(respond(api, "GET", "/queue/token/\(token)")?.status == 200)
        #expect(respond(api, "GET", "/queue/token/nope")?.status == 404)
    }
}

@Suite struct FixtureDataTests {
    @Test func dataFilesMatchTheFixtures() throws {
        let csv = try String(contentsOf: FixtureData.runnityMembersCSV, encoding: .utf8).split(separator: "\n")
        #expect(csv.first == "memberId,challengeId")
        #expect(csv.count == 10_001)
        #expect(csv[1] == "1,\(RunnitySettings().preseededChallengeId!)")
        let users = try String(contentsOf: FixtureData.stompUsersCSV, encoding: .utf8).split(separator: "\n")
        let dir = ChatDirectory()
        for line in users.dropFirst().prefix(3) {
            let f = line.split(separator: ",").map(String.init)
            #expect(dir.login(email: f[0], password: f[1])?.memberId == Int(f[2]))
        }
        let o = (try JSONSerialization.jsonObject(with: Data(contentsOf: FixtureData.seedPayloadsJSON))) as? [String: Any]
        #expect((o?["schedules"] as? [Any])?.count == ConcertState.schedules.count)
    }
}
