import Testing
import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// The HTTP client on the event loops: URL strings parsed once, responses resumed on the caller's loop.
@Suite(.serialized) struct HTTPClientLoopTests {
    @Test func urlStringsAreParsedOncePerClientAndBadOnesStillFail() async throws {
        let server = try HTTPServer { req in .text(req.path) }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let base = "http://127.0.0.1:\(server.port)"
        for i in 0..<200 {
            let r = try await client.get(base + (i % 2 == 0 ? "/a" : "/b"))
            #expect(r.bodyString == (i % 2 == 0 ? "/a" : "/b"))
        }
        #expect(client.cachedEndpointCount == 2)
        await #expect(throws: HTTPError.self) { _ = try await client.get("ftp://127.0.0.1/x") }
        #expect(client.cachedEndpointCount == 2)          // failures are not cached
        for i in 0..<300 { _ = try client.endpoint(base + "/n\(i)") }
        #expect(client.cachedEndpointCount <= 256)        // bounded
        let e = try client.endpoint(base + "/a?q=1")
        #expect(e == (try Endpoint(base + "/a?q=1")))     // the cached value is the parsed one
    }

    @Test func responsesResumeOnTheCallersLoopOverThatLoopsConnections() async throws {
        let server = try HTTPServer { _ in .text("ok") }
        defer { server.stop() }
        let group = EventLoopGroup(loops: 2, label: "t.http")
        var config = HTTPClient.Configuration()
        config.group = group
        let client = HTTPClient(configuration: config)
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(server.port)/"
        final class Count: Sendable { let v = Atomic<Int>(0); func add() { v.add(1, ordering: .relaxed) } }
        let offLoop = Count(), ok = Count()
        await withThrowingTaskGroup(of: Void.self) { g in
            for i in 0..<8 {
                let loop = group.loops[i % 2]
                g.addTask(executorPreference: loop) {
                    for _ in 0..<100 {
                        let r = try await client.get(url)
                        if r.status == 200 { ok.add() }
                        if !loop.inLoop { offLoop.add() }
                    }
                }
            }
        }
        #expect(ok.v.load(ordering: .relaxed) == 800)
        #expect(offLoop.v.load(ordering: .relaxed) == 0)
    }
}
