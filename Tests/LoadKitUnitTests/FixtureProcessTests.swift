import Testing
import Foundation
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport
@testable import LoadKitFixtures

private func rssKiB(pid: Int32) -> Int {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return -1 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
}

@Suite(.serialized) struct FixtureProcessTests {
    @Test func childFixtureReportsReadyServesAndTerminates() async throws {
        guard FixtureProcess.locateBinary() != nil else {
            Issue.record("loadkit-fixture is not built next to the tests")
            return
        }
        let child = try await FixtureProcess.launch(.concert, arguments: ["--latency-ms", "1"])
        #expect(child.port > 0)
        let http = HTTPClient()
        defer { http.shutdown() }
        let r = try await http.get(child.url + "/health")
        #expect(r.bodyString == #"{"status":"ok"}"#)
        #expect(child.isRunning)
        child.terminate()
        #expect(!child.isRunning)
        await #expect(throws: (any Error).self) { _ = try await http.get(child.url + "/health", timeout: .seconds(2)) }
    }

    /// The issue's acceptance run: a fixture in its own process holds N STOMP connections (idle,
    /// heart-beats on) from this process with no drops. Opt-in, it takes a minute:
    /// `LOADKIT_FIXTURE_SOAK_CONNECTIONS=10000 LOADKIT_FIXTURE_SOAK_SECONDS=60 swift test -c release --filter FixtureProcessTests`
    @Test func holdsManyIdleStompConnectionsInItsOwnProcess() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let n = env["LOADKIT_FIXTURE_SOAK_CONNECTIONS"].flatMap(Int.init), n > 0 else { return }
        let seconds = env["LOADKIT_FIXTURE_SOAK_SECONDS"].flatMap(Int.init) ?? 60
        _ = ResourceLimits.raiseOpenFileLimit()
        let child = try await FixtureProcess.launch(.stomp, arguments: ["--heartbeat-ms", "10000", "--stats-every-s", "10"])
        defer { child.terminate() }
        let token = try #require(try await {
            let http = HTTPClient()
            defer { http.shutdown() }
            let r = try await http.post(child.url + "/api/v1/auth/login", body: Array(#"{"email":"test@test.com","password":"password123!"}"#.utf8),
                                        headers: ["Content-Type": "application/json"])
            return (r.json as? [String: Any])?["accessToken"] as? String
        }())
        let url = "ws://127.0.0.1:\(child.port)/ws-stomp"
        let st = SoakState()
        let start = monotonicNanos()
        await withTaskGroup(of: Void.self) { g in
            let width = 200
            for w in 0..<width {
                g.addTask {
                    var i = w
                    while i < n {
                        do {
                            let c = try await StompClient.connect(webSocket: url, connectHeaders: [("Authorization", "Bearer \(token)")],
                                                                  heartBeat: (.seconds(10), .seconds(10)), timeout: .seconds(30))
                            c.onClose = { _ in st.closed.add(1, ordering: .relaxed) }
                            try await c.subscribe(destination: "/sub/chat/room/1", id: "sub-1") { _ in }
                            st.clients.withLock { $0.append(c) }
                        } catch {
                            st.failed.add(1, ordering: .relaxed)
                        }
                        i += width
                    }
                }
            }
        }
        let connectSeconds = Double(monotonicNanos() - start) / 1e9
        let held = st.clients.withLock { $0.count }
        print("FIXTURE-SOAK connected \(held)/\(n) in \(String(format: "%.1f", connectSeconds)) s, failed \(st.failed.load(ordering: .relaxed)), server RSS \(rssKiB(pid: child.pid) / 1024) MiB")
        try await Task.sleep(for: .seconds(seconds))
        let drops = st.closed.load(ordering: .relaxed)
        print("FIXTURE-SOAK after \(seconds) s: drops \(drops), server RSS \(rssKiB(pid: child.pid) / 1024) MiB, server says: \(child.output.last ?? "")")
        #expect(held == n)
        #expect(drops == 0)
        for c in st.clients.withLock({ $0 }) { c.close() }
    }
}

final class SoakState: Sendable {
    let closed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let clients = Mutex<[StompClient]>([])
}
