import Testing
import LoadKit
import LoadKitFixtures

@Suite struct StompChatScenarioTests {
    @Test func readsTheSeedVariablesWithTheirDefaults() throws {
        let c = try StompChatConfiguration(settings: Settings(["SERVER_URL": "localhost:8080", "TOKEN": "t0k3n", "ROOM_ID": "100"]))
        #expect(c.host == "localhost" && c.port == 8080 && !c.secure)
        #expect(c.webSocketURL == "ws://localhost:8080/ws-stomp")
        #expect(c.httpBaseURL == "http://localhost:8080")
        #expect(c.roomTopic == "/sub/chat/room/100")
        #expect(c.roomPublishDestination == "/pub/chat/message")
        #expect(c.messageInterval == .milliseconds(1000) && c.messageTimeout == .seconds(30))
        #expect(c.reconnect == nil)
        #expect(c.stompHost == "localhost")
        #expect(c.effectiveConnectHeaders.map { "\($0.0):\($0.1)" } == ["Authorization:Bearer t0k3n"])
        #expect(c.effectiveWebSocketHeaders.isEmpty)
        #expect(c.heartBeat.send == .seconds(10) && c.heartBeat.receive == .seconds(10))
        #expect(!c.description.values.contains { $0.contains("t0k3n") })
    }

    @Test func everythingABrokerNeedsIsSettable() throws {
        let c = try StompChatConfiguration(settings: Settings([
            "SERVER_URL": "wss://mq.example.com:15673", "STOMP_WS_PATH": "ws", "STOMP_HOST": "/",
            "STOMP_SUBSCRIBE_PREFIX": "/exchange/chat/room.{roomId}", "STOMP_PUBLISH_DESTINATION": "/exchange/chat/room.{roomId}",
            "STOMP_CONNECT_HEADERS": "x-tenant: blue; client-id=load", "STOMP_LOGIN": "guest", "STOMP_PASSCODE": "guest",
            "STOMP_AUTH_IN": "handshake", "STOMP_AUTH_SCHEME": "", "TOKEN": "abc", "ROOM_ID": "general",
            "STOMP_HEARTBEAT_MS": "0,5000", "STOMP_SUBPROTOCOLS": "v12.stomp", "STOMP_WS_HEADERS": "Origin: https://app",
            "ENABLE_RECONNECT": "true", "MAX_RECONNECT_ATTEMPTS": "3", "INITIAL_BACKOFF_MS": "200", "MAX_BACKOFF_MS": "1000",
            "MESSAGE_TIMEOUT_MS": "5s", "STOMP_SUBSCRIBE_RECEIPT": "yes",
        ]))
        #expect(c.secure && c.port == 15673 && c.webSocketURL == "wss://mq.example.com:15673/ws")
        #expect(c.roomTopic == "/exchange/chat/room.general" && c.roomPublishDestination == "/exchange/chat/room.general")
        #expect(c.stompHost == "/")
        #expect(c.effectiveConnectHeaders.map { "\($0.0)=\($0.1)" } == ["x-tenant=blue", "client-id=load", "login=guest", "passcode=guest"])
        #expect(c.effectiveWebSocketHeaders.map { "\($0.0)=\($0.1)" } == ["Authorization=abc", "Origin=https://app"])
        #expect(c.heartBeat.send == .zero && c.heartBeat.receive == .seconds(5))
        #expect(c.subprotocols == ["v12.stomp"] && c.subscribeReceipt)
        #expect(c.reconnect == Backoff(initial: .milliseconds(200), maximum: .seconds(1), maxAttempts: 3))
        #expect(c.messageTimeout == .seconds(5))
    }

    /// Issue 13: `SERVER_URL=ws://host:15674/ws` connected to `/ws-stomp` and failed with a 404
    /// that did not say why. A ws/wss URL's path is the WebSocket endpoint; any other path is an
    /// error naming the settings that hold paths.
    @Test func serverURLPathIsTheWebSocketEndpoint() async throws {
        var o = FixtureOptions()
        o.chat.webSocketPath = "/ws"
        let fixture = try await StompChatFixture.start(o)
        let c = try StompChatConfiguration(settings: Settings(["SERVER_URL": "ws://127.0.0.1:\(fixture.port)/ws", "ROOM_ID": "1"]))
        #expect(c.webSocketURL == "ws://127.0.0.1:\(fixture.port)/ws" && c.httpBaseURL == "http://127.0.0.1:\(fixture.port)")
        let client = try await StompClient.connect(webSocket: c.webSocketURL, connectHeaders: fixture.connectHeaders(token: fixture.token()),
                                                   heartBeat: (.zero, .zero), timeout: .seconds(5))
        await client.disconnect()
        await fixture.stop()
        // The same path in STOMP_WS_PATH agrees; a trailing slash is no path.
        #expect(try StompChatConfiguration(settings: Settings(["SERVER_URL": "wss://h:1/ws", "STOMP_WS_PATH": "ws"])).webSocketURL == "wss://h:1/ws")
        #expect(try StompChatConfiguration(settings: Settings(["SERVER_URL": "http://h:1/"])).webSocketURL == "ws://h:1/ws-stomp")
        for (url, wsPath, named) in [("ws://h:1/ws", "/other", "STOMP_WS_PATH"), ("h:1/ws", nil, "SERVER_URL"),
                                     ("http://h:1/api", nil, "SERVER_URL")] as [(String, String?, String)] {
            var v = ["SERVER_URL": url]
            v["STOMP_WS_PATH"] = wsPath
            let e = #expect(throws: ConfigError.self) { try StompChatConfiguration(settings: Settings(v)) }
            #expect(e?.variable == named, "\(url): \(String(describing: e))")
            #expect(e?.description.contains("STOMP_WS_PATH") == true, "\(String(describing: e))")
        }
    }

    @Test func severalRoomsAreDealtRoundRobin() throws {
        let c = try StompChatConfiguration(settings: Settings(["SERVER_URL": "h:1", "ROOM_ID": "7, 8,9"]))
        #expect(c.roomIds == ["7", "8", "9"] && c.roomId == "7")
        #expect((1...4).map { c.room(forWorker: $0) } == ["7", "8", "9", "7"])
        #expect(c.topic(room: "8") == "/sub/chat/room/8")
        #expect(try StompChatConfiguration(settings: Settings(["SERVER_URL": "h:1", "STOMP_ROOMS": "4"])).roomCount == 4)
    }

    @Test func badValuesNameTheVariableButNotSecrets() {
        #expect(throws: ConfigError.self) { try StompChatConfiguration(settings: Settings([:])) }
        for (k, v) in [("SERVER_URL", "ftp://x:1"), ("SERVER_URL", "host:99999"), ("STOMP_HEARTBEAT_MS", "10"),
                       ("STOMP_AUTH_IN", "cookie"), ("STOMP_ROOMS", "0"), ("MESSAGE_INTERVAL_MS", "0"), ("STOMP_MESSAGE_TEMPLATE", "{\"no\":\"id\"}")] {
            var s = ["SERVER_URL": "h:1"]
            s[k] = v
            do {
                _ = try StompChatConfiguration(settings: Settings(s))
                Issue.record("\(k)=\(v) was accepted")
            } catch let e as ConfigError {
                #expect(e.variable == k)
            } catch { Issue.record("unexpected \(error)") }
        }
        do {
            _ = try StompChatConfiguration(settings: Settings(["SERVER_URL": "h:1", "STOMP_CONNECT_HEADERS": "passcode-s3cret"]))
            Issue.record("a header without a separator was accepted")
        } catch {
            #expect(!"\(error)".contains("s3cret"))
        }
    }

    @Test func messageTemplateRendersAndIdsAreFoundInEchoes() throws {
        let t = try MessageTemplate(StompChatConfiguration.defaultMessageTemplate)
        let m = StompEchoMatcher(runTag: "abc", workerId: 7)
        let body = String(decoding: t.render(messageId: m.messageId(seq: 42), roomId: "12", workerId: 7, seq: 42, timestampMillis: 5),
                          as: UTF8.self)
        #expect(body == #"{"type":"TALK","roomId":12,"messageId":"lkabc-7-42","message":"load test lkabc-7-42","sentAt":5}"#)
        let quoted = String(decoding: t.render(messageId: "x", roomId: "a\"b", workerId: 1, seq: 1, timestampMillis: 0), as: UTF8.self)
        #expect(quoted.contains(#""roomId":"a\"b""#))
        // A server that rebuilds the body keeps the text: the id is still found.
        #expect(m.seq(in: Array(#"{"senderId":3,"content":"load test lkabc-7-42","sentAt":1}"#.utf8)) == 42)
        #expect(m.seq(in: Array(#"{"messageId":"lkabc-71-42"}"#.utf8)) == nil, "worker 71 is not worker 7")
        #expect(m.seq(in: Array(#"{"messageId":"lkabd-7-42"}"#.utf8)) == nil, "another run")
        #expect(m.seq(in: Array("lkabc-7-".utf8)) == nil)
    }

    @Test func pendingMessagesMatchOnceAndExpire() {
        var p = StompPendingMessages()
        p.sent(seq: 1, at: 1_000)
        p.sent(seq: 2, at: 2_000)
        p.sent(seq: 3, at: 40_000_000_000)
        #expect(p.echoed(seq: 2, at: 5_000) == 3_000)
        #expect(p.echoed(seq: 2, at: 6_000) == nil, "a duplicate echo is not a second sample")
        #expect(p.expire(now: 30_000_001_000, timeout: .seconds(30)) == [1])
        #expect(p.count == 1)
        #expect(p.removeAll() == 1 && p.count == 0)
    }

    @Test func profilesAndScaleGiveTheSeedsStages() throws {
        let seed000 = StagePlan(StompChatProfile.seed000.stages)
        #expect(seed000.segments.map(\.to) == [300, 600, 900])
        #expect(seed000.totalDuration == .seconds(30))
        let seed001 = StagePlan(try StompChatProfile(settings: Settings(["LOADKIT_STOMP_PROFILE": "seed001"])).stages)
        #expect(seed001.segments.map(\.to) == [1000, 3000, 5000, 10_000])
        #expect(seed001.segments.map { $0.durationNanos / 1_000_000_000 } == [60, 300, 300, 600])
        #expect(throws: ConfigError.self) { try StompChatProfile(settings: Settings(["LOADKIT_STOMP_PROFILE": "big"])) }
        let atSeed = try LoadTest("stomp-chat", stages: StompChatProfile.seed000.stages)
            .scaled(by: Settings(["LOADKIT_SCALE": "seed"]), suite: "STOMP")
        #expect(atSeed.plannedPeakUsers == 900 && atSeed.plannedDuration == .seconds(30))
    }
}
