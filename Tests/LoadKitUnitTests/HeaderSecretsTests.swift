import Foundation
import Synchronization
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitFixtures
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Credentials a script hands to a client in code (not through settings) are masked in every
/// output when a server echoes them bare: the clients register the values of credential headers
/// (`Authorization` and the credential after its scheme, `Cookie` values, `X-Api-Key`, any name
/// with `token`/`secret`/`api-key`/`password`/`auth`, STOMP `passcode`) before sending them.
/// Every secret is fresh and random, so no earlier test (or setting) has registered it.
@Suite(.serialized) struct HeaderSecretsTests {
    static func fresh(_ label: String) -> String { "\(label)-\(UInt32.random(in: 1_000_000...UInt32.max))" }

    /// Runs `script` once in a burst of one user with reports on; returns the result and every
    /// output text (console summary, Prometheus, each report file).
    static func run(_ name: String, _ script: @escaping @Sendable (VirtualUser) async throws -> Void) async throws
        -> (RunResult, [(channel: String, text: String)]) {
        let root = NSTemporaryDirectory() + "loadkit-\(name)-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let result = try await LoadTest(name, burst: 1)
            .reports(true, root: root).progress(false).exclusive(false)
            .run { user in try? await script(user) }
        return (result, OutputChannels.texts(of: result, reportDirectory: ReportWriter(root: root).directory(for: name)))
    }

    static func expectNowhere(_ secret: String, in outputs: [(channel: String, text: String)],
                              sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(outputs.count >= 7, "\(outputs.map(\.channel))", sourceLocation: sourceLocation)
        let names = outputs.map(\.channel).joined(separator: ", ")
        for file in ["summary.txt", "summary.json", "result.json", "load_test.log", "report.html"] {
            #expect(names.contains(file), "no \(file) among \(names)", sourceLocation: sourceLocation)
        }
        for (channel, text) in outputs {
            #expect(!text.contains(secret), "\(channel) leaked \(secret)", sourceLocation: sourceLocation)
        }
    }

    /// A WebSocket server that accepts, then closes with 4001 and a reason quoting the bare
    /// credential of the `Authorization` header it got (without `Bearer `).
    static func closingServer() throws -> TCPListener {
        try TCPListener { tcp in
            WebSocketServer.accept(tcp) { ws, head in
                let bare = (head.headers["Authorization"] ?? "").split(separator: " ").last.map(String.init) ?? ""
                ws.setCallbacks(onMessage: { _ in })
                ws.closeOnLoop(code: 4001, reason: "bad token \(bare)")
            }
        }
    }

    /// Leak 1: `Authorization: Bearer <token>` passed in code to `WebSocketClient.connect`, echoed
    /// bare in a close reason.
    @Test func webSocketCloseReasonEchoingTheBareTokenLeaksItNowhere() async throws {
        let server = try Self.closingServer()
        defer { server.close() }
        let url = "ws://127.0.0.1:\(server.address.port)/ws"

        // Test output: what Swift Testing records for the error a script throws.
        let token = Self.fresh("s3cret-token")
        let issueTexts = try await OutputChannels.issueTexts("the server closes with the token in the reason") {
            let ws = try await WebSocketClient.connect(url, headers: [("Authorization", "Bearer \(token)")], timeout: .seconds(5))
            _ = try await ws.receive(timeout: .seconds(5))
        }
        #expect(issueTexts.contains { $0.contains("4001") && $0.contains("bad token \(Secrets.mask)") }, "\(issueTexts)")
        for t in issueTexts { #expect(!t.contains(token), "test output leaked the token: \(t)") }

        // A run: console summary, summary.txt/json, result.json, load_test.log, report.html, ….
        let runToken = Self.fresh("s3cret-token")
        let (result, outputs) = try await Self.run("ws-close-echo") { user in
            try await user.measure("ws") {
                let ws = try await WebSocketClient.connect(url, headers: [("Authorization", "Bearer \(runToken)")], timeout: .seconds(5))
                _ = try await ws.receive(timeout: .seconds(5))
            }
        }
        let examples = result.metrics.errors["ws_close_4001"]?.examples ?? []
        #expect(examples.contains { $0.contains("bad token \(Secrets.mask)") }, "\(result.metrics.errors)")
        Self.expectNowhere(runToken, in: outputs)
    }

    /// Leak 2: `X-Api-Key: <key>` passed to `WebSocketClient.connect`, echoed in a 403 body.
    @Test func webSocketHandshake403EchoingTheApiKeyLeaksItNowhere() async throws {
        let server = try TCPListener { tcp in
            WebSocketServer.accept(tcp, authorize: { head in
                WebSocketServer.Refusal(status: 403, body: "forbidden: X-Api-Key: \(head.headers["X-Api-Key"] ?? "")")
            }) { _, _ in }
        }
        defer { server.close() }
        let url = "ws://127.0.0.1:\(server.address.port)/ws"

        let key = Self.fresh("k3y-s3cret-apikey")
        let issueTexts = try await OutputChannels.issueTexts("the server refuses the key and quotes it") {
            _ = try await WebSocketClient.connect(url, headers: [("X-Api-Key", key)], timeout: .seconds(5))
        }
        #expect(issueTexts.contains { $0.contains("403") && $0.contains(Secrets.mask) }, "\(issueTexts)")
        for t in issueTexts { #expect(!t.contains(key), "test output leaked the key: \(t)") }

        let runKey = Self.fresh("k3y-s3cret-apikey")
        let (result, outputs) = try await Self.run("ws-403-echo") { user in
            try await user.measure("ws") {
                _ = try await WebSocketClient.connect(url, headers: [("X-Api-Key", runKey)], timeout: .seconds(5))
            }
        }
        #expect(result.metrics.errors["ws_handshake_403"]?.examples.contains { $0.contains(Secrets.mask) } == true,
                "\(result.metrics.errors)")
        Self.expectNowhere(runKey, in: outputs)
    }

    /// HTTP: credential headers of a request (bare bearer token, API key, cookie value, a
    /// `*-Token` header) echoed in a 401 body that the script quotes in its own failure.
    @Test func httpBodyEchoingTheRequestCredentialsLeaksThemNowhere() async throws {
        var router = Router()
        router.get("/me") { req in
            let h = req.head.headers
            let bare = (h["Authorization"] ?? "").split(separator: " ").last ?? ""
            let cookie = (h["Cookie"] ?? "").split(separator: "=").last ?? ""
            return .text("unauthorized: \(bare) / \(h["X-Api-Key"] ?? "") / \(cookie) / \(h["X-Session-Token"] ?? "")", status: 401)
        }
        let server = try HTTPServer(handler: router.handler)
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/me"
        let client = HTTPClient()
        defer { client.shutdown() }
        @Sendable func call(_ s: [String]) async throws {
            let headers: HTTPHeaders = ["Authorization": "Bearer \(s[0])", "X-Api-Key": s[1], "Cookie": "sid=\(s[2])",
                                        "X-Session-Token": s[3]]
            // 401 expected: the script's own failure (quoting the body) is what the run records.
            let r = try await client.get(url, headers: headers, expecting: [200, 401])
            if r.status != 200 { throw ScriptFailure("GET /me answered \(r.status): \(r.bodyString)") }
        }

        let secrets = ["bearer", "apikey", "cookie", "session"].map { Self.fresh("http-\($0)") }
        let issueTexts = try await OutputChannels.issueTexts("the server echoes the credentials") { try await call(secrets) }
        #expect(issueTexts.contains { $0.contains("unauthorized: \(Secrets.mask) / \(Secrets.mask) / \(Secrets.mask) / \(Secrets.mask)") },
                "\(issueTexts)")
        for t in issueTexts { for s in secrets { #expect(!t.contains(s), "test output leaked \(s): \(t)") } }

        let runSecrets = ["bearer", "apikey", "cookie", "session"].map { Self.fresh("http-run-\($0)") }
        let (result, outputs) = try await Self.run("http-echo") { user in
            try await user.measure("me") { try await call(runSecrets) }
        }
        #expect(result.metrics.errors["assertion"]?.examples.contains { $0.contains("unauthorized: \(Secrets.mask)") } == true,
                "\(result.metrics.errors)")
        for s in runSecrets { Self.expectNowhere(s, in: outputs) }
    }

    /// STOMP: CONNECT headers (`passcode`, an `api-key`) echoed by the broker's ERROR frame, and
    /// the passcode echoed later in text the script quotes.
    @Test func stompErrorEchoingTheConnectCredentialsLeaksThemNowhere() async throws {
        final class Refuser: ConnectionDelegate, @unchecked Sendable {
            var parser = StompFrameParser(peer: .loadGenerator)
            func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
                var frames: [StompFrame] = []
                try? parser.parse(bytes) { frames.append($0) }
                for f in frames where f.command == .connect {
                    let body = "bad key \(f["api-key"] ?? ""), passcode \(f["passcode"] ?? "")"
                    c.write(Array("ERROR\nmessage:refused\ncontent-length:\(body.utf8.count)\n\n\(body)\0".utf8))
                    c.shutdownOutput()
                }
            }
            func connection(_ c: any Transport, didCloseWith error: TransportError?) {}
        }
        let listener = try TCPListener { tcp in tcp.start(delegate: Refuser()) }
        defer { listener.close() }
        @Sendable func connect(_ key: String, _ passcode: String) async throws {
            _ = try await StompClient.connect(tcpHost: "127.0.0.1", port: listener.address.port,
                                              connectHeaders: [("login", "guest"), ("passcode", passcode), ("api-key", key)],
                                              timeout: .seconds(5))
        }

        let key = Self.fresh("stomp-key"), passcode = Self.fresh("stomp-passcode")
        let issueTexts = try await OutputChannels.issueTexts("the broker echoes the credentials") { try await connect(key, passcode) }
        #expect(issueTexts.contains { $0.contains("refused") && $0.contains("bad key \(Secrets.mask)") }, "\(issueTexts)")
        for t in issueTexts { #expect(!t.contains(key) && !t.contains(passcode), "test output leaked a credential: \(t)") }
        // Registered for the rest of the run, not only hidden in this ERROR.
        #expect(Secrets.redact("later: \(passcode)") == "later: \(Secrets.mask)")

        let runKey = Self.fresh("stomp-run-key"), runPasscode = Self.fresh("stomp-run-passcode")
        let (result, outputs) = try await Self.run("stomp-echo") { user in
            try await user.measure("connect") { try await connect(runKey, runPasscode) }
        }
        #expect(result.metrics.errors["stomp_error"]?.examples.contains { $0.contains("bad key \(Secrets.mask)") } == true,
                "\(result.metrics.errors)")
        Self.expectNowhere(runKey, in: outputs)
        Self.expectNowhere(runPasscode, in: outputs)
    }

    /// Which headers are credentials, and which parts of their values are registered.
    @Test func credentialHeaderNamesAndTheirRegisteredParts() {
        for n in ["Authorization", "proxy-authorization", "Cookie", "X-Api-Key", "Api-Key", "apikey", "X-Auth-Token",
                  "X-CSRF-Token", "Client-Secret", "X-Password", "passcode", "X-Amz-Security-Token"] {
            #expect(Secrets.isSecret(n), "\(n)")
        }
        for n in ["Content-Type", "Accept", "User-Agent", "Sec-WebSocket-Key", "Sec-WebSocket-Protocol", "Idempotency-Key",
                  "login", "host", "heart-beat", "Set-Cookie", "X-Request-Id", "Origin"] {
            #expect(!Secrets.isSecret(n), "\(n)")
        }
        let bearer = Self.fresh("unit-bearer"), user = Self.fresh("unit-user"), password = Self.fresh("unit-pass")
        let c1 = Self.fresh("unit-c1"), c2 = Self.fresh("unit-c2"), plain = Self.fresh("unit-plain")
        let basic = Data("\(user):\(password)".utf8).base64EncodedString()
        Secrets.registerHeader("Authorization", "Bearer \(bearer)")
        Secrets.registerHeader("Proxy-Authorization", "Basic \(basic)")
        Secrets.registerHeader("Cookie", "a=\(c1); b=\(c2); c=no")
        Secrets.registerHeader("X-Request-Id", plain)
        Secrets.registerHeader("X-Api-Key", "abcd")   // shorter than Secrets.minimumLength: never registered
        let out = Secrets.redact("\(bearer) \(basic) \(password) \(c1) \(c2) no \(plain) abcd Bearer")
        #expect(out == "**** **** **** **** **** no \(plain) abcd Bearer", "\(out)")
        // The user name of a Basic credential is not a secret.
        #expect(Secrets.redact(user) == user)
    }

    /// HTTP headers register their credentials where they are built (a literal, `add`, `set`),
    /// so a request sent 100,000 times a second pays nothing per send.
    @Test func httpHeadersRegisterCredentialsWhereTheyAreBuilt() {
        let a = Self.fresh("built-literal"), b = Self.fresh("built-add"), c = Self.fresh("built-set"), d = Self.fresh("built-pairs")
        let e = Self.fresh("built-plain")
        var h: HTTPHeaders = ["Authorization": "Token \(a)", "X-Trace": e]
        h.add("X-Api-Key", b)
        h.set("Cookie", "s=\(c)")
        _ = HTTPHeaders([("X-Auth-Token", d)])
        #expect(Secrets.redact("\(a) \(b) \(c) \(d) \(e)") == "**** **** **** **** \(e)")
    }

    /// A browser's preference cookies stay readable (only credential-named cookies and token-shaped
    /// values are registered), and a two-word value of a header that is not `Authorization`-like
    /// is registered whole, not split into ordinary words (reviewer).
    @Test func preferenceCookiesAndOrdinaryWordsAreNotMasked() {
        let sid = Self.fresh("sid"), long = Self.fresh("long-token-value")
        Secrets.registerHeader("Cookie", "theme=light; lang=en-US; consent=accepted; sid=\(sid); x=\(long)")
        #expect(Secrets.redact("request not accepted: light theme, en-US") == "request not accepted: light theme, en-US")
        #expect(Secrets.redact("\(sid) \(long)") == "**** ****")
        Secrets.registerHeader("X-Auth-Mode", "strict mode")
        #expect(Secrets.redact("strict mode is on; mode") == "**** is on; mode")
        #expect(Secrets.redact("the mode") == "the mode")
    }

    /// A token per user, headers rebuilt per request: every user's token is registered, however
    /// many there are (the recognition cache is not a handful of slots that thrash).
    @Test func aTokenPerUserIsRegisteredForEveryUser() {
        let tokens = (0..<50).map { Self.fresh("per-user-\($0)") }
        for _ in 0..<3 {
            for t in tokens { _ = HTTPHeaders([("Authorization", "Bearer \(t)")]) }
        }
        #expect(tokens.allSatisfy { Secrets.redact("got \($0)") == "got ****" })
    }
}
