import Foundation
import Testing
import LoadKit
import LoadKitFixtures

/// Issue 13: a server that echoes the credentials it got in a 401 page must not put them in any
/// output. The chat set-up's room creation meets a fixture that echoes the `Authorization` header
/// and the bare token; the token is opaque (no JWT shape), so only the registered secret values
/// can catch its bare echo.
@Suite(.serialized) struct StompChatSecretsTests {
    @Test func roomCreationEchoingTheTokenLeaksItNowhere() async throws {
        var o = FixtureOptions()
        o.faults.echoCredentialsPaths = ["/api/v1/chat/rooms/group"]
        let fixture = try await StompChatFixture.start(o)
        let root = StompChatLoadTests.reportRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let token = "opaque-chat-token-\(UInt32.random(in: 1_000_000...UInt32.max))"
        let settings = StompChatLoadTests.settings(fixture, ["TOKEN": token, "EMAIL": "", "CREATE_NEW_ROOM": "true", "MEMBER_IDS": "1"])
        let chat = try StompChatConfiguration(settings: settings)

        // Test output: what Swift Testing records for the error the set-up throws.
        let issueTexts = try await OutputChannels.issueTexts("the echoing fixture refuses the room creation") {
            _ = try await chat.prepared()
        }
        #expect(issueTexts.contains { $0.contains("HTTP 401") && $0.contains(Secrets.mask) }, "\(issueTexts)")
        for t in issueTexts { #expect(!t.contains(token), "test output leaked the token: \(t)") }

        // Reports, summary, log, Prometheus: the same failure recorded by a run.
        let result = try await LoadTest("stomp-secret-echo", burst: 2)
            .settings(settings).reports(true, root: root).progress(false).exclusive(false)
            .run { user in _ = try? await user.measure("setup") { try await chat.prepared() } }
        await fixture.stop()
        let examples = result.metrics.errors["room_create_failed"]?.examples ?? []
        #expect(examples.contains { $0.contains("HTTP 401") && $0.contains("request headers") }, "\(examples)")
        let outputs = OutputChannels.texts(of: result, reportDirectory: ReportWriter(root: root).directory(for: "stomp-secret-echo"))
        #expect(outputs.count >= 7, "\(outputs.map(\.channel))")
        for (channel, text) in outputs { #expect(!text.contains(token), "\(channel) leaked the token") }
    }
}
