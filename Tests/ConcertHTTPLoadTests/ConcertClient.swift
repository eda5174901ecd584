import Foundation
import LoadKit
import LoadKitFixtures

/// The Concert suite's own metrics beside the client's built-ins (`BuiltInMetrics`): the
/// per-second sum of durations that makes latency drift visible, and the 503 count.
enum K6Metrics {
    /// Counter: sum of request durations in µs; its per-second series ÷ `http_reqs`' is the
    /// per-second mean latency (drift over time).
    static let durationSumMicros = "http_req_duration_sum_us"
    /// Counter: responses with status 503 (a server at capacity).
    static let status503 = "http_503"
}

/// A failure of the target as a whole (health check, admin endpoint): the message names the URL
/// (without query) and what was wrong; rendered through ``Secrets/redact(_:)``.
struct ConcertTargetError: ClassifiedError, Sendable {
    var kind: String
    var message: String
    var source: FailureSource { .server }
    var description: String { Secrets.redact(message) }
}

/// HTTP access to one Concert server: a keep-alive client, the configured paths and auth header,
/// and a `request` helper that records k6's metrics for each request a virtual user sends.
final class ConcertClient: Sendable {
    /// `scheme://host:port` without trailing slash.
    let baseURL: String
    let config: ConcertConfiguration
    let http: HTTPClient

    init(baseURL: String, config: ConcertConfiguration) {
        var b = baseURL
        while b.hasSuffix("/") { b.removeLast() }
        self.baseURL = b
        self.config = config
        var c = HTTPClient.Configuration()
        c.maxConnectionsPerHost = config.maxConnections
        c.defaultTimeout = config.requestTimeout
        if let h = config.authHeader { c.defaultHeaders.add(h.name, h.value) }
        c.defaultHeaders.add("User-Agent", "LoadKit-ConcertHTTPLoadTests")
        http = HTTPClient(configuration: c)
    }

    func url(_ path: String) -> String { baseURL + path }

    // MARK: Requests of a virtual user

    /// Sends one request for `user`. The client records k6's built-ins for it (`http_reqs`,
    /// `http_req_duration`, `http_req_failed` with `expected` as the expected statuses, one
    /// classified error for an unexpected status or no answer, each also tagged `name:<step>`);
    /// this adds the step's own trend for expected answers, timed from `since` (the scheduled
    /// start in the open model, so a stall cannot hide), the 503 count and, with `trackDrift`,
    /// the per-second duration sum. Returns the response, nil when none came.
    func request(_ user: VirtualUser, _ method: HTTPMethod, _ path: String, json: String? = nil,
                 headers: HTTPHeaders = HTTPHeaders(), step: String, expected: Set<Int> = [200, 201],
                 since: UInt64? = nil, trackDrift: Bool = false) async -> HTTPResponse? {
        var h = headers
        var body: [UInt8] = []
        if let json { h.set("Content-Type", "application/json"); body = Array(json.utf8) }
        let t0 = since ?? monotonicNanos()
        let request: HTTPRequest
        do {
            request = try HTTPRequest(method: method, url: url(path), headers: h, body: body, name: step,
                                      expecting: ExpectedStatuses(codes: expected.sorted()))
        } catch {
            user.fail(error, step: step)
            return nil
        }
        // A failure is counted by the client (the error rate's one error for this request).
        guard let response = try? await http.execute(request) else { return nil }
        let r = user.recorder
        if trackDrift { r.increment(K6Metrics.durationSumMicros, by: Int64(response.timings.duration / 1000)) }
        if response.status == 503 { r.increment(K6Metrics.status503) }
        if expected.contains(response.status) { r.recordNanos(step, monotonicNanos() &- t0) }
        return response
    }

    // MARK: Set-up and verification (outside the measured run)

    /// `GET /health` must answer 200 `{"status":"ok"}`; anything else throws with the reason.
    func checkHealth() async throws {
        let u = url(config.paths.health)
        let response: HTTPResponse
        do { response = try await http.get(u, timeout: .seconds(5)) } catch {
            throw ConcertTargetError(kind: "health_check", message: "health check GET \(u) failed: \(error) — is the server running?")
        }
        guard response.status == 200, response.jsonValue(at: "status") == "ok" else {
            throw ConcertTargetError(kind: "health_check", message: "health check GET \(u) answered HTTP \(response.status) "
                + "\(Self.snippet(response.bodyString)); expected 200 {\"status\":\"ok\"}")
        }
    }

    /// `POST /admin/reset` (state reset between runs); false when the path is turned off.
    @discardableResult
    func reset() async throws -> Bool {
        guard let p = config.paths.reset else { return false }
        let response = try await http.send(.POST, url(p), body: Array("{}".utf8), headers: ["Content-Type": "application/json"])
        guard (200...299).contains(response.status) else {
            throw ConcertTargetError(kind: "reset_failed", message: "state reset POST \(url(p)) answered HTTP \(response.status) "
                + "\(Self.snippet(response.bodyString)) (set CONCERT_PATH_RESET=off if the server has no reset endpoint)")
        }
        return true
    }

    /// `GET /admin/totals` as JSON; nil when the path is turned off.
    func totals() async throws -> ConcertTotals? {
        guard let p = config.paths.totals else { return nil }
        let response = try await http.get(url(p))
        guard response.status == 200, let o = response.json as? [String: Any] else {
            throw ConcertTargetError(kind: "totals_failed", message: "GET \(url(p)) answered HTTP \(response.status) "
                + "\(Self.snippet(response.bodyString)); expected the totals JSON (CONCERT_PATH_TOTALS=off skips the check)")
        }
        return ConcertTotals(o)
    }

    /// A user's point balance; nil when the points path is off or the answer has no balance.
    func balance(of userId: String) async throws -> Int? {
        guard let p = config.paths.points else { return nil }
        let response = try await http.get(url(ConcertConfiguration.fill(p, ["userId": userId])))
        guard response.status == 200 else { return nil }
        return response.jsonValue(at: "balance").flatMap { Int($0) }
    }

    func shutdown() { http.shutdown() }

    /// A server body for an error message: redacted, then cut (``Secrets/excerpt(_:limit:)``).
    static func snippet(_ s: String) -> String {
        s.isEmpty ? "(empty body)" : "'\(Secrets.excerpt(s, limit: 160))'"
    }
}

/// The consistency totals of `GET /admin/totals` (fields absent on other servers stay nil).
struct ConcertTotals: Sendable {
    var reservedSeats: Int?
    var reservations: Int?
    var conflicts: Int?
    var lockTimeouts: Int?
    var payments: Int?
    var paidAmount: Int?
    var replayedPayments: Int?
    var pointsDeducted: Int?
    var cacheHits: Int?
    var cacheMisses: Int?
    var consistent: Bool?

    init(_ o: [String: Any]) {
        func int(_ v: Any?) -> Int? { (v as? NSNumber)?.intValue }
        reservedSeats = int(o["reservedSeats"])
        reservations = int(o["reservations"])
        conflicts = int(o["conflicts"])
        lockTimeouts = int(o["lockTimeouts"])
        payments = int(o["payments"])
        paidAmount = int(o["paidAmount"])
        replayedPayments = int(o["replayedPayments"])
        pointsDeducted = int(o["pointsDeducted"])
        let cache = o["cache"] as? [String: Any]
        cacheHits = int(cache?["hits"])
        cacheMisses = int(cache?["misses"])
        consistent = (o["consistent"] as? NSNumber)?.boolValue
    }
}

/// The server a scenario runs against: a URL, or an embedded ``ConcertFixture`` started here.
final class ConcertTarget: Sendable {
    /// Short name (`small`, `default`, or the `CONCERT_TARGETS` name).
    let name: String
    /// Column label for the comparison table.
    let label: String
    let client: ConcertClient
    let fixture: ConcertFixture?

    private init(name: String, label: String, client: ConcertClient, fixture: ConcertFixture?) {
        self.name = name; self.label = label; self.client = client; self.fixture = fixture
    }

    /// Fixture options for a preset: the seed's server size, plus a 2 ms seat-lock critical section
    /// (the distributed lock of the seed's reservation path).
    static func fixtureOptions(_ size: ConcertSize) -> FixtureOptions {
        var o = FixtureOptions.concertSize(size)
        o.concert.lockHold = .milliseconds(2)
        return o
    }

    /// A target on an embedded fixture started with `options`.
    static func embedded(name: String, label: String? = nil, options: FixtureOptions, config: ConcertConfiguration) async throws -> ConcertTarget {
        let f = try await ConcertFixture.start(options)
        return ConcertTarget(name: name, label: label ?? "\(name) (embedded fixture)", client: ConcertClient(baseURL: f.url, config: config), fixture: f)
    }

    /// A target at `url` (`variable` names the setting it came from, for errors).
    static func external(name: String, url: String, variable: String, config: ConcertConfiguration) throws -> ConcertTarget {
        ConcertTarget(name: name, label: name, client: ConcertClient(baseURL: try baseURL(url, variable: variable), config: config), fixture: nil)
    }

    /// Checks a base URL: `http(s)://host[:port]` with an optional path, which prefixes every
    /// API path (`http://gw/concert` → `http://gw/concert/health`); a query or fragment is an error.
    static func baseURL(_ raw: String, variable: String) throws -> String {
        let t = raw.trimmingCharacters(in: .whitespaces)
        guard let u = URL(string: t), ["http", "https"].contains(u.scheme?.lowercased() ?? ""), u.host != nil,
              u.query == nil, u.fragment == nil else {
            throw ConfigError(variable: variable, value: raw,
                              expected: "http(s)://host[:port][/prefix], without query (a path prefixes every API path)")
        }
        return t
    }

    /// The scenarios' target: `CONCERT_BASE_URL` or `BASE_URL`, else an embedded medium-size fixture
    /// (the seed's recommended size).
    static func primary(_ settings: Settings, config: ConcertConfiguration) async throws -> ConcertTarget {
        for key in ["CONCERT_BASE_URL", "BASE_URL"] {
            if let u = settings.string(key) { return try external(name: "server", url: u, variable: key, config: config) }
        }
        return try await embedded(name: "medium", options: fixtureOptions(.medium), config: config)
    }

    /// A comparison target: a URL, `fixture:<size>`, or (no URL) the embedded preset named like it.
    static func start(_ spec: ConcertTargetSpec, config: ConcertConfiguration) async throws -> ConcertTarget {
        var preset = spec.name
        if let u = spec.url {
            guard u.hasPrefix("fixture:") else { return try external(name: spec.name, url: u, variable: "CONCERT_TARGETS", config: config) }
            preset = String(u.dropFirst("fixture:".count))
        }
        guard let size = ConcertSize(rawValue: preset.lowercased()) else {
            throw ConfigError(variable: "CONCERT_TARGETS", value: spec.name, expected: "a URL, or a fixture preset small, medium or large")
        }
        let o = fixtureOptions(size)
        let cap = o.capacity?.maxConcurrentRequests.map { "\($0) req at once" } ?? "unlimited"
        return try await embedded(name: spec.name, label: "\(spec.name) (fixture: \(cap), \(describe(o.latency)))", options: o, config: config)
    }

    static func describe(_ l: LatencyModel) -> String {
        func ms(_ d: Duration) -> String { String(format: "%g", Double(d.nanoseconds) / 1e6) }
        switch l {
        case .none: return "no added latency"
        case .fixed(let d): return "\(ms(d)) ms"
        case .uniform(let a, let b): return "\(ms(a))–\(ms(b)) ms"
        case .normal(let m, let sd): return "\(ms(m)) ± \(ms(sd)) ms"
        }
    }

    /// Closes the client and stops an embedded fixture.
    func stop() async {
        client.shutdown()
        await fixture?.stop()
    }
}
