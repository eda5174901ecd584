import Testing
@testable import LoadKit

/// The chat workers of a run share one object built from their configuration (the WebSocket URL,
/// the STOMP configuration, headers, topics) while `sharesWorkerSettings(with:)` says the
/// configuration is unchanged. A field a worker reads but the comparison skips would let a later
/// test's workers connect with an earlier test's URL or credentials: each such field, changed
/// alone on a copy (same `runTag`, as two runs of one configuration have), must break the match.
@Suite struct ChatWorkerSettingsTests {
    private func base() throws -> StompChatConfiguration {
        try StompChatConfiguration(settings: Settings(["SERVER_URL": "127.0.0.1:8080", "TOKEN": "t0", "EMAIL": "", "ROOM_ID": "1"]))
    }

    @Test func aCopyMatchesItself() throws {
        let a = try base()
        // Booleans first: a failed expectation would print the configurations, token included.
        let itself = a.sharesWorkerSettings(with: a)
        #expect(itself)
        var b = a
        b.email = "someone@example.com"   // read by the set-up only, not by a worker
        let setUpOnly = a.sharesWorkerSettings(with: b)
        #expect(setUpOnly)
    }

    @Test func everyFieldAWorkerReadsBreaksTheMatch() throws {
        let a = try base()
        let changes: [(String, (inout StompChatConfiguration) -> Void)] = [
            ("host", { $0.host = "127.0.0.2" }),
            ("port", { $0.port += 1 }),
            ("secure", { $0.secure.toggle() }),
            ("webSocketPath", { $0.webSocketPath += "x" }),
            ("subprotocols", { $0.subprotocols += ["v9.stomp"] }),
            ("webSocketHeaders", { $0.webSocketHeaders += [("X-Extra", "1")] }),
            ("token", { $0.token = "t1" }),
            ("authHeader", { $0.authHeader = "X-Token" }),
            ("authScheme", { $0.authScheme = "Token" }),
            ("authIn", { $0.authIn = $0.authIn == .both ? .connect : .both }),
            ("roomIds", { $0.roomIds = ["2"] }),
            ("subscribeDestination", { $0.subscribeDestination += "x" }),
            ("publishDestination", { $0.publishDestination += "x" }),
            ("stompHost", { $0.stompHost = "other-vhost" }),
            ("connectHeaders", { $0.connectHeaders += [("X-Extra", "1")] }),
            ("heartBeat", { $0.heartBeat = (.seconds(3), .seconds(4)) }),
            ("subscribeReceipt", { $0.subscribeReceipt.toggle() }),
            ("contentType", { $0.contentType = "text/plain" }),
            ("messageTemplate", { $0.messageTemplate += " " }),
            ("messageInterval", { $0.messageInterval += .milliseconds(1) }),
            ("messageTimeout", { $0.messageTimeout += .milliseconds(1) }),
            ("connectTimeout", { $0.connectTimeout += .milliseconds(1) }),
            ("drainAtStop", { $0.drainAtStop += .milliseconds(1) }),
            ("reconnect", { $0.reconnect = $0.reconnect == nil ? Backoff() : nil }),
            ("runTag", { $0.runTag += "x" }),
        ]
        for (field, change) in changes {
            var b = a
            change(&b)
            let shared = a.sharesWorkerSettings(with: b)
            #expect(!shared, "changing \(field) alone still shares the worker settings")
        }
    }
}
