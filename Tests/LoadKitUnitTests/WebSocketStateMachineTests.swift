import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

@Suite struct WebSocketStateMachineTests {
    @Test func pingIsAnsweredOnlyWhileOpen() {
        var m = WebSocketStateMachine(role: .client)
        #expect(m.receivedPing() == .sendPong)
        _ = m.close(code: 1000, reason: "")
        #expect(m.receivedPing() == .none)
    }

    @Test func weCloseFirstAsClient() {
        var m = WebSocketStateMachine(role: .client, closeTimeout: .seconds(3))
        #expect(m.close(code: 4001, reason: "bye") == .sendClose(code: 4001, reason: "bye", then: .awaitPeer(.seconds(3))))
        #expect(!m.canSend)
        #expect(m.close(code: 1000, reason: "") == .none)  // only once
        // The server echoes; the client waits for the server to close TCP.
        #expect(m.receivedClose(code: 4001, reason: "") == .none)
        let info = m.connectionClosed(transportError: nil)
        #expect(info == WebSocketCloseInfo(code: 4001, reason: "bye", initiatedByPeer: false))
        #expect(m.state == .closed(info))
    }

    @Test func weCloseFirstAsServerDropsTCPOnEcho() {
        var m = WebSocketStateMachine(role: .server)
        _ = m.close(code: 4000, reason: "TIMEOUT")
        #expect(m.receivedClose(code: 4000, reason: "") == .closeConnection)
    }

    @Test func peerClosesFirst() {
        var client = WebSocketStateMachine(role: .client, closeTimeout: .seconds(2))
        #expect(client.receivedClose(code: 1001, reason: "going") == .sendClose(code: 1001, reason: "", then: .awaitPeer(.seconds(2))))
        #expect(client.connectionClosed(transportError: nil) == WebSocketCloseInfo(code: 1001, reason: "going", initiatedByPeer: true))
        var server = WebSocketStateMachine(role: .server)
        // An empty close payload is echoed empty and reported as 1005.
        #expect(server.receivedClose(code: nil, reason: "") == .sendClose(code: nil, reason: "", then: .closeConnection))
        #expect(server.connectionClosed(transportError: nil).code == 1005)
    }

    @Test func timeoutAndAbruptDrop() {
        var m = WebSocketStateMachine(role: .client)
        #expect(m.closeTimerFired() == .none)
        _ = m.close(code: 1000, reason: "")
        #expect(m.closeTimerFired() == .closeConnection)
        var open = WebSocketStateMachine(role: .client)
        let info = open.connectionClosed(transportError: "reset")
        #expect(info.code == 1006)
        #expect(info.initiatedByPeer)
        #expect(info.detail == "reset")
    }

    @Test func violationsSendTheirCodeAndDrop() {
        for (error, code) in [(WebSocketProtocolError.protocolError("x"), UInt16(1002)), (.invalidData("y"), 1007), (.tooBig("z"), 1009)] {
            var m = WebSocketStateMachine(role: .client)
            guard case .sendClose(let c, _, let then) = m.protocolViolation(error) else {
                Issue.record("no close for \(error)"); continue
            }
            #expect(c == code)
            #expect(then == .closeConnection)
            let info = m.connectionClosed(transportError: nil)
            #expect(info.code == code)
            #expect(!info.initiatedByPeer)
            #expect(info.detail != nil)
            // Reported as a server fault with the close code.
            #expect(WebSocketConnection.error(for: info).kind == "ws_close_\(code)")
            #expect(WebSocketConnection.error(for: info).source == .server)
        }
        // A violation while closing just drops TCP.
        var m = WebSocketStateMachine(role: .client)
        _ = m.close(code: 1000, reason: "")
        #expect(m.protocolViolation(.protocolError("late")) == .closeConnection)
    }
}

@Suite struct WebSocketHandshakeTests {
    func response(_ head: String) -> HTTPResponseHead {
        var p = HTTPResponseHeadParser()
        guard case .done(let h, _) = p.parse(Array(head.utf8)) else { fatalError("bad test head") }
        return h
    }

    @Test func clientRequestCarriesEverything() throws {
        let e = try Endpoint("ws://example.test:8080/ws/3?ticket=abc&x=1")
        let r = WebSocketHandshake.clientRequest(endpoint: e, headers: [("Authorization", "Bearer t0k"), ("Origin", "http://o.test"),
                                                                        ("Upgrade", "evil"), ("X-Bad", "a\r\nInjected: 1")],
                                                 subprotocols: ["v12.stomp", "v11.stomp"])
        let text = String(decoding: r.bytes, as: UTF8.self)
        #expect(text.hasPrefix("GET /ws/3?ticket=abc&x=1 HTTP/1.1\r\n"))
        #expect(text.contains("Host: example.test:8080\r\n"))
        #expect(text.contains("Upgrade: websocket\r\n"))
        #expect(!text.contains("evil"))
        #expect(text.contains("Connection: Upgrade\r\n"))
        #expect(text.contains("Sec-WebSocket-Version: 13\r\n"))
        #expect(text.contains("Sec-WebSocket-Key: \(r.key)\r\n"))
        #expect(text.contains("Sec-WebSocket-Protocol: v12.stomp, v11.stomp\r\n"))
        #expect(text.contains("Authorization: Bearer t0k\r\n"))
        #expect(text.contains("Origin: http://o.test\r\n"))
        #expect(!text.contains("\r\nInjected"))
        #expect(text.hasSuffix("\r\n\r\n"))
        #expect(WebSocketHandshakeKeys.isValidKey(r.key))
        // Fresh key each time.
        #expect(WebSocketHandshake.clientRequest(endpoint: e).key != r.key)
    }

    @Test func responseValidation() throws {
        let e = try Endpoint("ws://h/")
        let r = WebSocketHandshake.clientRequest(endpoint: e, subprotocols: ["chat"], key: "dGhlIHNhbXBsZSBub25jZQ==")
        let good = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        #expect(try WebSocketHandshake.validate(response: response(good + "\r\n"), for: r) == nil)
        #expect(try WebSocketHandshake.validate(response: response(good + "Sec-WebSocket-Protocol: chat\r\n\r\n"), for: r) == "chat")
        func kind(_ head: String, body: [UInt8] = []) -> String? {
            do { _ = try WebSocketHandshake.validate(response: response(head), for: r, body: body); return nil } catch { return error.kind }
        }
        #expect(kind(good + "Sec-WebSocket-Protocol: other\r\n\r\n") == "ws_handshake_invalid")
        #expect(kind(good + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n") == "ws_handshake_invalid")
        #expect(kind(good.replacingOccurrences(of: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", with: "x") + "\r\n") == "ws_handshake_invalid")
        #expect(kind(good.replacingOccurrences(of: "Upgrade: WebSocket\r\n", with: "") + "\r\n") == "ws_handshake_invalid")
        #expect(kind(good.replacingOccurrences(of: "keep-alive, Upgrade", with: "keep-alive") + "\r\n") == "ws_handshake_invalid")
        #expect(kind("HTTP/1.1 403 Forbidden\r\nContent-Length: 14\r\n\r\n", body: Array("INVALID_TICKET".utf8)) == "ws_handshake_403")
        do {
            _ = try WebSocketHandshake.validate(response: response("HTTP/1.1 503 Busy\r\n\r\n"), for: r,
                                                body: [UInt8](repeating: UInt8(ascii: "x"), count: 1000))
        } catch {
            #expect(error.message.count < 300)
            #expect(error.source == .server)
        }
    }

    @Test func serverAcceptValidatesRequests() {
        func head(_ s: String) -> HTTPRequestHead {
            var p = HTTPRequestHeadParser()
            guard case .done(let h, _) = p.parse(Array(s.utf8)) else { fatalError("bad test head") }
            return h
        }
        let base = "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        guard case .success(let a) = WebSocketHandshake.accept(head(base + "Sec-WebSocket-Protocol: a, b\r\n\r\n"), supportedSubprotocols: ["b", "a"]) else {
            Issue.record("valid request refused"); return
        }
        let text = String(decoding: a.responseBytes, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        #expect(a.subprotocol == "b")
        func status(_ s: String) -> Int? {
            if case .failure(let r) = WebSocketHandshake.accept(head(s)) { return r.status }
            return nil
        }
        #expect(status(base + "\r\n") == nil)
        #expect(status(base.replacingOccurrences(of: "GET", with: "POST") + "\r\n") == 400)
        #expect(status(base.replacingOccurrences(of: "Version: 13", with: "Version: 8") + "\r\n") == 426)
        #expect(status(base.replacingOccurrences(of: "dGhlIHNhbXBsZSBub25jZQ==", with: "c2hvcnQ=") + "\r\n") == 400)
        #expect(status(base.replacingOccurrences(of: "Upgrade: websocket\r\n", with: "") + "\r\n") == 400)
        #expect(status(base.replacingOccurrences(of: "Connection: Upgrade", with: "Connection: close") + "\r\n") == 400)
    }
}
