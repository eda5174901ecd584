import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Secrets never reach a report: credential shapes are redacted as errors are recorded, and the
/// values of secret settings are scrubbed from a run's error examples.
@Suite struct SecretsTests {
    @Test func credentialShapesAreRedacted() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
        let text = """
            401 from /ws?ticket=tk-123456&x=1: Authorization: Bearer \(jwt); {"password":"hunter22","ok":1}
            passcode:pw-secret
            """
        let out = Secrets.redactCredentials(text)
        for secret in [jwt, "tk-123456", "hunter22", "pw-secret"] { #expect(!out.contains(secret), "\(secret) leaked: \(out)") }
        #expect(out.contains("ticket=****&x=1"))
        #expect(out.contains("\"ok\":1"))            // the rest of the text is kept
        #expect(Secrets.redactCredentials("connection refused by 127.0.0.1:80") == "connection refused by 127.0.0.1:80")
        // STOMP's header lines are masked as STOMP writes them; an error example whose step is
        // named `login` (`login: <message>`) is not a header line — every error of the README's
        // login step read `login:****` (held-out user).
        #expect(Secrets.redactCredentials("login:alice\npasscode:pw-secret-9") == "login:****\npasscode:****")
        #expect(Secrets.redactCredentials("login: account dave was rejected") == "login: account dave was rejected")
        #expect(Secrets.redactCredentials("Authorization: Digest abc123") == "Authorization:****")
        // A registered value that starts a longer credential does not leave the rest of it shown.
        Secrets.register("Bearer q")
        #expect(Secrets.redact("grant refused for Bearer qrs-0123456789abc") == "grant refused for Bearer ****")
    }

    @Test func recorderRedactsErrorExamples() {
        let r = MetricsRecorder(startNanos: monotonicNanos())
        r.error(ScriptFailure("server said: invalid token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"), step: "login")
        let ex = r.snapshot().errors["assertion"]?.examples ?? []
        #expect(ex.count == 1)
        #expect(ex.allSatisfy { !$0.contains("eyJhbGciOiJIUzI1NiJ9") })
    }

    @Test func secretSettingsAreScrubbedFromRunErrors() async throws {
        let token = "opaque-token-value-42"
        let result = try await LoadTest("secrets", burst: 2)
            .settings(Settings(["TOKEN": token]))
            .reports(false).progress(false).exclusive(false)
            .run { user in
                try user.checkStop()
                throw ScriptFailure("server echoed the credential \(token) back")
            }
        let examples = result.metrics.errors["assertion"]?.examples ?? []
        #expect(!examples.isEmpty)
        #expect(examples.allSatisfy { !$0.contains(token) && $0.contains(Secrets.mask) })
    }
}

/// Issue 13: one redaction (`Secrets.redact`) for every error text, fed by registered secret
/// values (settings, credentials obtained at run time) and credential shapes.
@Suite struct RedactionTests {
    /// A token obtained from a login at run time is masked when a later error quotes it bare (no
    /// shape to recognise it by): the chat set-up registers it before using it.
    @Test func tokenFromALoginIsMaskedWhenEchoedBare() async throws {
        let token = "opaque-login-token-\(UInt32.random(in: 1_000_000...UInt32.max))"
        var router = Router()
        router.post("/api/v1/auth/login") { _ in .text(#"{"accessToken":"\#(token)"}"#) }
        router.post("/api/v1/chat/rooms/group") { req in
            // A 401 page quoting the token it got, without the `Bearer` scheme.
            let auth = req.head.headers["Authorization"] ?? ""
            return .text("unauthorized: \(auth.split(separator: " ").last ?? "") is not a member", status: 401)
        }
        let server = try HTTPServer(handler: router.handler)
        defer { server.stop() }
        let chat = try StompChatConfiguration(settings: Settings([
            "SERVER_URL": "127.0.0.1:\(server.port)", "EMAIL": "a@b.c", "PASSWORD": "pw-\(UInt32.random(in: 100_000...UInt32.max))",
            "CREATE_NEW_ROOM": "true", "MEMBER_IDS": "1"]))
        do {
            _ = try await chat.prepared()
            Issue.record("room creation succeeded against a 401")
        } catch {
            let text = String(describing: error)
            #expect(text.contains("HTTP 401") && text.contains("unauthorized: \(Secrets.mask) is not a member"), "\(text)")
            #expect(!text.contains(token))
        }
    }

    /// Server text is redacted before it is cut: a token straddling the cut leaves no prefix.
    @Test func excerptsRedactBeforeCutting() {
        let secret = "straddling-secret-\(UInt32.random(in: 1_000_000...UInt32.max))"
        Secrets.register(secret)
        let body = String(repeating: "x", count: 190) + " " + secret + " tail"
        let e = Secrets.excerpt(body, limit: 200)
        #expect(!e.contains(String(secret.prefix(6))), "\(e)")
        #expect(e.hasSuffix(Secrets.mask + "…") || e.contains(Secrets.mask), "\(e)")
        #expect(Secrets.excerpt("") == "(empty body)")
        #expect(Secrets.excerpt("a\nb") == "a b")
    }

    /// Keys that configure a credential are not secrets (their values would mask ordinary words);
    /// header values of secret-named headers in `*_HEADERS` settings are registered.
    @Test func secretKeysAndRegisteredSettings() {
        for k in ["TOKEN", "PASSWORD", "STOMP_PASSCODE", "RUNNITY_ADMIN_TOKEN", "CONCERT_AUTH_HEADER", "MY_API_KEY", "Authorization"] {
            #expect(Secrets.isSecret(k), "\(k)")
        }
        for k in ["TOKEN_JSON_PATH", "RUNNITY_TICKET_PARAM", "STOMP_AUTH_IN", "STOMP_AUTH_SCHEME", "STOMP_AUTH_HEADER",
                  "CONCERT_PATH_QUEUE_TOKEN", "LOADKIT_FIXTURE_TICKET_TTL_MS", "SERVER_URL"] {
            #expect(!Secrets.isSecret(k), "\(k)")
        }
        // The report fact `auth` is shown, though the name `auth` is a credential (a header):
        // CredentialRuleTests.theAuthReportFactIsShown.
        #expect(Secrets.masked(["auth": "none"]) == ["auth": "none"])
        let cookie = "cookie-value-\(UInt32.random(in: 1_000_000...UInt32.max))"
        let bearer = "bearer-value-\(UInt32.random(in: 1_000_000...UInt32.max))"
        _ = Settings(["RUNNITY_HEADERS": "X-Trace: visible-trace-id; Cookie: \(cookie)", "CONCERT_AUTH_HEADER": "Authorization: Bearer \(bearer)",
                      "STOMP_AUTH_IN": "connect", "TOKEN_JSON_PATH": "data.accessToken"])
        let out = Secrets.redact("got \(cookie) and \(bearer) for data.accessToken via connect, trace visible-trace-id")
        #expect(out == "got **** and **** for data.accessToken via connect, trace visible-trace-id", "\(out)")
        // Redaction is idempotent, and text without secrets is left alone.
        #expect(Secrets.redact(out) == out)
        #expect(Secrets.redact("connection refused by 127.0.0.1:80 (1000 ms)") == "connection refused by 127.0.0.1:80 (1000 ms)")
    }

    /// Every kit error type renders its description through the redaction.
    @Test func errorDescriptionsAreRedacted() {
        let secret = "described-secret-\(UInt32.random(in: 1_000_000...UInt32.max))"
        Secrets.register(secret)
        let errors: [any Error] = [
            ScriptFailure("server said \(secret)"),
            ConfigError(variable: "ROOM_ID", value: secret, expected: "a room"),
            HTTPError.badURL(input: "http://h/?x=\(secret)", reason: "bad"),
            HTTPError.malformed("header value \(secret)"),
            StompError.serverError(message: secret, bodyPrefix: ""),
            WebSocketError(kind: "ws_close_4001", source: .server, message: "closed with \(secret)"),
        ]
        for e in errors { #expect(!String(describing: e).contains(secret), "\(type(of: e)): \(e)") }
    }
}

/// Issue 13 item 8: the report says which credential kind is used, never `auth=****` (and no value).
@Suite struct AuthFactTests {
    @Test func reportEnvironmentSaysWhatAuthIsUsed() throws {
        let token = "opaque-report-token-\(UInt32.random(in: 1_000_000...UInt32.max))"
        func auth(_ extra: [String: String]) throws -> String {
            try StompChatConfiguration(settings: Settings(["SERVER_URL": "127.0.0.1:1"].merging(extra) { _, n in n })).authDescription
        }
        #expect(try auth([:]) == "none")
        #expect(try auth(["TOKEN": token]) == "token in connect")
        #expect(try auth(["TOKEN": token, "STOMP_AUTH_IN": "handshake"]) == "token in handshake")
        #expect(try auth(["STOMP_LOGIN": "guest", "STOMP_PASSCODE": "guest-pass", "STOMP_AUTH_IN": "none", "TOKEN": token]) == "login/passcode")

        let chat = try StompChatConfiguration(settings: Settings(["SERVER_URL": "127.0.0.1:1", "ROOM_ID": "1"]))
        var env = chat.description
        env["TOKEN"] = token
        let result = RunResult(name: "auth-fact", startedAtMillis: 0, durationSeconds: 1, metrics: MetricsRecorder().snapshot(),
                               plannedPeakUsers: 1, peakActiveUsers: 1, environment: env)
        // The environment is in the full summary (summary.txt); the console one is short.
        let summary = ConsoleSummary.full(result)
        #expect(summary.contains("auth=none"), "\(summary)")
        #expect(!summary.contains("auth=****"))
        #expect(summary.contains("TOKEN=****") && !summary.contains(token))
        let json = String(decoding: JSONSummary.render(result), as: UTF8.self)
        #expect(json.contains(#""auth":"none""#) || json.contains(#""auth" : "none""#), "\(json)")
    }
}

/// The one JSON string writer shared by the scenarios and the fixtures.
@Suite struct JSONQuotingTests {
    @Test func quotedStringsRoundTripThroughJSONSerialization() throws {
        for s in ["plain", "quote \" and \\ backslash", "tab\tnew\nline\r", "\u{01}\u{1f} controls", "한글 ✓"] {
            let data = Data("[\(JSONQuoting.quoted(s))]".utf8)
            let back = try #require(try JSONSerialization.jsonObject(with: data) as? [String])
            #expect(back == [s])
        }
    }
}

/// One rule says whether a name is a credential — a setting, an environment variable, an HTTP,
/// WebSocket or STOMP header, a cookie — and one splitter says which parts of its value are
/// registered. They used to be two of each (settings vs headers) that disagreed; these are the
/// cases where they did, with the behaviour chosen (reviewer).
@Suite(.serialized) struct CredentialRuleTests {
    static func fresh(_ label: String) -> String { "\(label)-\(UInt32.random(in: 1_000_000...UInt32.max))" }

    /// `KEY` is a word, not a substring: `SIGNING_KEY`, `AWS_ACCESS_KEY_ID`, `X-Signing-Key`, `apiKey`
    /// are credentials; `KEYCLOAK_URL` and `MONKEY_COUNT` are not (their values, a URL, a number,
    /// were masked everywhere). The per-request nonces `Sec-WebSocket-Key` and `Idempotency-Key`
    /// and the response header `Set-Cookie` are not credentials whichever way they are spelled;
    /// any other name containing `cookie` or `private` is, and so is a header named `auth`.
    @Test func oneRuleForSettingAndHeaderNames() {
        for n in ["SIGNING_KEY", "AWS_ACCESS_KEY_ID", "X-Signing-Key", "apiKey", "KEY", "SESSION_COOKIE", "X-Session-Cookie",
                  "PRIVATE_KEY", "X-Private-Token", "auth", "Auth", "AUTH", "SET_COOKIE_SECRET"] {
            #expect(Secrets.isSecret(n), "\(n)")
        }
        for n in ["KEYCLOAK_URL", "MONKEY_COUNT", "Sec-WebSocket-Key", "SEC_WEBSOCKET_KEY", "Idempotency-Key", "IDEMPOTENCY_KEY",
                  "Set-Cookie", "SET_COOKIE", "X-Auth-Scheme", "X-Token-Path"] {
            #expect(!Secrets.isSecret(n), "\(n)")
        }
    }

    /// The report's own `auth` fact (the credential *kind*, `none`) is shown and never scrubbed,
    /// though a header named `auth` is a credential.
    @Test func theAuthReportFactIsShown() {
        #expect(Secrets.masked(["auth": "none", "TOKEN": "tok-abcdef"]) == ["auth": "none", "TOKEN": Secrets.mask])
        #expect(Secrets.scrub("none of it", environment: ["auth": "none"]) == "none of it")
        #expect(Secrets.secretValues(["auth": "none"]).isEmpty)
    }

    /// A secret setting's value is split like a credential header's: `Scheme credential` for the
    /// authentication schemes only (a two-word password does not mask its last word alone), the
    /// decoded `Basic` password, a `Name: value` header line, and a cookie list's credential cookies.
    @Test func settingValuesAreSplitLikeHeaderValues() {
        let basicUser = Self.fresh("set-user"), basicPassword = Self.fresh("set-pass")
        let basic = Data("\(basicUser):\(basicPassword)".utf8).base64EncodedString()
        let sid = Self.fresh("sid"), bearer = Self.fresh("set-bearer"), nonce = Self.fresh("set-nonce")
        _ = Settings(["PASSWORD": "correct horse battery staple", "TOKEN": "Basic \(basic)",
                      "SESSION_COOKIE": "theme=light; sid=\(sid)", "CONCERT_AUTH_HEADER": "Authorization: Bearer \(bearer)",
                      "RUNNITY_HEADERS": "Idempotency-Key: \(nonce)"])
        let out = Secrets.redact("\(basicPassword) \(sid) \(bearer) \(nonce) staple light theme")
        #expect(out == "**** **** **** \(nonce) staple light theme", "\(out)")
        #expect(Secrets.redact("correct horse battery staple") == Secrets.mask)
    }

    /// A STOMP session redacts its own CONNECT credentials from an ERROR frame with the same
    /// splitter: the password inside a `Basic` credential too (it only took the last word before).
    @Test func stompSessionRedactsTheBasicPasswordFromAnError() {
        let user = Self.fresh("stomp-user"), password = Self.fresh("stomp-pass")
        let basic = Data("\(user):\(password)".utf8).base64EncodedString()
        var s = StompClientSession(configuration: .init(connectHeaders: [("Authorization", "Basic \(basic)")]))
        _ = s.connectFrame(now: 0)
        let err = StompFrame(.error, headers: [("message", "bad password \(password)")], text: "")
        guard case .failed(let e) = s.received(err, now: 1) else { Issue.record("not failed"); return }
        #expect(e.description.contains("bad password \(Secrets.mask)"), "\(e.description)")
    }
}
