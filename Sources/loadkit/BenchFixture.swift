import Foundation
import LoadKit
import LoadKitFixtures

/// The STOMP chat fixture in its own process, for the stomp and held sections.
struct BenchChatServer {
    let process: FixtureProcess
    let webSocketURL: String
    let token: String

    /// Launches `loadkit-fixture stomp` (binary from `--fixture`, else next to this executable),
    /// pins it to `--fixture-cpu` (default 1; `none` leaves it free) and logs in once over HTTP
    /// for an access token every connection reuses.
    static func start(_ o: BenchOptions, extra: [String]) async throws -> BenchChatServer {
        let fixture = try await FixtureProcess.launch(.stomp, arguments: extra + ["--stats-every-s", "1"],
                                                      binary: o.string("fixture"))
        let cpu = o.string("fixture-cpu") ?? "1"
        if let c = Int(cpu), c < ProcessInfo.processInfo.activeProcessorCount { pinProcess(fixture.pid, cpu: c) }
        let client = HTTPClient()
        defer { client.shutdown() }
        struct Login: Encodable { let email: String; let password: String }
        let r = try await client.post("\(fixture.url)/api/v1/auth/login",
                                      json: Login(email: "test1@test.com", password: "password123!"))
        guard r.status == 200, let token = r.jsonValue(at: "accessToken") else {
            fixture.terminate()
            throw BenchError("fixture login answered \(r.status): \(String(decoding: r.body.prefix(200), as: UTF8.self))")
        }
        return BenchChatServer(process: fixture, webSocketURL: "ws://127.0.0.1:\(fixture.port)/ws-stomp", token: token)
    }

    /// The fixture's last `STATS` line as key/value pairs (`open`, `ws`, `stomp`, `dropped`).
    var lastStats: [String: String] {
        guard let line = process.output.last(where: { $0.hasPrefix("STATS ") }) else { return [:] }
        var d: [String: String] = [:]
        for part in line.dropFirst(6).split(separator: " ") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { d[String(kv[0])] = String(kv[1]) }
        }
        return d
    }
}
