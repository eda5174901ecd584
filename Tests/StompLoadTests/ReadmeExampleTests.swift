import Testing
import LoadKit
import LoadKitFixtures

/// The README's "Writing a load test" example, run as written against the embedded chat fixture
/// (smaller), so the example cannot drift from the API.
@Suite(.serialized) struct ReadmeExampleTests {
    @Test func readmeScenarioRunsAsWritten() async throws {
        let fixture = try await StompChatFixture.start()
        let url = fixture.webSocketURL
        let token = fixture.token(memberId: 1)
        let sla = SLA.all {
            SLA.p95("stomp_connect", below: .seconds(1))
            SLA.errorRate(below: 0.001)
            SLA.connectionsHeld(atLeast: 0.999)
            SLA.count("messages_received", atLeast: 1)
        }
        let result = try await LoadTest("readme-chat") {
            Stage("initial", to: 300, over: .seconds(10))
            Stage("peak", to: 600, over: .seconds(10))
            Stage("final", to: 900, over: .seconds(10))
            Hold(.seconds(10))
        }
        .smoke(users: 10, duration: .seconds(4))
        .scaled(by: Settings([:]), suite: "README")          // the smoke size whatever the environment says
        .connections(perUser: 1, descriptorsEach: 2)
        .reports(false)
        .sla(sla)
        .run { user in
            let stomp = try await user.measure("stomp_connect") {
                try await StompClient.connect(webSocket: url, connectHeaders: [("Authorization", "Bearer \(token)")])
            }
            user.markConnected()
            _ = try await stomp.subscribe(destination: "/sub/chat/room/1") { _ in
                user.count("messages_received")
            }
            try await user.every(.seconds(1)) {
                stomp.send(destination: "/pub/chat/message", text: #"{"roomId":1,"message":"hi"}"#)
                user.count("messages_sent")
            }
            await stomp.disconnect()
        }
        await fixture.stop()
        result.expect(sla)
        #expect((result.metrics.counters["messages_sent"] ?? 0) > 0)
        #expect((result.metrics.counters["messages_received"] ?? 0) >= result.metrics.counters["messages_sent"] ?? 0)
    }
}
