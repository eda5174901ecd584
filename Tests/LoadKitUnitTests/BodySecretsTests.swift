import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitFixtures
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Credentials a script puts in a request *body* (a login's JSON, a form) are masked in every
/// output when a server echoes them in free text: the client registers the values of
/// credential-named fields before sending, as it does for credential headers and query
/// parameters. A held-out user's `client.post(url, json: ["user": u, "password": p])` against a
/// server answering 401 `{"detail": "password p is wrong for user000", …}` printed the password
/// in the console, the summary files, result.json, the log and report.html.
/// Every secret is fresh and random, so no earlier test (or setting) has registered it.
@Suite struct BodySecretsTests {
    static func fresh(_ label: String) -> String { "\(label)-\(UInt32.random(in: 1_000_000...UInt32.max))" }

    /// The string values of a JSON document (at any depth) or of a form, decoded, in order.
    static func values(of request: HTTPServerRequest) -> [String] {
        if (request.headers["Content-Type"] ?? "").contains("x-www-form-urlencoded") {
            return request.bodyString.split(separator: "&").map { pair in
                percentDecode(pair.split(separator: "=", maxSplits: 1).last ?? "")
            }
        }
        func walk(_ v: Any) -> [String] {
            if let s = v as? String { return [s] }
            if let d = v as? [String: Any] { return d.keys.sorted().flatMap { walk(d[$0]!) } }
            if let a = v as? [Any] { return a.flatMap(walk) }
            return []
        }
        return (try? JSONSerialization.jsonObject(with: Data(request.body))).map(walk) ?? []
    }

    /// A login that refuses every credential and quotes it in free text: `/login` as the user's
    /// Python API did (401, the password in `detail` and in its own field); `/echo/<status>`
    /// answers `<status>` quoting every string value of the body, decoded.
    static func server() throws -> HTTPServer {
        try HTTPServer { request in
            if request.path == "/login" {
                let body = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: String] ?? [:]
                let pw = body["password"] ?? "", user = body["user"] ?? ""
                return .text(#"{"detail": "password \#(pw) is wrong for \#(user)", "password": "\#(pw)"}"#, status: 401)
            }
            let status = Int(request.path.split(separator: "/").last ?? "") ?? 400
            return .text("refused: " + values(of: request).joined(separator: " "), status: status)
        }
    }

    /// The user's script, word for word: `post(json:)` with a password nobody registered.
    @Test func aPasswordInAJSONBodyEchoedInFreeTextLeaksItNowhere() async throws {
        let server = try Self.server()
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/login"
        let client = HTTPClient()
        defer { client.shutdown() }

        // Test output: a script quoting the refusal in its own failure.
        let password = Self.fresh("Unregistered-Wr0ng-Pass")
        let issueTexts = try await OutputChannels.issueTexts("the server echoes the password") {
            let r = try await client.post(url, json: ["user": "user000", "password": password])
            throw ScriptFailure("login answered \(r.status): \(r.bodyString)")
        }
        #expect(issueTexts.contains { $0.contains("password \(Secrets.mask) is wrong for user000") }, "\(issueTexts)")
        for t in issueTexts { #expect(!t.contains(password), "test output leaked the password: \(t)") }

        // A run: the 401 is counted as `http_401` with the body quoted.
        let runPassword = Self.fresh("Unregistered-Wr0ng-Pass")
        let (result, outputs) = try await HeaderSecretsTests.run("body-json-echo") { _ in
            try await client.post(url, json: ["user": "user000", "password": runPassword])
        }
        let examples = result.metrics.errors["http_401"]?.examples ?? []
        #expect(examples.contains { $0.contains("password \(Secrets.mask) is wrong for user000") }, "\(result.metrics.errors)")
        HeaderSecretsTests.expectNowhere(runPassword, in: outputs)
    }

    /// JSON under any `json` content type, at any depth, with escapes in keys and values; forms
    /// with `%`-escapes and `+`; `execute` and `send` as well as `post`. Fields that are not
    /// credentials (`user`, `author`, `page_token`) stay readable.
    @Test func credentialFieldsOfJSONAndFormBodiesLeakNowhere() async throws {
        let server = try Self.server()
        defer { server.stop() }
        let base = "http://127.0.0.1:\(server.port)/echo"
        let client = HTTPClient()
        defer { client.shutdown() }
        let json: HTTPHeaders = ["Content-Type": "application/vnd.api+json; charset=utf-8"]
        let form: HTTPHeaders = ["Content-Type": "application/x-www-form-urlencoded"]

        /// The requests, each answered with its own status (a run keeps examples per kind): the
        /// secrets each one carries and the words of its body that must stay readable.
        typealias Request = (secrets: [String], readable: [String], send: @Sendable () async throws -> HTTPResponse)
        @Sendable func requests(_ tag: String) -> [Request] {
            let current = Self.fresh("\(tag)-current"), new = Self.fresh("\(tag)-new")
            let clientSecret = Self.fresh("\(tag)-client-secret")
            let quoted = Self.fresh("\(tag)-q\"uo\\te")                  // `"` and `\` in the password
            let formPassword = Self.fresh("\(tag)-f!rm pass")              // sent as %21 and +
            let putSecret = Self.fresh("\(tag)-put-secret")
            let escapedQuoted = quoted.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            let nested = #"{"data":{"attributes":{"currentPassword":"\#(current)","author":"tolkienwriter"}},"#
                + #""items":[{"new_password":"\#(new)"}]}"#
            let escaped = #"{"note":"say \"password\": not-a-secret","pass\u0077ord":"\#(escapedQuoted)"}"#
            let formBody = "user=user000&pass%77ord=" + formPassword.replacingOccurrences(of: "!", with: "%21")
                .replacingOccurrences(of: " ", with: "+") + "&page_token=readable-page"
            return [
                ([current, new], ["refused: tolkienwriter \(Secrets.mask) \(Secrets.mask)"],
                 { try await client.post(base + "/403", body: Array(nested.utf8), headers: json) }),
                ([quoted], [#"refused: say "password": not-a-secret \#(Secrets.mask)"#],
                 { try await client.post(base + "/422", body: Array(escaped.utf8), headers: json) }),
                ([formPassword], ["refused: user000 \(Secrets.mask) readable-page"],
                 { try await client.post(base + "/400", body: Array(formBody.utf8), headers: form) }),
                ([clientSecret], ["refused: \(Secrets.mask)"],
                 { try await client.execute(HTTPRequest(method: .POST, url: base + "/409", headers: form,
                                                        body: Array("client_secret=\(clientSecret)".utf8))) }),
                ([putSecret], ["refused: \(Secrets.mask)"],
                 { try await client.send(.PUT, base + "/401", body: Array(#"{"user":{"secret":"\#(putSecret)"}}"#.utf8),
                                         headers: ["Content-Type": "application/json"]) }),
            ]
        }

        for (secrets, readable, send) in requests("issue") {
            let issueTexts = try await OutputChannels.issueTexts("the server echoes the body's credentials") {
                let r = try await send()
                throw ScriptFailure("answered \(r.status): \(r.bodyString)")
            }
            for r in readable { #expect(issueTexts.contains { $0.contains(r) }, "\(issueTexts)") }
            for t in issueTexts { for s in secrets { #expect(!t.contains(s), "test output leaked \(s): \(t)") } }
        }

        let run = requests("run")
        let (result, outputs) = try await HeaderSecretsTests.run("body-form-echo") { _ in
            for request in run { _ = try await request.send() }
        }
        let examples = result.metrics.errors.values.flatMap(\.examples)
        for request in run {
            for r in request.readable { #expect(examples.contains { $0.hasSuffix("body: " + r) }, "\(r) in \(examples)") }
            for s in request.secrets { HeaderSecretsTests.expectNowhere(s, in: outputs) }
        }
    }

    /// One name rule for query parameters and body fields: exact names and credential endings,
    /// normalised (case, `_` and `-` ignored); ordinary fields stay readable.
    @Test func theCredentialNameRule() {
        for n in ["password", "PASSWORD", "new_password", "currentPassword", "old-password", "passwd", "user_passwd",
                  "passcode", "secret", "client_secret", "clientSecret", "api_key", "apiKey", "key", "token",
                  "access_token", "refresh-token", "id_token", "X-Amz-Security-Token", "ticket", "jwt", "session_id", "pwd"] {
            #expect(RequestSecrets.isCredentialName(n), "\(n)")
        }
        for n in ["author", "page_token", "pageToken", "ticketType", "ticket_type", "password_hint", "passwordPolicy",
                  "secretary", "keyword", "monkey", "user", "username", "email", "", "_", String(repeating: "a", count: 200) + "password"] {
            #expect(!RequestSecrets.isCredentialName(n), "\(n)")
        }
        // `key`, `auth` and `ticket` are a credential in a query, ordinary words in a body.
        #expect(RequestSecrets.isCredentialName("key") && !RequestSecrets.isCredentialName("key", inBody: true))
        #expect(RequestSecrets.isCredentialName("ticket") && !RequestSecrets.isCredentialName("ticket", inBody: true))
        #expect(Self.json(#"{"key": "orders", "value": "x", "api_key": "k-secret-1"}"#) == ["k-secret-1"])
        #expect(RequestSecrets.credentialValues(inForm: "key=orders&auth=basic1", inBody: true).isEmpty)
        #expect(RequestSecrets.credentialValues(inForm: "key=abc123&auth=basic1") == ["abc123", "basic1"])
    }

    static func json(_ text: String) -> [String] {
        var b = Array(text.utf8)
        return b.withUnsafeMutableBufferPointer { RequestSecrets.credentialValues(inJSON: UnsafeBufferPointer($0)) }
    }

    /// The JSON scan: members at any depth, escapes in keys and values (both forms of an escaped
    /// value), key-like text inside strings passed by, non-string values passed by, broken text
    /// survived.
    @Test func theJSONScanFindsCredentialMembersAtAnyDepth() {
        #expect(Self.json(#"{"user":"user000","password":"hunter2-pass"}"#) == ["hunter2-pass"])
        #expect(Self.json(#"{ "a" : [ { "b" : { "new_password" : "p1-nested" } }, { "client_secret": "s1-in-array" } ] }"#)
                    == ["p1-nested", "s1-in-array"])
        // Escapes: a quote and a backslash in the value; a key spelt with \u; an escaped quote
        // in a string that looks like a member.
        #expect(Self.json(#"{"note":"say \"password\": \"not-this\"","pass\u0077ord":"a\"b\\c-d"}"#)
                    == [#"a\"b\\c-d"#, #"a"b\c-d"#])
        #expect(Self.json(#"{"secret":"caf\u00e9-\ud83d\ude00-x"}"#) == [#"caf\u00e9-\ud83d\ude00-x"#, "café-😀-x"])
        // Values that are not strings; a credential-named value (not a key); an ordinary key.
        #expect(Self.json(#"{"password":123456,"token":null,"secret":{"x":"inner-value"},"author":"password"}"#).isEmpty)
        #expect(Self.json(#"["password","token-like-value"]"#).isEmpty)
        // Not JSON, or cut short: no crash, no invention.
        for broken in [#"{"password":"unterminated"#, #"{"password":"#, #"""#, "\\", #"{"a\"#, "password=x", ""] {
            _ = Self.json(broken)
        }
        #expect(Self.json(#"{"password":"#).isEmpty)
    }

    /// The form (and query) scan: `%`-escapes and `+` in values and names; both forms registered.
    @Test func theFormScanDecodesEscapesAndPlus() {
        #expect(RequestSecrets.credentialValues(inForm: "user=bob&password=s%21cr+t-1&page_token=abcdef")
                    == ["s%21cr+t-1", "s!cr t-1"])
        #expect(RequestSecrets.credentialValues(inForm: "pass%77ord=plain-value&new%5Fpassword=x%2By&=orphan&token")
                    == ["plain-value", "x%2By", "x+y"])
        #expect(RequestSecrets.credentialValues(inForm: "author=tolkien&ticketType=vip").isEmpty)
    }

    /// Registration follows the request's content type: JSON (any type containing `json`) and
    /// forms are scanned; another type, or a request without a body, registers nothing.
    @Test func onlyJSONAndFormBodiesAreScanned() {
        let a = Self.fresh("ct-json"), b = Self.fresh("ct-form"), c = Self.fresh("ct-text"), d = Self.fresh("ct-none")
        RequestSecrets.registerBody(Array(#"{"password":"\#(a)"}"#.utf8), headers: ["content-type": "Application/JSON"])
        RequestSecrets.registerBody(Array("password=\(b)".utf8), headers: ["Content-Type": "application/x-www-form-urlencoded; charset=utf-8"])
        RequestSecrets.registerBody(Array("password=\(c)".utf8), headers: ["Content-Type": "text/plain"])
        RequestSecrets.registerBody(Array(#"{"password":"\#(d)"}"#.utf8), headers: [:])
        #expect(Secrets.redact("\(a) \(b) \(c) \(d)") == "**** **** \(c) \(d)")
    }
}
