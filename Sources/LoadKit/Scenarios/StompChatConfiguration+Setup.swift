import LoadKitTransport
import LoadKitProtocols
import LoadKitEngine

extension StompChatConfiguration {
    /// The set-up before the workers start (seed 001): logs in over HTTP with `EMAIL`/`PASSWORD`
    /// when no `TOKEN` is given, and creates a group room (`CREATE_NEW_ROOM=true` with
    /// `MEMBER_IDS`) or picks the first listed room when no `ROOM_ID` is given. Returns the
    /// configuration with ``token`` and ``roomIds`` filled. Errors name the step and the HTTP
    /// status, never the credentials: the token obtained is registered with ``Secrets``, and
    /// server bodies are quoted through ``Secrets/excerpt(_:limit:)``.
    public func prepared(http: HTTPClient? = nil, timeout: Duration = .seconds(30)) async throws -> StompChatConfiguration {
        var c = self
        let needsHTTP = (c.token == nil && c.email != nil) || c.roomId == nil || c.createNewRoom
        guard needsHTTP else { return c }
        let client = http ?? HTTPClient(maxConnectionsPerHost: 2)
        defer { if http == nil { client.shutdown() } }

        if c.token == nil, let email = c.email {
            guard let password = c.password else {
                throw ConfigError(variable: "PASSWORD", value: "", expected: "the password for EMAIL (or set TOKEN)")
            }
            let body = "{\"email\":\(JSONQuoting.quoted(email)),\"password\":\(JSONQuoting.quoted(password))}"
            let r = try await client.post(c.httpBaseURL + c.loginPath, body: Array(body.utf8),
                                          headers: ["Content-Type": "application/json"], timeout: timeout)
            guard (200...299).contains(r.status) else {
                throw ScriptFailure("login at \(c.loginPath) answered HTTP \(r.status) (check EMAIL/PASSWORD or set TOKEN)",
                                    kind: "login_failed", source: .server)
            }
            let paths = c.tokenJSONPath.map { [$0] } ?? ["accessToken", "data.accessToken", "token", "access_token", "data.token"]
            guard let t = paths.lazy.compactMap({ r.jsonValue(at: $0) }).first, !t.isEmpty else {
                throw ScriptFailure("login at \(c.loginPath) returned no token at \(paths.joined(separator: " / ")) (set TOKEN_JSON_PATH)",
                                    kind: "login_failed", source: .server)
            }
            Secrets.register(t)
            c.token = t
        }

        var headers: HTTPHeaders = ["Content-Type": "application/json"]
        if let t = c.token { headers.add("Authorization", "Bearer \(t)") }
        if c.createNewRoom {
            let ids = c.memberIds.map { String($0) }.joined(separator: ",")
            var created: [String] = []
            for n in 1...c.roomCount {
                let body = "{\"roomName\":\"loadkit-\(c.runTag)-\(n)\",\"memberIds\":[\(ids)]}"
                let r = try await client.post(c.httpBaseURL + c.createRoomPath, body: Array(body.utf8), headers: headers, timeout: timeout)
                guard (200...299).contains(r.status) else {
                    throw ScriptFailure("creating a room at \(c.createRoomPath) answered HTTP \(r.status): \(Secrets.excerpt(r.bodyString))",
                                        kind: "room_create_failed", source: .server)
                }
                guard let id = ["roomId", "data.roomId", "id", "data.id", "chatRoomId", "data.chatRoomId"].lazy
                    .compactMap({ r.jsonValue(at: $0) }).first else {
                    throw ScriptFailure("room creation at \(c.createRoomPath) returned no roomId (body: \(Secrets.excerpt(r.bodyString)))",
                                        kind: "room_create_failed", source: .server)
                }
                created.append(id)
            }
            c.roomIds = created
        } else if c.roomId == nil {
            let r = try await client.get(c.httpBaseURL + c.roomsPath, headers: headers, timeout: timeout)
            let id = (200...299).contains(r.status)
                ? ["0.roomId", "data.0.roomId", "0.id", "data.0.id", "content.0.roomId"].lazy.compactMap({ r.jsonValue(at: $0) }).first
                : nil
            guard let id else {
                throw ConfigError(variable: "ROOM_ID", value: "",
                                  expected: "a room id (no room could be picked from \(c.roomsPath): HTTP \(r.status)); or CREATE_NEW_ROOM=true with MEMBER_IDS")
            }
            c.roomId = id
        }
        return c
    }
}
