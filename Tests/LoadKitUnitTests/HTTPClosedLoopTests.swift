import Testing
import Foundation
@testable import LoadKit

/// `HTTPClient.closedLoop`: the poll-driven request pump used by `loadkit bench http`.
@Suite(.serialized) struct HTTPClosedLoopTests {
    @Test func keepsEveryConnectionBusyAndCountsResponses() async throws {
        let server = try HTTPServer { _ in .text("pong") }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let request = try HTTPRequest(url: "http://127.0.0.1:\(server.port)/ping")
        let r = try await client.closedLoop(request, connections: 4, duration: .milliseconds(300), timeout: .seconds(2))
        #expect(r.responses > 20)
        #expect(r.statusCounts[200] == r.responses)
        #expect(r.failures.isEmpty)
        #expect(r.connectFailures.isEmpty)
        #expect(r.latency.count == Int64(r.responses))
        #expect(r.elapsedSeconds >= 0.29)
    }

    @Test func replacesConnectionsTheServerCloses() async throws {
        let server = try HTTPServer { _ in
            var h = HTTPHeaders()
            h.add("Connection", "close")
            return HTTPServerResponse(status: 200, headers: h, body: Array("bye".utf8))
        }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let request = try HTTPRequest(url: "http://127.0.0.1:\(server.port)/")
        let r = try await client.closedLoop(request, connections: 2, duration: .milliseconds(400), timeout: .seconds(2))
        // Each response ends its connection; the pump keeps going on replacements.
        #expect(r.responses > 2)
        #expect(r.statusCounts[200] == r.responses)
        #expect(r.failures["http_malformed"] == nil)
    }

    @Test func countsUnansweredRequestsAsTimeouts() async throws {
        let server = try HTTPServer { _ in
            try? await Task.sleep(for: .seconds(3))
            return .text("late")
        }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let request = try HTTPRequest(url: "http://127.0.0.1:\(server.port)/")
        let r = try await client.closedLoop(request, connections: 1, duration: .milliseconds(700), timeout: .milliseconds(200))
        #expect(r.responses == 0)
        #expect((r.failures["timeout"] ?? 0) >= 1)
    }

    @Test func refusedTargetThrows() async throws {
        // Port 1 (tcpmux): nothing listens there. (A listener closed just before can still be
        // accepting for a moment while its close runs on the loop, which made this flaky.)
        let port = 1
        let client = HTTPClient()
        defer { client.shutdown() }
        let request = try HTTPRequest(url: "http://127.0.0.1:\(port)/")
        await #expect(throws: (any Error).self) {
            _ = try await client.closedLoop(request, connections: 2, duration: .milliseconds(100), timeout: .seconds(1))
        }
    }
}
