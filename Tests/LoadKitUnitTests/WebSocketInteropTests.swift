import Testing
import Foundation
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Interop with Python `websockets` (an independent implementation): runs by default when the
/// package imports (`.ci/run` installs it and requires it; see ``InteropPeers``).
@Suite(.serialized, .enabled(if: InteropPeers.available(["websockets"]), "Python websockets is not installed (LOADKIT_INTEROP)"))
struct WebSocketInteropTests {
    static let scripts = InteropPeers.scripts.appendingPathComponent("websocket-interop")

    @Test func loadKitClientAgainstPythonServer() async throws {
        try InteropPeers.require(["websockets"])
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.scripts.appendingPathComponent("echo_server.py").path, "0"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        // SIGKILL: the child may inherit a signal mask that blocks SIGTERM.
        defer { kill(p.processIdentifier, SIGKILL) }
        // "READY <port>" (read off the cooperative pool: it blocks until the server is up)
        let line = try await offThePool { () -> Data in
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                line.append(chunk)
            }
            return line
        }
        let words = String(decoding: line, as: UTF8.self).split(separator: " ")
        let port = try #require(words.count == 2 ? Int(words[1].trimmingCharacters(in: .whitespacesAndNewlines)) : nil)

        let ws = try await WebSocketClient.connect("ws://127.0.0.1:\(port)/x?q=1", subprotocols: ["chat"], timeout: .seconds(5))
        #expect(ws.subprotocol == "chat")
        for n in [0, 1, 125, 126, 127, 65535, 65536, 1 << 20] {
            let bin = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ n) }
            try await ws.send(binary: bin)
            #expect(try await ws.receive() == .binary(bin), "binary \(n)")
            let text = String(repeating: "é", count: n / 2) + (n % 2 == 1 ? "a" : "")
            try await ws.send(text: text)
            #expect(try await ws.receive() == .text(text), "text \(n)")
        }
        try await ws.ping([9])
        try await ws.send(text: "close-me")
        do {
            _ = try await ws.receive()
            Issue.record("no close")
        } catch let e as WebSocketError {
            #expect(e.kind == "ws_close_4000")
            #expect(e.closeReason == "TIMEOUT")
        }
        #expect(await onLoop(ws.connection) { $0.lastPongNanos } > 0)
        let info = await ws.waitClosed()
        #expect(info.code == 4000)

        // A second connection closed by us.
        let ws2 = try await WebSocketClient.connect("ws://127.0.0.1:\(port)/", subprotocols: ["chat"], timeout: .seconds(5))
        try await ws2.send(text: "x")
        #expect(try await ws2.receive() == .text("x"))
        let closed = await ws2.close(code: 1000, reason: "done")
        #expect(closed.code == 1000)
    }

    @Test func pythonClientAgainstLoadKitServer() async throws {
        try InteropPeers.require(["websockets"])
        let server = try WSEchoServer()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.scripts.appendingPathComponent("client.py").path, server.url + "/echo"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = try await offThePool {
            let d = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return d
        }
        let text = String(decoding: data, as: UTF8.self)
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(text.contains("OK"))
        try await eventually { server.closeInfos.count == 1 }
        #expect(server.closeInfos.first?.code == 4001)
        #expect(server.closeInfos.first?.reason == "bye")
    }
}
