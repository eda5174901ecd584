import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// A small HTTP server that counts what it served, so a test can compare every figure LoadKit
/// reports with the truth: requests, statuses, distinct client connections.
///
/// Routes: `GET /ok` answers 200 `ok`; `GET /flaky` answers 500 on every `failEvery`-th request
/// (an exact share, not a random one) and 200 otherwise; any path waits `delay` first.
final class CountingHTTPServer: Sendable {
    struct Counts: Sendable, Equatable {
        var requests = 0
        var byStatus: [Int: Int] = [:]
        var clientPorts = Set<Int>()
        var paths: [String: Int] = [:]
        var connections: Int { clientPorts.count }
    }

    private final class Box: Sendable { let counts = Mutex(Counts()) }

    let server: HTTPServer
    private let box = Box()

    init(failEvery: Int = 20, delay: Duration = .zero) throws {
        let box = self.box
        server = try HTTPServer(port: 0) { request in
            if delay > .zero { try? await Task.sleep(for: delay) }
            let status: Int = box.counts.withLock { c in
                c.requests += 1
                if let p = request.remoteAddress?.port { c.clientPorts.insert(p) }
                c.paths[request.path, default: 0] += 1
                let s: Int
                switch request.path {
                case "/flaky": s = c.paths["/flaky", default: 0] % failEvery == 0 ? 500 : 200
                case "/ok": s = 200
                default: s = 404
                }
                c.byStatus[s, default: 0] += 1
                return s
            }
            return .text(status == 200 ? "ok" : "internal error", status: status)
        }
    }

    var snapshot: Counts { box.counts.withLock { $0 } }
    func url(_ path: String) -> String { "http://127.0.0.1:\(server.port)\(path)" }
    func stop() { server.stop() }
}
