import Testing
import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// STOMP interop with independent implementations. By default (when the Python packages import;
/// `.ci/run` installs and requires them, see ``InteropPeers``): our client against coilmq, which
/// the test starts, and stomp.py against our server role over TCP and WebSocket. Also against a
/// broker you name: `STOMP_INTEROP_TCP=host:port` (`STOMP_INTEROP_VHOST` for its virtual host)
/// and/or `STOMP_INTEROP_WS=ws://host:port/path` (RabbitMQ, ActiveMQ).
@Suite(.serialized)
struct StompInteropTests {
    static let env = ProcessInfo.processInfo.environment

    private func roundTrip(_ c: StompClient) async throws {
        let inbox = StompInbox()
        let topic = "/topic/loadkit-interop-\(UInt32.random(in: 0...UInt32.max))"
        _ = try await c.subscribe(destination: topic, receipt: true) { inbox.add($0) }
        try await c.send(destination: topic, body: Array("hello: interop\nline".utf8), contentType: "text/plain",
                         headers: [("x-escaped", "a:b\\c")], receipt: true)
        c.send(destination: topic, text: "second")
        #expect(await inbox.wait(for: 2) == ["hello: interop\nline", "second"])
        await c.disconnect()
        #expect(await c.waitClosed() == nil)
    }

    @Test(.enabled(if: env["STOMP_INTEROP_TCP"] != nil))
    func independentBrokerOverTCP() async throws {
        let parts = Self.env["STOMP_INTEROP_TCP"]!.split(separator: ":")
        let c = try await StompClient.connect(tcpHost: String(parts[0]), port: Int(parts[1])!, connectHeaders: [("login", "guest"), ("passcode", "guest")],
                                              vhost: Self.env["STOMP_INTEROP_VHOST"] ?? ProcessInfo.processInfo.hostName,
                                              heartBeat: (.seconds(1), .seconds(1)), timeout: .seconds(5))
        try await roundTrip(c)
    }

    @Test(.enabled(if: env["STOMP_INTEROP_WS"] != nil))
    func independentBrokerOverWebSocket() async throws {
        let c = try await StompClient.connect(webSocket: Self.env["STOMP_INTEROP_WS"]!, connectHeaders: [("login", "guest"), ("passcode", "guest")],
                                              heartBeat: (.seconds(1), .seconds(1)), timeout: .seconds(5))
        try await roundTrip(c)
    }

    /// Our client against coilmq (PyPI), started here on a loopback port it picks. coilmq accepts only
    /// its own fully qualified name as the virtual host, which Python tells.
    ///
    /// Our client sends coilmq no heart-beats (`send: .zero`): coilmq 1.1.0's `FrameBuffer` stops
    /// parsing at an EOL between frames — a STOMP 1.2 heart-beat — (`parse_headers` raises
    /// `EmptyBuffer` without consuming it, so every later frame on that connection is ignored).
    /// With `(1 s, 1 s)` our client beats after 500 ms of idleness, which under load (a busy
    /// process delaying the test's task) fell between CONNECTED and SUBSCRIBE, and coilmq never
    /// sent the RECEIPT. We still ask for coilmq's beats (1 s), and idle 1.2 s before the round
    /// trip so at least one arrives between frames: with our beats on, that pause alone fails
    /// this test every time (RECEIPT r-1 not received within 10 s).
    @Test(.enabled(if: InteropPeers.available(["coilmq"]), "coilmq is not installed (LOADKIT_INTEROP)"))
    func loadKitClientAgainstCoilmq() async throws {
        try InteropPeers.require(["coilmq"])
        // coilmq binds a port of its choosing and logs it (a port we freed for it could be taken by
        // another test's listener before coilmq bound it, and we would talk to that).
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import sys; from coilmq.start import main; sys.argv = ['coilmq', '-b', '127.0.0.1', '-p', '0']; main()"]
        let log = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = log
        try p.run()
        defer { kill(p.processIdentifier, SIGKILL) }
        // "… Stomp server listening on 127.0.0.1:<port>", logged once it listens (read off the
        // cooperative pool: it blocks until then); the rest of its log is drained on that thread.
        let listening = try await offThePool { () -> String in
            var text = ""
            while !text.contains("listening on 127.0.0.1:") || !text.hasSuffix("\n") {
                let chunk = log.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            Thread { while !log.fileHandleForReading.availableData.isEmpty {} }.start()
            return text
        }
        let port = try #require(listening.split(separator: "listening on 127.0.0.1:").last
            .flatMap { Int($0.prefix { $0.isNumber }) }, "coilmq did not say where it listens: \(listening)")
        let vhost = try await offThePool { InteropPeers.run(["python3", "-c", "import socket; print(socket.getfqdn())"]) }.output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let c = try await StompClient.connect(tcpHost: "127.0.0.1", port: port, connectHeaders: [("login", "guest"), ("passcode", "guest")],
                                              vhost: vhost, heartBeat: (send: .zero, receive: .seconds(1)), timeout: .seconds(5))
        #expect(c.heartBeat.sendEveryMillis == 0 && c.heartBeat.expectReceiveEveryMillis == 1000, "\(c.heartBeat)")
        try await Task.sleep(for: .milliseconds(1200))
        try await roundTrip(c)
    }

    /// stomp.py (PyPI) against our server role, over TCP and over WebSocket.
    @Test(.enabled(if: InteropPeers.available(["stomp"]), "stomp.py is not installed (LOADKIT_INTEROP)"), arguments: [false, true])
    func stompPyClientAgainstLoadKitServer(webSocket: Bool) async throws {
        try InteropPeers.require(["stomp"])
        let broker = try StompTestBroker(webSocket: webSocket)
        defer { broker.close() }
        let script = InteropPeers.scripts.appendingPathComponent("stomp-interop/client.py").path
        let a = broker.address
        let args = webSocket ? ["python3", script, "ws", a.host, "\(a.port)", "/stomp"] : ["python3", script, "tcp", a.host, "\(a.port)"]
        let (status, output) = try await InteropPeers.runDetached(args)
        #expect(status == 0, "\(output)")
        #expect(output.contains("OK"), "\(output)")
        #expect(broker.state.withLock { $0.disconnects } == 1, "stomp.py sent DISCONNECT")
    }

    /// With the peers required (`LOADKIT_INTEROP=1`, as in CI), a missing one is a failure that
    /// says what to install, not a skip.
    @Test func aMissingPeerIsAClearError() {
        let e = #expect(throws: ScriptFailure.self) { try InteropPeers.require(["loadkit_no_such_module"]) }
        #expect(e?.description.contains("loadkit_no_such_module") == true && e?.description.contains("pip install") == true)
    }

    /// Serves the test broker (server-role codec) on `STOMP_INTEROP_SERVE_PORT` for
    /// `STOMP_INTEROP_SERVE_SECONDS` (default 20) so an independent client (stomp.py) can be run
    /// against it; `STOMP_INTEROP_SERVE_WS=1` serves STOMP over WebSocket at `/stomp` instead.
    @Test(.enabled(if: env["STOMP_INTEROP_SERVE_PORT"] != nil))
    func serveForIndependentClients() async throws {
        let broker = try StompTestBroker(webSocket: Self.env["STOMP_INTEROP_SERVE_WS"] == "1",
                                         port: Int(Self.env["STOMP_INTEROP_SERVE_PORT"]!)!)
        defer { broker.close() }
        try await Task.sleep(for: .seconds(Int(Self.env["STOMP_INTEROP_SERVE_SECONDS"] ?? "") ?? 20))
    }
}
