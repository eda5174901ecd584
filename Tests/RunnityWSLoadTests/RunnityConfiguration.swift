import Foundation
import LoadKit

/// Everything the Runnity scenario (seed 002) needs to talk to a Runnity-like server, read from the
/// environment / `.env` (see README-section.md for the table). Paths, JSON fields, headers and
/// timings are all settable, so the suite fits a real server behind nginx, not only the fixture.
struct RunnityConfiguration: Sendable {
    /// How the challenge and its participants come to exist before the load.
    enum SetupMode: String, Sendable, CaseIterable {
        /// Log in an admin member, create a challenge (seed body), every member joins.
        case create
        /// Every member joins the existing `RUNNITY_CHALLENGE_ID`.
        case join
        /// Nothing: the challenge exists and every member has joined (or the CSV says so).
        case none
    }

    // MARK: Server
    /// `RUNNITY_BASE_URL` (`http(s)://host:port`, no trailing slash). A path is a prefix of every
    /// API path (`http://gw/runnity` → `http://gw/runnity/api/v1/…`); a query or fragment is an error.
    var baseURL: String
    /// `RUNNITY_LOGIN_PATH`, default `/api/v1/auth/test-login?memberId={memberId}`.
    var loginPath: String
    /// `RUNNITY_CREATE_CHALLENGE_PATH`, default `/api/v1/admin/challenges`.
    var createChallengePath: String
    /// `RUNNITY_JOIN_PATH`, default `/api/v1/challenges/{challengeId}/join`.
    var joinPath: String
    /// `RUNNITY_ENTER_PATH`, default `/api/v1/challenges/{challengeId}/enter`.
    var enterPath: String
    /// `RUNNITY_TOKEN_JSON_PATH`, default `data.accessToken`.
    var tokenJSONPath: String
    /// `RUNNITY_TICKET_JSON_PATH`, default `data.ticket`.
    var ticketJSONPath: String
    /// `RUNNITY_WS_URL_JSON_PATH`, default `data.wsUrl`.
    var webSocketURLJSONPath: String
    /// `RUNNITY_CHALLENGE_ID_JSON_PATH`, default `data.challengeId`.
    var challengeIdJSONPath: String
    /// `RUNNITY_WS_URL`: use this WebSocket URL instead of the `wsUrl` that `enter` returns
    /// (e.g. when the server names an internal host).
    var webSocketURLOverride: String?
    /// `RUNNITY_TICKET_PARAM`, default `ticket`.
    var ticketParam: String
    /// `RUNNITY_HEADERS`: extra headers on every HTTP request and WebSocket upgrade (`Name: value; …`).
    var headers: [(String, String)]
    /// `RUNNITY_ADMIN_HEADERS`: extra headers on the challenge creation.
    var adminHeaders: [(String, String)]
    /// `RUNNITY_ADMIN_TOKEN`: bearer token for the challenge creation (else the admin member logs in).
    var adminToken: String?
    /// `RUNNITY_ADMIN_MEMBER_ID`: member who creates the challenge (default the first member).
    var adminMemberId: Int?

    // MARK: Challenge and members
    /// `RUNNITY_CHALLENGE_ID`: an existing challenge (skips creation).
    var challengeId: String?
    /// `RUNNITY_SETUP`: create / join / none (default: create without challenge id and CSV, else none).
    var setup: SetupMode
    /// `RUNNITY_CHALLENGE_BODY`: creation body; `{startAt}`, `{maxParticipants}`, `{runTag}` are replaced.
    var challengeBody: String
    /// `RUNNITY_MAX_PARTICIPANTS`, default 10000 (the seed's).
    var maxParticipants: Int
    /// `RUNNITY_JOIN_BODY`, default `{}`.
    var joinBody: String
    /// `RUNNITY_SETUP_CONCURRENCY`, default 32.
    var setupConcurrency: Int
    /// `RUNNITY_DATASET`: CSV `memberId,challengeId` (recycled at end of file unless
    /// `RUNNITY_DATASET_RECYCLE=false`); replaces the set-up.
    var dataSet: DataSet?
    /// `RUNNITY_MEMBER_FIRST`, default 1: member id of user 0.
    var memberFirst: Int
    /// `RUNNITY_MEMBER_COUNT`: member ids wrap after this many (default: no wrap).
    var memberCount: Int?
    /// `RUNNITY_MEMBER_OFFSET`, default 0: added to the user index (one range per machine when
    /// machines run without `LOADKIT_SHARD_*`).
    var memberOffset: Int

    // MARK: Timing
    /// `RUNNITY_PING_INTERVAL` (seed 30 s; default scaled with the run's duration factor, 1–30 s).
    var pingInterval: Duration
    /// `RUNNITY_PONG_TIMEOUT`, default 5 s.
    var pongTimeout: Duration
    /// `RUNNITY_CONNECT_TIMEOUT`: WebSocket handshake and the CONNECTED message, default 10 s.
    var connectTimeout: Duration
    /// `RUNNITY_HTTP_TIMEOUT`, default 10 s.
    var httpTimeout: Duration
    /// `RUNNITY_CONNECT_DELAY`: pause between `enter` and the WebSocket open (default 0: at once, as the seed says).
    var connectDelay: Duration
    /// `RUNNITY_HTTP_CONNECTIONS`: keep-alive connections to the API, default 64.
    var httpConnections: Int
    /// TLS for `https`/`wss` (needs the `TLS` trait): the kit's default client (system store, or
    /// `LOADKIT_TLS_CA_FILE`), or no verification at all with `RUNNITY_TLS_INSECURE=true`.
    var tls: TLSConfiguration
    /// Random tag in created challenge titles.
    var runTag: String

    /// Largest member id (and offset) the settings accept.
    static let maxMemberId = 1_000_000_000_000

    /// Reads the configuration; `baseURL` is the API (from `RUNNITY_BASE_URL` or the fixture);
    /// `defaultPingInterval` is used when `RUNNITY_PING_INTERVAL` is unset.
    init(settings s: Settings, baseURL: String, defaultPingInterval: Duration = .seconds(30)) throws {
        var base = baseURL.trimmingCharacters(in: .whitespaces)
        while base.hasSuffix("/") { base.removeLast() }
        guard let u = URL(string: base), let scheme = u.scheme?.lowercased(), ["http", "https"].contains(scheme), u.host != nil,
              u.query == nil, u.fragment == nil else {
            throw ConfigError(variable: "RUNNITY_BASE_URL", value: baseURL,
                              expected: "http(s)://host[:port][/prefix] of the Runnity API, without query (a path prefixes every API path)")
        }
        self.baseURL = base
        loginPath = Self.path(s.string("RUNNITY_LOGIN_PATH") ?? "/api/v1/auth/test-login?memberId={memberId}")
        createChallengePath = Self.path(s.string("RUNNITY_CREATE_CHALLENGE_PATH") ?? "/api/v1/admin/challenges")
        joinPath = Self.path(s.string("RUNNITY_JOIN_PATH") ?? "/api/v1/challenges/{challengeId}/join")
        enterPath = Self.path(s.string("RUNNITY_ENTER_PATH") ?? "/api/v1/challenges/{challengeId}/enter")
        tokenJSONPath = s.string("RUNNITY_TOKEN_JSON_PATH") ?? "data.accessToken"
        ticketJSONPath = s.string("RUNNITY_TICKET_JSON_PATH") ?? "data.ticket"
        webSocketURLJSONPath = s.string("RUNNITY_WS_URL_JSON_PATH") ?? "data.wsUrl"
        challengeIdJSONPath = s.string("RUNNITY_CHALLENGE_ID_JSON_PATH") ?? "data.challengeId"
        webSocketURLOverride = s.string("RUNNITY_WS_URL")
        ticketParam = s.string("RUNNITY_TICKET_PARAM") ?? "ticket"
        headers = try s.headers("RUNNITY_HEADERS")
        adminHeaders = try s.headers("RUNNITY_ADMIN_HEADERS")
        adminToken = s.string("RUNNITY_ADMIN_TOKEN")
        adminMemberId = try s.int("RUNNITY_ADMIN_MEMBER_ID", in: 0...Self.maxMemberId)

        challengeId = s.string("RUNNITY_CHALLENGE_ID")
        if let path = s.string("RUNNITY_DATASET") {
            dataSet = try DataSet(contentsOf: path, recycle: try s.bool("RUNNITY_DATASET_RECYCLE") ?? true)
            _ = try dataSet?.row(at: 0).int("memberId")
        } else { dataSet = nil }
        if let m = s.string("RUNNITY_SETUP") {
            guard let mode = SetupMode(rawValue: m.lowercased()) else {
                throw ConfigError(variable: "RUNNITY_SETUP", value: m, expected: "create, join or none")
            }
            setup = mode
        } else {
            setup = challengeId == nil && dataSet == nil ? .create : .none
        }
        if setup == .join && challengeId == nil && dataSet == nil {
            throw ConfigError(variable: "RUNNITY_CHALLENGE_ID", value: "", expected: "the challenge to join (RUNNITY_SETUP=join)")
        }
        if setup == .none && challengeId == nil && dataSet == nil {
            throw ConfigError(variable: "RUNNITY_CHALLENGE_ID", value: "", expected: "an existing challenge id or RUNNITY_DATASET (RUNNITY_SETUP=none)")
        }
        challengeBody = s.string("RUNNITY_CHALLENGE_BODY") ?? Self.seedChallengeBody
        maxParticipants = try s.int("RUNNITY_MAX_PARTICIPANTS", in: 1...1_000_000_000) ?? 10_000
        joinBody = s.string("RUNNITY_JOIN_BODY") ?? "{}"
        setupConcurrency = try s.int("RUNNITY_SETUP_CONCURRENCY", in: 1...10_000) ?? 32
        // Bounded so `memberFirst + offset + index` can never overflow.
        memberFirst = try s.int("RUNNITY_MEMBER_FIRST", in: 0...Self.maxMemberId) ?? 1
        memberCount = try s.int("RUNNITY_MEMBER_COUNT", in: 1...Self.maxMemberId)
        memberOffset = try s.int("RUNNITY_MEMBER_OFFSET", in: 0...Self.maxMemberId) ?? 0

        pingInterval = try s.positiveDuration("RUNNITY_PING_INTERVAL", default: defaultPingInterval)
        pongTimeout = try s.positiveDuration("RUNNITY_PONG_TIMEOUT", default: .seconds(5))
        connectTimeout = try s.positiveDuration("RUNNITY_CONNECT_TIMEOUT", default: .seconds(10))
        httpTimeout = try s.positiveDuration("RUNNITY_HTTP_TIMEOUT", default: .seconds(10))
        connectDelay = try s.duration("RUNNITY_CONNECT_DELAY") ?? .zero
        httpConnections = try s.int("RUNNITY_HTTP_CONNECTIONS", in: 1...100_000) ?? 64
        tls = try s.bool("RUNNITY_TLS_INSECURE") == true ? .insecureNoVerification : .defaultClient
        runTag = String(UInt32.random(in: 0x1000_0000...UInt32.max), radix: 36)
    }

    /// The seed's creation body (`POST /api/v1/admin/challenges`), with a start an hour from now.
    static let seedChallengeBody = #"{"title":"부하 테스트용 챌린지 {runTag}","description":"WebSocket 부하 테스트를 위한 대규모 챌린지입니다.","maxParticipants":{maxParticipants},"startAt":"{startAt}","distance":"FIVE","isPrivate":false,"password":null,"isBroadcast":false}"#

    /// The creation body with placeholders filled.
    var renderedChallengeBody: String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        return challengeBody.replacingOccurrences(of: "{startAt}", with: f.string(from: Date().addingTimeInterval(3600)))
            .replacingOccurrences(of: "{maxParticipants}", with: String(maxParticipants))
            .replacingOccurrences(of: "{runTag}", with: runTag)
    }

    /// Member and challenge of the user with (run-wide) index `index`.
    func assignment(forUser index: Int, challengeId created: String?) throws -> (memberId: Int, challengeId: String) {
        let i = index + memberOffset
        if let d = dataSet {
            let row = try d.row(forUser: i)
            let cid = created ?? challengeId ?? row["challengeId"]
            guard let cid, !cid.isEmpty else {
                throw DataSetError(kind: "dataset_invalid", message: "\(d.source) has no challengeId column and RUNNITY_CHALLENGE_ID is unset")
            }
            return (try row.int("memberId"), cid)
        }
        guard let cid = created ?? challengeId else {
            throw ConfigError(variable: "RUNNITY_CHALLENGE_ID", value: "", expected: "a challenge id (or run the set-up)")
        }
        return (memberFirst + (memberCount.map { i % $0 } ?? i), cid)
    }

    // MARK: URLs

    func url(_ path: String, memberId: Int? = nil, challengeId: String? = nil) -> String {
        var p = path
        if let m = memberId { p = p.replacingOccurrences(of: "{memberId}", with: String(m)) }
        if let c = challengeId { p = p.replacingOccurrences(of: "{challengeId}", with: c) }
        return baseURL + p
    }

    /// `{wsUrl}?ticket={ticket}` (or `&ticket=` when the URL has a query already).
    func webSocketURL(wsUrl: String, ticket: String) -> String {
        let base = webSocketURLOverride ?? wsUrl
        let escaped = ticket.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+"))) ?? ticket
        return base + (base.contains("?") ? "&" : "?") + "\(ticketParam)=\(escaped)"
    }

    /// An HTTP client for the API with `connections` keep-alive connections and ``tls``.
    func makeHTTPClient(connections: Int) -> HTTPClient {
        var c = HTTPClient.Configuration()
        c.maxConnectionsPerHost = max(1, connections)
        c.defaultTimeout = httpTimeout
        c.tls = tls
        return HTTPClient(configuration: c)
    }

    /// HTTP headers for a member's call.
    func httpHeaders(token: String?, json: Bool = true, extra: [(String, String)] = []) -> HTTPHeaders {
        var h = HTTPHeaders()
        if json { h.add("Content-Type", "application/json") }
        if let t = token { h.add("Authorization", "Bearer \(t)") }
        for (n, v) in headers + extra { h.add(n, v) }
        return h
    }

    /// Facts for reports, without secrets.
    var description: [String: String] {
        var d = ["base_url": baseURL, "setup": setup.rawValue, "ping_interval_ms": String(pingInterval.milliseconds),
                 "pong_timeout_ms": String(pongTimeout.milliseconds), "enter_path": enterPath]
        if let c = challengeId { d["challenge_id"] = c }
        if let ds = dataSet { d["dataset"] = "\(ds.source) (\(ds.count) rows, recycle \(ds.recycle))" }
        if let w = webSocketURLOverride { d["ws_url"] = w }
        return d
    }

    // MARK: Parsing helpers

    static func path(_ p: String) -> String { p.hasPrefix("/") ? p : "/" + p }


}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
