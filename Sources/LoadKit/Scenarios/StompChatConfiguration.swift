import LoadKitTransport
import LoadKitProtocols
import LoadKitEngine

/// Everything the STOMP chat scenario (seeds 000/001) needs to talk to a chat server, read from
/// the environment / `.env` with the seeds' own names, plus the settings a user of another STOMP
/// broker (Spring, ActiveMQ, RabbitMQ web-stomp) needs. See the README's StompLoadTests section
/// for the table of variables; ``init(settings:)`` documents each default.
///
/// ```swift
/// let chat = try await StompChatConfiguration(settings: .current).prepared()   // login, room
/// let result = try await LoadTest("stomp-chat", stages: StompChatProfile.seed000.stages)
///     .run { user in try await chat.runWorker(user) }
/// ```
public struct StompChatConfiguration: Sendable {
    /// Where the access token goes.
    public enum AuthPlacement: String, Sendable, CaseIterable {
        /// A CONNECT header (`Authorization: Bearer …`, seed 000/001, Spring).
        case connect
        /// A header of the WebSocket upgrade request.
        case handshake
        /// Both.
        case both
        /// Nowhere (brokers using `login`/`passcode` instead).
        case none
    }

    // MARK: Server
    /// Server host (`SERVER_URL` host part).
    public var host: String
    /// Server port (`SERVER_URL` port part; 80/443 when absent).
    public var port: Int
    /// `wss`/`https` instead of `ws`/`http` (`STOMP_SECURE`, or a `wss://`/`https://` `SERVER_URL`).
    public var secure: Bool
    /// WebSocket endpoint path (`STOMP_WS_PATH`, default `/ws-stomp`).
    public var webSocketPath: String
    /// WebSocket subprotocols offered (`STOMP_SUBPROTOCOLS`, default `v12.stomp,v11.stomp,v10.stomp`).
    public var subprotocols: [String]
    /// Extra WebSocket upgrade headers (`STOMP_WS_HEADERS`, `Name: value` pairs separated by `;`).
    public var webSocketHeaders: [(String, String)]

    // MARK: Auth
    /// Access token (`TOKEN`); filled by ``prepared(http:)`` from `EMAIL`/`PASSWORD` when absent.
    public var token: String?
    /// Login e-mail (`EMAIL`).
    public var email: String?
    /// Login password (`PASSWORD`).
    public var password: String?
    /// Login path (`LOGIN_PATH`, default `/api/v1/auth/login`; body `{"email","password"}`).
    public var loginPath: String
    /// Dotted JSON path of the token in the login response (`TOKEN_JSON_PATH`; default: the first of
    /// `accessToken`, `data.accessToken`, `token`, `access_token`, `data.token`).
    public var tokenJSONPath: String?
    /// Header carrying the token (`STOMP_AUTH_HEADER`, default `Authorization`).
    public var authHeader: String
    /// Scheme before the token (`STOMP_AUTH_SCHEME`, default `Bearer`; empty for the bare token).
    public var authScheme: String
    /// Where the token goes (`STOMP_AUTH_IN`: connect, handshake, both, none; default connect).
    public var authIn: AuthPlacement

    // MARK: Room
    /// Room ids (`ROOM_ID`, comma-separated for several rooms; worker n joins room n mod count).
    /// When absent ``prepared(http:timeout:)`` creates ``roomCount`` rooms (`CREATE_NEW_ROOM=true`)
    /// or picks the first room listed at ``roomsPath``.
    public var roomIds: [String]
    /// The first room id (the seeds' single `ROOM_ID`).
    public var roomId: String? {
        get { roomIds.first }
        set { roomIds = newValue.map { [$0] } ?? [] }
    }
    /// Rooms to create with `CREATE_NEW_ROOM=true` (`STOMP_ROOMS`, default 1). Every message is
    /// broadcast to its room only, so N workers in k rooms make N²/k deliveries per interval
    /// instead of N².
    public var roomCount: Int
    /// Create a new group room (`CREATE_NEW_ROOM`).
    public var createNewRoom: Bool
    /// Members of the new room (`MEMBER_IDS`, comma-separated).
    public var memberIds: [Int]
    /// Group-room creation path (`CREATE_ROOM_PATH`, default `/api/v1/chat/rooms/group`).
    public var createRoomPath: String
    /// Room list path for picking a room (`ROOMS_PATH`, default `/api/v1/chat/rooms`).
    public var roomsPath: String

    // MARK: STOMP
    /// Subscription destination; `{roomId}` is replaced (`STOMP_SUBSCRIBE_PREFIX`, default
    /// `/sub/chat/room/`: the room id is appended unless the value contains `{roomId}`).
    public var subscribeDestination: String
    /// SEND destination; `{roomId}` is replaced (`STOMP_PUBLISH_DESTINATION`, default `/pub/chat/message`).
    public var publishDestination: String
    /// CONNECT `host` header, the virtual host (`STOMP_HOST`, default the server host; RabbitMQ wants `/`).
    public var stompHost: String?
    /// Extra CONNECT headers (`STOMP_CONNECT_HEADERS`, `name:value` pairs separated by `;`), and
    /// `login`/`passcode` from `STOMP_LOGIN`/`STOMP_PASSCODE`.
    public var connectHeaders: [(String, String)]
    /// Heart-beats offered (`STOMP_HEARTBEAT_MS` `send,receive`, default `10000,10000`; `0,0` off).
    public var heartBeat: (send: Duration, receive: Duration)
    /// Ask for a RECEIPT on SUBSCRIBE and wait for it before sending (`STOMP_SUBSCRIBE_RECEIPT`, default false).
    public var subscribeReceipt: Bool
    /// `content-type` of SEND frames (`STOMP_CONTENT_TYPE`, default `application/json`).
    public var contentType: String
    /// The message body (`STOMP_MESSAGE_TEMPLATE`); placeholders `{messageId}`, `{roomId}`,
    /// `{roomIdJSON}` (a number when numeric, else a quoted string), `{workerId}`, `{seq}`,
    /// `{timestamp}` (ms). The message id must come back in the broadcast: it is how RTT is matched.
    public var messageTemplate: String

    // MARK: Timing
    /// Time between a worker's messages (`MESSAGE_INTERVAL_MS`, default 1000).
    public var messageInterval: Duration
    /// A message not echoed back within this counts as a `message_timeout` failure
    /// (`MESSAGE_TIMEOUT_MS`, default 30000).
    public var messageTimeout: Duration
    /// WebSocket + STOMP handshake time-out (`CONNECT_TIMEOUT_MS`, default 30000).
    public var connectTimeout: Duration
    /// At the end of the run, how long a worker waits for its last echoes before disconnecting
    /// (`STOMP_DRAIN_MS`, default 2000). Messages still pending then are counted in
    /// `messages_pending_at_stop`, not as failures.
    public var drainAtStop: Duration
    /// Reconnect policy (`ENABLE_RECONNECT`, `MAX_RECONNECT_ATTEMPTS` 5, `INITIAL_BACKOFF_MS` 1000,
    /// `MAX_BACKOFF_MS` 30000, `RECONNECT_JITTER` 0.5); nil when reconnecting is off (the default).
    public var reconnect: Backoff?
    /// Per-process nonce in message ids, so shards sharing a room never match each other's messages.
    public var runTag: String

    /// Reads the configuration. `SERVER_URL` (`host:port`, a scheme is allowed) is required.
    /// A `ws://`/`wss://` `SERVER_URL` may carry the WebSocket endpoint's path
    /// (`ws://host:15674/ws`), used instead of `STOMP_WS_PATH` (both set and different: an
    /// error); a path after `http(s)://` or no scheme is an error naming `STOMP_WS_PATH` and the
    /// API path settings, since the server's API and WebSocket paths are set apart.
    public init(settings s: Settings) throws {
        try s.checkLoaded()
        let server = try ServerLocation(s)
        host = server.host; port = server.port; secure = server.secure; webSocketPath = server.webSocketPath
        subprotocols = s.string("STOMP_SUBPROTOCOLS") == nil ? StompClient.webSocketSubprotocols : s.list("STOMP_SUBPROTOCOLS")
        webSocketHeaders = try s.headers("STOMP_WS_HEADERS")

        token = s.string("TOKEN")
        email = s.string("EMAIL")
        password = s.string("PASSWORD")
        loginPath = Self.path(s.string("LOGIN_PATH") ?? "/api/v1/auth/login")
        tokenJSONPath = s.string("TOKEN_JSON_PATH")
        authHeader = s.string("STOMP_AUTH_HEADER") ?? "Authorization"
        authScheme = s.values["STOMP_AUTH_SCHEME"] ?? "Bearer"
        if let a = s.string("STOMP_AUTH_IN") {
            guard let p = AuthPlacement(rawValue: a.lowercased()) else {
                throw ConfigError(variable: "STOMP_AUTH_IN", value: a, expected: "connect, handshake, both or none")
            }
            authIn = p
        } else { authIn = .connect }

        roomIds = s.list("ROOM_ID")
        roomCount = try s.int("STOMP_ROOMS", in: 1...100_000) ?? 1
        createNewRoom = try s.bool("CREATE_NEW_ROOM") ?? false
        memberIds = try s.intList("MEMBER_IDS")
        createRoomPath = Self.path(s.string("CREATE_ROOM_PATH") ?? "/api/v1/chat/rooms/group")
        roomsPath = Self.path(s.string("ROOMS_PATH") ?? "/api/v1/chat/rooms")

        let prefix = s.string("STOMP_SUBSCRIBE_PREFIX") ?? "/sub/chat/room/"
        subscribeDestination = prefix.contains("{roomId}") ? prefix : prefix + "{roomId}"
        publishDestination = s.string("STOMP_PUBLISH_DESTINATION") ?? "/pub/chat/message"
        stompHost = s.string("STOMP_HOST") ?? server.host
        connectHeaders = try s.headers("STOMP_CONNECT_HEADERS")
        if let l = s.string("STOMP_LOGIN") { connectHeaders.append(("login", l)) }
        if let p = s.string("STOMP_PASSCODE") { connectHeaders.append(("passcode", p)) }
        heartBeat = try Self.heartBeat(s)
        subscribeReceipt = try s.bool("STOMP_SUBSCRIBE_RECEIPT") ?? false
        contentType = s.string("STOMP_CONTENT_TYPE") ?? "application/json"
        messageTemplate = s.string("STOMP_MESSAGE_TEMPLATE") ?? StompChatConfiguration.defaultMessageTemplate

        messageInterval = try s.positiveDuration("MESSAGE_INTERVAL_MS", default: .milliseconds(1000))
        messageTimeout = try s.positiveDuration("MESSAGE_TIMEOUT_MS", default: .seconds(30))
        connectTimeout = try s.positiveDuration("CONNECT_TIMEOUT_MS", default: .seconds(30))
        drainAtStop = try s.duration("STOMP_DRAIN_MS") ?? .seconds(2)
        if try s.bool("ENABLE_RECONNECT") ?? false {
            reconnect = Backoff(initial: try s.positiveDuration("INITIAL_BACKOFF_MS", default: .seconds(1)),
                                maximum: try s.positiveDuration("MAX_BACKOFF_MS", default: .seconds(30)),
                                maxAttempts: try s.int("MAX_RECONNECT_ATTEMPTS", in: 0...1_000_000) ?? 5,
                                jitter: try s.double("RECONNECT_JITTER", in: 0...1) ?? 0.5)
        } else {
            reconnect = nil
        }
        var g = SystemRandomNumberGenerator()
        runTag = String(UInt32.random(in: 0x1000_0000...UInt32.max, using: &g), radix: 36)
        _ = try MessageTemplate(messageTemplate)   // reject a template without {messageId} now
    }

    /// The default SEND body: a Spring-style chat message carrying the id twice (as `messageId`
    /// and inside `message`), so servers that rebuild the DTO from the text still echo it.
    public static let defaultMessageTemplate =
        #"{"type":"TALK","roomId":{roomIdJSON},"messageId":"{messageId}","message":"load test {messageId}","sentAt":{timestamp}}"#

    /// `ws(s)://host:port/path`.
    public var webSocketURL: String { "\(secure ? "wss" : "ws")://\(hostForURL):\(port)\(webSocketPath)" }
    /// `http(s)://host:port` (login and room API).
    public var httpBaseURL: String { "\(secure ? "https" : "http")://\(hostForURL):\(port)" }
    private var hostForURL: String { host.contains(":") ? "[\(host)]" : host }

    /// The subscription destination for the (first) room.
    public var roomTopic: String { topic(room: roomId ?? "") }
    /// The SEND destination for the (first) room.
    public var roomPublishDestination: String { publishDestination(room: roomId ?? "") }
    /// The subscription destination for `room`.
    public func topic(room: String) -> String { subscribeDestination.replacingAll("{roomId}", with: room) }
    /// The SEND destination for `room`.
    public func publishDestination(room: String) -> String { publishDestination.replacingAll("{roomId}", with: room) }
    /// The room of worker `workerId` (1-based): rooms are dealt round-robin.
    public func room(forWorker workerId: Int) -> String {
        roomIds.isEmpty ? "" : roomIds[(max(1, workerId) - 1) % roomIds.count]
    }

    /// The `Authorization: Bearer …` (or configured) header, when a token is known.
    var authHeaderPair: (String, String)? {
        guard let t = token, authIn != .none else { return nil }
        return (authHeader, authScheme.isEmpty ? t : "\(authScheme) \(t)")
    }

    /// CONNECT headers actually sent (extra headers plus the token when it goes in CONNECT).
    public var effectiveConnectHeaders: [(String, String)] {
        var h = connectHeaders
        if authIn == .connect || authIn == .both, let a = authHeaderPair { h.insert(a, at: 0) }
        return h
    }

    /// WebSocket upgrade headers actually sent.
    public var effectiveWebSocketHeaders: [(String, String)] {
        var h = webSocketHeaders
        if authIn == .handshake || authIn == .both, let a = authHeaderPair { h.insert(a, at: 0) }
        return h
    }

    /// Facts for reports, without secrets.
    public var description: [String: String] {
        var d = ["server": "\(host):\(port)", "websocket_url": webSocketURL, "room_id": roomIds.isEmpty ? "?" : roomIds.joined(separator: ","),
                 "subscribe": roomTopic, "publish": roomPublishDestination,
                 "message_interval_ms": String(messageInterval.milliseconds),
                 "message_timeout_ms": String(messageTimeout.milliseconds),
                 "reconnect": reconnect.map { "on (max \($0.maxAttempts), \($0.initial.milliseconds)–\($0.maximum.milliseconds) ms, ±\(Int($0.jitter * 100)) %)" } ?? "off",
                 "auth": authDescription]
        if let h = stompHost { d["stomp_host"] = h }
        return d
    }

    /// Which credentials are sent, never their values: `token in connect`, `login/passcode`,
    /// both joined with ` + `, or `none` (the `auth` fact of the reports).
    public var authDescription: String {
        var kinds: [String] = []
        if token != nil && authIn != .none { kinds.append("token in \(authIn.rawValue)") }
        let names = Set(connectHeaders.map { $0.0.lowercased() })
        if names.contains("passcode") || names.contains("login") { kinds.append("login/passcode") }
        return kinds.isEmpty ? "none" : kinds.joined(separator: " + ")
    }

    // MARK: Parsing helpers

    static func path(_ p: String) -> String { p.hasPrefix("/") ? p : "/" + p }



    static func heartBeat(_ s: Settings) throws -> (send: Duration, receive: Duration) {
        guard let raw = s.string("STOMP_HEARTBEAT_MS") else { return (.seconds(10), .seconds(10)) }
        let parts = raw.split(separator: ",").map { Int($0.lkTrimmed(" ")) }
        let day = 86_400_000
        guard parts.count == 2, let a = parts[0], let b = parts[1], (0...day).contains(a), (0...day).contains(b) else {
            throw ConfigError(variable: "STOMP_HEARTBEAT_MS", value: raw,
                              expected: "`send,receive` in ms (each 0...86400000), e.g. 10000,10000 (0,0 disables)")
        }
        return (.milliseconds(a), .milliseconds(b))
    }
}

/// The seeds' stage plans for the STOMP chat scenario (written at the seed's size; the default
/// smoke scale shrinks them).
public enum StompChatProfile: String, Sendable, CaseIterable {
    /// Seed 000: 300 "initial" over 10 s, to 600 "peak" over 10 s, to 900 "final" over 10 s.
    case seed000
    /// Seed 001: 1,000 over 60 s, 3,000 over 300 s, 5,000 over 300 s, 10,000 over 600 s.
    case seed001

    /// Reads `LOADKIT_STOMP_PROFILE` (`seed000`, the default, or `seed001`).
    public init(settings: Settings) throws {
        guard let v = settings.string("LOADKIT_STOMP_PROFILE") else { self = .seed000; return }
        guard let p = StompChatProfile(rawValue: v.lowercased()) else {
            throw ConfigError(variable: "LOADKIT_STOMP_PROFILE", value: v, expected: "seed000 or seed001")
        }
        self = p
    }

    /// The ramp stages (cumulative targets).
    public var stages: [Stage] {
        switch self {
        case .seed000:
            return [Stage("initial", to: 300, over: .seconds(10)), Stage("peak", to: 600, over: .seconds(10)),
                    Stage("final", to: 900, over: .seconds(10))]
        case .seed001:
            return [Stage("warm-up", to: 1000, over: .seconds(60)), Stage("medium", to: 3000, over: .seconds(300)),
                    Stage("high", to: 5000, over: .seconds(300)), Stage("max", to: 10_000, over: .seconds(600))]
        }
    }
}

extension String {
    func replacingAll(_ target: String, with value: String) -> String {
        guard contains(target) else { return self }
        return split(separator: target, omittingEmptySubsequences: false).joined(separator: value)
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 { Int64(nanoseconds / 1_000_000) }
}

/// Where the chat server is, from `SERVER_URL` (+ `STOMP_SECURE`, `STOMP_WS_PATH`): host, port,
/// TLS, and the WebSocket endpoint's path.
private struct ServerLocation {
    let host: String
    let port: Int
    let secure: Bool
    let webSocketPath: String

    init(_ s: Settings) throws {
        guard let server = s.string("SERVER_URL") else {
            throw ConfigError(variable: "SERVER_URL", value: "", expected: "host:port of the chat server (no scheme), e.g. localhost:8080")
        }
        var rest = Substring(server.lkTrimmed(" "))
        var secure = try s.bool("STOMP_SECURE") ?? false
        var scheme: String?
        if let r = rest.firstRange(of: "://") {
            let sc = rest[..<r.lowerBound].lowercased()
            guard ["ws", "wss", "http", "https"].contains(sc) else {
                throw ConfigError(variable: "SERVER_URL", value: server, expected: "host:port (or ws://, wss://, http://, https://)")
            }
            scheme = sc
            secure = secure || sc == "wss" || sc == "https"
            rest = rest[r.upperBound...]
        }
        var urlPath: String?
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
            let p = String(rest[slash...])
            if p != "/" { urlPath = p.hasPrefix("/") ? p : "/" + p }
            rest = rest[..<slash]
        }
        var hostPart = String(rest), port = secure ? 443 : 80
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw ConfigError(variable: "SERVER_URL", value: server, expected: "host:port with a port 1...65535")
            }
            port = p; hostPart = String(rest[..<colon])
        }
        if hostPart.hasPrefix("["), hostPart.hasSuffix("]") { hostPart = String(hostPart.dropFirst().dropLast()) }
        guard !hostPart.isEmpty else { throw ConfigError(variable: "SERVER_URL", value: server, expected: "host:port") }
        host = hostPart; self.port = port; self.secure = secure

        if let p = urlPath {
            guard scheme == "ws" || scheme == "wss" else {
                throw ConfigError(variable: "SERVER_URL", value: server,
                                  expected: "host:port without a path: the WebSocket path goes in STOMP_WS_PATH (or write ws://\(rest)\(p) "
                                      + "to use \(p) as the WebSocket endpoint); API paths go in LOGIN_PATH, CREATE_ROOM_PATH and ROOMS_PATH")
            }
            if let w = s.string("STOMP_WS_PATH"), StompChatConfiguration.path(w) != p {
                throw ConfigError(variable: "STOMP_WS_PATH", value: w,
                                  expected: "the path of SERVER_URL (\(p)), or unset: SERVER_URL's path is the WebSocket endpoint")
            }
            webSocketPath = p
        } else {
            webSocketPath = StompChatConfiguration.path(s.string("STOMP_WS_PATH") ?? "/ws-stomp")
        }
    }
}
