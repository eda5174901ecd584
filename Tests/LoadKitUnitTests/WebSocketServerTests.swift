import Testing
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Collects raw bytes on the loop (a hand-written client).
final class WSRawCollector: ConnectionDelegate, @unchecked Sendable {
    let bytes = Mutex<[UInt8]>([])
    let closed = Mutex(false)
    func connection(_ c: any Transport, didRead b: UnsafeRawBufferPointer) { bytes.withLock { $0.append(contentsOf: b) } }
    func connection(_ c: any Transport, didCloseWith error: TransportError?) { closed.withLock { $0 = true } }
    /// Frames after the 101 head.
    func frames() -> [WebSocketFrame] {
        let all = bytes.withLock { $0 }
        guard let end = all.indices.first(where: { all[$0...].starts(with: [13, 10, 13, 10]) }) else { return [] }
        var p = WebSocketFrameParser(role: .client)
        return (try? p.parse(Array(all[(end + 4)...]))) ?? []
    }
}

@Suite struct WebSocketServerTests {
    func rawClient(port: Int) async throws -> (TCPConnection, WSRawCollector) {
        let tcp = try await TCPConnection.connect(to: SocketAddress(ip: "127.0.0.1", port: port)!, timeout: .seconds(5))
        let c = WSRawCollector()
        tcp.start(delegate: c)
        let e = try Endpoint("ws://127.0.0.1:\(port)/")
        try await tcp.writeAndFlush(WebSocketHandshake.clientRequest(endpoint: e).bytes)
        return (tcp, c)
    }

    @Test func serverRejectsUnmaskedFramesWith1002() async throws {
        let server = try WSEchoServer()
        let (tcp, c) = try await rawClient(port: server.listener.address.port)
        var frame: [UInt8] = []
        WebSocketFrameEncoder.encode(into: &frame, opcode: .text, maskKey: nil, payload: Array("hi".utf8))
        try await tcp.writeAndFlush(frame)
        try await eventually { c.frames().contains { $0.opcode == .close } && c.closed.withLock { $0 } }
        let close = try #require(c.frames().first { $0.opcode == .close })
        #expect(close.header.maskKey == nil)  // servers send unmasked
        #expect(Array(close.payload.prefix(2)) == [0x03, 0xEA])  // 1002
        try await eventually { server.closeInfos.count == 1 }
        #expect(server.closeInfos.first?.code == 1002)
    }

    @Test func serverAnswersPingAndEchoesMaskedFramesSentWithTheRequest() async throws {
        let server = try WSEchoServer()
        // Request, ping and a text frame in one write: the frames behind the head must not be lost.
        let tcp = try await TCPConnection.connect(to: SocketAddress(ip: "127.0.0.1", port: server.listener.address.port)!, timeout: .seconds(5))
        let c = WSRawCollector()
        tcp.start(delegate: c)
        var bytes = WebSocketHandshake.clientRequest(endpoint: try Endpoint("ws://127.0.0.1/")).bytes
        WebSocketFrameEncoder.encode(into: &bytes, opcode: .ping, maskKey: WebSocketMaskKey(9, 8, 7, 6), payload: [1, 2])
        WebSocketFrameEncoder.encode(into: &bytes, opcode: .text, maskKey: WebSocketMaskKey(1, 2, 3, 4), payload: Array("early".utf8))
        try await tcp.writeAndFlush(bytes)
        try await eventually { c.frames().count >= 2 }
        let frames = c.frames()
        #expect(frames.first == WebSocketFrame(opcode: .pong, payload: [1, 2]))
        #expect(frames.dropFirst().first == WebSocketFrame(opcode: .text, payload: Array("early".utf8)))
        tcp.close()
    }

    @Test func idleClientsAreClosedWithCodeAndReason() async throws {
        let opened = Mutex<WebSocketServerConnection?>(nil)
        let listener = try TCPListener { tcp in
            WebSocketServer.accept(tcp) { ws, _ in
                opened.withLock { $0 = ws }
                ws.setCallbacks(onMessage: { _ in })
            }
        }
        defer { listener.close() }
        let ws = try await WebSocketClient.connect("ws://127.0.0.1:\(listener.address.port)/", timeout: .seconds(5))
        try await eventually { opened.withLock { $0 } != nil }
        let server = try #require(opened.withLock { $0 })
        #expect(await onLoop(server) { $0.closeIfIdle(longerThan: .seconds(60), code: 4000, reason: "TIMEOUT") } == false)
        try await Task.sleep(for: .milliseconds(30))
        #expect(await onLoop(server) { $0.closeIfIdle(longerThan: .milliseconds(10), code: 4000, reason: "TIMEOUT") })
        do {
            _ = try await ws.receive()
            Issue.record("no close")
        } catch let e as WebSocketError {
            #expect(e.kind == "ws_close_4000")
            #expect(e.closeReason == "TIMEOUT")
        }
        #expect(await server.waitClosed().code == 4000)
    }

    @Test func upgradeThroughHTTPServerHook() async throws {
        let server = try HTTPServer(port: 0, upgrade: { request in
            guard request.target.contains("ticket=good") else { return nil }
            return WebSocketServer.httpUpgrade(for: request, supportedSubprotocols: ["chat"]) { ws, _ in
                ws.sendOnLoop(text: #"{"type":"CONNECTED"}"#)
                ws.setCallbacks(onMessage: { m in if case .text(let t) = m { ws.sendOnLoop(text: t) } })
            }
        }, handler: { _ in .text("INVALID_TICKET", status: 401) })
        defer { server.stop() }
        let ws = try await WebSocketClient.connect("ws://127.0.0.1:\(server.port)/ws/1?ticket=good", subprotocols: ["chat"],
                                                   timeout: .seconds(5))
        #expect(ws.subprotocol == "chat")
        // The server's first message may arrive together with the 101.
        #expect(try await ws.receive() == .text(#"{"type":"CONNECTED"}"#))
        try await ws.send(text: "echo")
        #expect(try await ws.receive() == .text("echo"))
        #expect(await ws.close().code == 1000)
        do {
            _ = try await WebSocketClient.connect("ws://127.0.0.1:\(server.port)/ws/1?ticket=bad", timeout: .seconds(5))
            Issue.record("bad ticket accepted")
        } catch let e as WebSocketError {
            #expect(e.kind == "ws_handshake_401")
            #expect(e.message.contains("INVALID_TICKET"))
        }
    }

    @Test func rejectionWithKeepAliveChunkedBodyIsReportedPromptly() async throws {
        // 403 with a chunked body on a kept-alive connection: no Content-Length, no close.
        let listener = try TCPListener { tcp in tcp.start(delegate: WSChunkedRejecter()) }
        defer { listener.close() }
        // Without the grace period this would end as `ws_handshake_timeout` after 10 s.
        do {
            _ = try await WebSocketClient.connect("ws://127.0.0.1:\(listener.address.port)/", timeout: .seconds(10))
            Issue.record("rejected handshake succeeded")
        } catch let e as WebSocketError {
            #expect(e.kind == "ws_handshake_403")
            #expect(e.message.contains("INVALID_TICKET"))
        }
    }
}

final class WSChunkedRejecter: ConnectionDelegate, @unchecked Sendable {
    func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        c.write(Array("HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\ne\r\nINVALID_TICKET\r\n0\r\n\r\n".utf8))
    }
    func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
}
