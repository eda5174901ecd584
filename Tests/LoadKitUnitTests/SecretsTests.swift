import Foundation
import Testing
@testable import LoadKit

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
