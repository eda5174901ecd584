import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

@Suite struct HTTPEndpointTests {
    @Test func parsesSchemesPortsPathsAndQueries() throws {
        let a = try Endpoint("http://Example.COM/api/x?y=1#frag")
        #expect(a.scheme == .http && a.host == "example.com" && a.port == 80)
        #expect(a.path == "/api/x" && a.query == "y=1" && a.requestTarget == "/api/x?y=1")
        #expect(a.hostHeader == "example.com" && !a.isTLS)
        let b = try Endpoint("wss://10.0.0.1:9443")
        #expect(b.isTLS && b.port == 9443 && b.path == "/" && b.query == nil && b.hostHeader == "10.0.0.1:9443")
        let c = try Endpoint("https://host")
        #expect(c.port == 443 && c.hostHeader == "host")
        let d = try Endpoint("ws://[::1]:8080/ws?token=abc")
        #expect(d.host == "::1" && d.port == 8080 && d.hostHeader == "[::1]:8080" && d.authority == "[::1]:8080")
        #expect(d.requestTarget == "/ws?token=abc")
        #expect(!d.description.contains("abc"))
        let e = try Endpoint("ws://[fe80::1]/")
        #expect(e.host == "fe80::1" && e.port == 80)
        let f = try Endpoint("HTTP://h:8080?q")
        #expect(f.scheme == .http && f.path == "/" && f.query == "q")
    }

    @Test func bareHostPortUsesDefaultScheme() throws {
        let a = try Endpoint("chat.local:8080", defaultScheme: .ws)
        #expect(a.scheme == .ws && a.host == "chat.local" && a.port == 8080 && a.path == "/")
        let b = try Endpoint("127.0.0.1:61613/stomp", defaultScheme: .ws)
        #expect(b.port == 61613 && b.path == "/stomp")
        let c = try Endpoint("localhost")
        #expect(c.scheme == .http && c.port == 80)
    }

    @Test(arguments: ["", "ftp://x", "http://", "http://:80/", "http://h:0", "http://h:65536", "http://h:8o",
                      "http://[::1", "http://[zz]/", "http://user:secret@h/", "http://h/a b", "http://ho st/",
                      "http://h:123456"])
    func rejectsBadURLsWithClassifiedError(_ input: String) {
        do {
            _ = try Endpoint(input)
            Issue.record("accepted \(input)")
        } catch {
            #expect(error.kind == "bad_url")
            #expect(error.source == .script, "a malformed URL is the script's mistake")
            #expect(!error.description.contains("secret"))
        }
    }

    /// The held-out user's malformed URLs: each is `bad_url`, blamed on the script that wrote it
    /// (not on the load generator), whether a WebSocket or an HTTP client was given it.
    @Test func malformedURLsAreTheScriptsMistakeInEveryClient() async throws {
        for url in ["ws://127.0.0.1:99999/x", "ftp://host/", "ws://", "ws:///x", "ws//127.0.0.1:8765/echo"] {
            do {
                _ = try await WebSocketClient.connect(url, timeout: .seconds(2))
                Issue.record("connected to \(url)")
            } catch {
                #expect(error.loadKitKind == "bad_url", "\(url): \(error)")
                #expect(error.loadKitSource == .script, "\(url): \(error)")
            }
        }
        let client = HTTPClient()
        defer { client.shutdown() }
        for url in ["htp://x", "http://127.0.0.1:99999/", "http://", "http//127.0.0.1:8080/"] {
            do {
                _ = try await client.get(url, timeout: .seconds(2))
                Issue.record("fetched \(url)")
            } catch {
                #expect(error.loadKitKind == "bad_url", "\(url): \(error)")
                #expect(error.loadKitSource == .script, "\(url): \(error)")
            }
        }
    }

    /// `ws//host:port/path` (the colon forgotten) would otherwise be host `ws` with path
    /// `//host:port/path`, and fail only after a DNS lookup as "cannot resolve host 'ws'".
    @Test(arguments: ["ws//127.0.0.1:8765/echo", "WSS//chat.example.com/ws", "http//localhost:8080/api",
                      "https//example.com", "ws//", "wss://host/a"])
    func aSchemeWithoutItsColonIsNamedAtOnce(_ input: String) {
        do {
            let e = try Endpoint(input, defaultScheme: .ws)
            #expect(input == "wss://host/a", "accepted \(input) as host '\(e.host)', path '\(e.path)'")
        } catch {
            #expect(input != "wss://host/a", "\(error)")
            #expect(error.kind == "bad_url" && error.source == .script)
            let scheme = input.prefix { $0 != "/" }.lowercased()
            #expect(error.description.contains("missing ':' after the scheme '\(scheme)'?"), "\(error)")
        }
    }

    @Test func hostsThatMerelyStartWithASchemeNameStillParse() throws {
        // Only a scheme name directly followed by `//` is the forgotten colon.
        let a = try Endpoint("ws:8080//x", defaultScheme: .ws)
        #expect(a.host == "ws" && a.port == 8080 && a.path == "//x")
        let b = try Endpoint("wss.example.com/ws", defaultScheme: .ws)
        #expect(b.host == "wss.example.com" && b.path == "/ws")
        let c = try Endpoint("http://ws//x")
        #expect(c.host == "ws" && c.path == "//x")
        let d = try Endpoint("https-gateway/x")
        #expect(d.host == "https-gateway")
    }

    @Test func headersAreOrderedAndCaseInsensitive() {
        var h: HTTPHeaders = ["Content-Type": "text/plain", "Set-Cookie": "a=1"]
        h.add("set-cookie", "b=2")
        #expect(h["content-type"] == "text/plain")
        #expect(h["CONTENT-TYPE"] == "text/plain")
        #expect(h.values(for: "SET-COOKIE") == ["a=1", "b=2"])
        #expect(h["Content-Typf"] == nil)
        h.set("Set-Cookie", "c=3")
        #expect(h.values(for: "set-cookie") == ["c=3"])
        h.add("Connection", "keep-alive, Upgrade")
        #expect(h.containsToken("upgrade", in: "connection"))
        #expect(!h.containsToken("close", in: "connection"))
        h.remove("connection")
        #expect(h.count == 2)
        #expect(!asciiCaseInsensitiveEquals("a[", "A{"))
    }
}
