import Foundation
import LoadKit

/// Everything a user of a Concert reservation server (seed 003) may need to set, read from the
/// environment and `.env` through ``Settings``. Unset values fit the embedded `ConcertFixture`.
///
/// | Variable | Default | Meaning |
/// |---|---|---|
/// | `CONCERT_BASE_URL` (or the seed's `BASE_URL`) | embedded fixture | the server under test |
/// | `CONCERT_TARGETS` | embedded small/medium/large | `name=url,…` targets of the comparison |
/// | `CONCERT_AUTH_HEADER` | none | `Name: value` sent with every request (or `TOKEN` → `Authorization: Bearer …`) |
/// | `CONCERT_PATH_*` | see ``Paths`` | endpoint paths (`off` disables reset/totals/points) |
/// | `CONCERT_SCHEDULE_ID`, `CONCERT_SEATS` | `schedule_test_1`, 50 | the contended seats |
/// | `CONCERT_CONCERT_IDS`, `CONCERT_SCHEDULE_IDS` | seed catalogue | catalogue reads |
/// | `CONCERT_THINK_TIME` | 250 ms | pause between a closed-model user's iterations (k6 `sleep`) |
/// | `CONCERT_PAYMENT_AMOUNT`, `CONCERT_PAYMENT_DUPLICATES` | 1000, 3 | points per payment, concurrent duplicates per key |
/// | `CONCERT_REQUEST_TIMEOUT` | 5 s | per request (connect + wait + response) |
/// | `CONCERT_MAX_CONNECTIONS` | 256 | keep-alive connections per target |
/// | `CONCERT_ENDURANCE` | `long` | `short` = the seed's 5-minute form of the 30-minute endurance run |
/// | `CONCERT_COMPARE_SCENARIOS` | `queue-spike` | scenarios of the comparison (`all` or a list) |
/// | `CONCERT_SLA_*` | the seed's | thresholds (see ``ConcertScenario/sla(_:)``) |
struct ConcertConfiguration: Sendable {
    /// Endpoint paths (`CONCERT_PATH_<NAME>`); nil disables an optional admin endpoint.
    struct Paths: Sendable {
        var health = "/health"
        var queueToken = "/queue/token"
        var concerts = "/concerts"
        var scheduleSeats = "/schedules/{scheduleId}/seats"
        var reservations = "/reservations"
        var payments = "/payments"
        var points: String? = "/users/{userId}/points"
        var reset: String? = "/admin/reset"
        var totals: String? = "/admin/totals"
    }

    var paths = Paths()
    /// Extra header sent with every request (`CONCERT_AUTH_HEADER`, or `TOKEN` as a bearer token).
    var authHeader: (name: String, value: String)?
    /// Schedule whose seats the reservation stress contends for.
    var scheduleId = "schedule_test_1"
    /// Seats `1...seats` of that schedule.
    var seats = 50
    /// Catalogue of the endurance reads.
    var concertIds = ["concert_test_1", "concert_test_2", "concert_test_3"]
    var scheduleIds = ["schedule_test_1", "schedule_test_2", "schedule_test_3", "schedule_test_4", "schedule_test_5"]
    /// Pause between iterations of a closed-model user.
    var thinkTime: Duration = .milliseconds(250)
    /// Points per payment.
    var paymentAmount = 1000
    /// Concurrent requests sent with the same `Idempotency-Key`.
    var paymentDuplicates = 3
    /// Per-request timeout.
    var requestTimeout: Duration = .seconds(5)
    /// Keep-alive connections per target.
    var maxConnections = 256
    /// Endurance: the seed's 5-minute short form instead of 30 minutes.
    var enduranceShort = false

    init() {}

    /// Reads the configuration; errors name the variable and the bad value.
    init(settings s: Settings) throws {
        func path(_ key: String, _ current: String) throws -> String {
            guard let v = s.string("CONCERT_PATH_" + key) else { return current }
            guard v.hasPrefix("/") else { throw ConfigError(variable: "CONCERT_PATH_" + key, value: v, expected: "a path starting with /") }
            return v
        }
        func optionalPath(_ key: String, _ current: String?) throws -> String? {
            if let v = s.string("CONCERT_PATH_" + key), ["off", "none", "-"].contains(v.lowercased()) { return nil }
            return try path(key, current ?? "")
        }
        paths.health = try path("HEALTH", paths.health)
        paths.queueToken = try path("QUEUE_TOKEN", paths.queueToken)
        paths.concerts = try path("CONCERTS", paths.concerts)
        paths.scheduleSeats = try path("SCHEDULE_SEATS", paths.scheduleSeats)
        paths.reservations = try path("RESERVATIONS", paths.reservations)
        paths.payments = try path("PAYMENTS", paths.payments)
        paths.points = try optionalPath("POINTS", paths.points)
        paths.reset = try optionalPath("RESET", paths.reset)
        paths.totals = try optionalPath("TOTALS", paths.totals)

        if let h = s.string("CONCERT_AUTH_HEADER") {
            guard let colon = h.firstIndex(of: ":"), colon != h.startIndex else {
                // The value may be a secret: name the variable and the expected shape only.
                throw ConfigError(variable: "CONCERT_AUTH_HEADER", value: "<hidden>", expected: "`Name: value`, e.g. `Authorization: Bearer …`")
            }
            authHeader = (String(h[..<colon]).trimmingCharacters(in: .whitespaces),
                          String(h[h.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        } else if let token = s.string("TOKEN") {
            authHeader = ("Authorization", "Bearer " + token)
        }
        scheduleId = s.string("CONCERT_SCHEDULE_ID") ?? scheduleId
        seats = try s.int("CONCERT_SEATS", in: 1...1_000_000) ?? seats
        if !s.list("CONCERT_CONCERT_IDS").isEmpty { concertIds = s.list("CONCERT_CONCERT_IDS") }
        if !s.list("CONCERT_SCHEDULE_IDS").isEmpty { scheduleIds = s.list("CONCERT_SCHEDULE_IDS") }
        thinkTime = try s.duration("CONCERT_THINK_TIME") ?? thinkTime
        paymentAmount = try s.int("CONCERT_PAYMENT_AMOUNT", in: 1...1_000_000_000_000) ?? paymentAmount
        paymentDuplicates = try s.int("CONCERT_PAYMENT_DUPLICATES", in: 1...100) ?? paymentDuplicates
        requestTimeout = try s.positiveDuration("CONCERT_REQUEST_TIMEOUT", default: requestTimeout)
        maxConnections = try s.int("CONCERT_MAX_CONNECTIONS", in: 1...100_000) ?? maxConnections
        switch s.string("CONCERT_ENDURANCE")?.lowercased() {
        case nil, "long", "30m": enduranceShort = false
        case "short", "5m": enduranceShort = true
        case let other?: throw ConfigError(variable: "CONCERT_ENDURANCE", value: other, expected: "long (30 min) or short (5 min)")
        }
    }

    /// `path` with `{name}` placeholders filled.
    static func fill(_ path: String, _ values: [String: String]) -> String {
        var p = path
        for (k, v) in values { p = p.replacingOccurrences(of: "{\(k)}", with: v) }
        return p
    }
}

/// A named server for the comparison (`CONCERT_TARGETS=small=http://…,large=http://…`).
struct ConcertTargetSpec: Sendable, Equatable {
    /// Column label.
    var name: String
    /// Base URL; nil = an embedded fixture with the preset of the same name (small/medium/large).
    var url: String?

    /// The comparison's targets: `CONCERT_TARGETS`, else the three embedded presets.
    static func list(_ s: Settings) throws -> [ConcertTargetSpec] {
        let items = s.list("CONCERT_TARGETS")
        if items.isEmpty { return ["small", "medium", "large"].map { ConcertTargetSpec(name: $0, url: nil) } }
        return try items.map { item in
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw ConfigError(variable: "CONCERT_TARGETS", value: item, expected: "name=http://host:port (comma-separated)")
            }
            let name = String(item[..<eq]).trimmingCharacters(in: .whitespaces)
            let url = String(item[item.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
            if url.hasPrefix("fixture:") { return ConcertTargetSpec(name: name, url: url) }
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw ConfigError(variable: "CONCERT_TARGETS", value: item, expected: "name=http://host:port or name=fixture:small|medium|large")
            }
            return ConcertTargetSpec(name: name, url: url)
        }
    }
}
