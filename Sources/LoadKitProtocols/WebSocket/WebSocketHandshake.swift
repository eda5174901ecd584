import LoadKitTransport

/// The opening handshake (RFC 6455 §4) as pure functions: the client's request and the check of
/// the server's answer, and the server's check of a request and its 101 answer.
package enum WebSocketHandshake {
    /// A client's upgrade request ready to send, with the key needed to check the answer.
    package struct ClientRequest: Sendable {
        /// The request head bytes (`GET … HTTP/1.1` through the empty line).
        public var bytes: [UInt8]
        /// The fresh `Sec-WebSocket-Key` sent.
        public var key: String
        /// The subprotocols offered, in preference order.
        public var offeredSubprotocols: [String]
    }

    /// Builds the upgrade request for `endpoint` (path and query string as given) with a fresh
    /// random key. `headers` are added as given (e.g. `Authorization`, `Origin`, `Cookie`); headers
    /// the handshake owns (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-*`) are taken from
    /// `headers` only for `Host` and `Origin`.
    public static func clientRequest(endpoint: Endpoint, headers: [(String, String)] = [],
                                     subprotocols: [String] = [], key: String = WebSocketHandshakeKeys.makeKey()) -> ClientRequest {
        var s = "GET \(endpoint.requestTarget) HTTP/1.1\r\n"
        let owned: Set<String> = ["upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                                  "sec-websocket-protocol", "sec-websocket-extensions"]
        let hasHost = headers.contains { $0.0.lowercased() == "host" }
        if !hasHost { s += "Host: \(endpoint.hostHeader)\r\n" }
        s += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        if !subprotocols.isEmpty { s += "Sec-WebSocket-Protocol: \(subprotocols.joined(separator: ", "))\r\n" }
        for (name, value) in headers where !owned.contains(name.lowercased()) {
            // CR/LF in a value would split the head: drop such characters rather than inject.
            let clean = String(String.UnicodeScalarView(value.unicodeScalars.filter { $0 != "\r" && $0 != "\n" }))
            s += "\(name): \(clean)\r\n"
        }
        s += "\r\n"
        return ClientRequest(bytes: Array(s.utf8), key: key, offeredSubprotocols: subprotocols)
    }

    /// Checks the server's answer to `request`; returns the chosen subprotocol (nil when none).
    /// `body` is the start of the response body (for the error message of a rejection).
    public static func validate(response head: HTTPResponseHead, for request: ClientRequest,
                                body: [UInt8] = []) throws(WebSocketError) -> String? {
        guard head.status == 101 else {
            throw WebSocketError.handshakeStatus(head.status, reason: head.reason, body: bodyExcerpt(body))
        }
        guard head.headers.containsToken("websocket", in: "Upgrade") else {
            throw WebSocketError.handshakeInvalid("Upgrade header is '\(head.headers["Upgrade"] ?? "")', not websocket")
        }
        guard head.headers.containsToken("upgrade", in: "Connection") else {
            throw WebSocketError.handshakeInvalid("Connection header does not contain 'Upgrade'")
        }
        guard let accept = head.headers["Sec-WebSocket-Accept"] else {
            throw WebSocketError.handshakeInvalid("Sec-WebSocket-Accept is missing")
        }
        guard accept.trimmingASCIISpaces() == WebSocketHandshakeKeys.accept(forKey: request.key) else {
            throw WebSocketError.handshakeInvalid("Sec-WebSocket-Accept does not match the key sent")
        }
        if let ext = head.headers["Sec-WebSocket-Extensions"], !ext.trimmingASCIISpaces().isEmpty {
            throw WebSocketError.handshakeInvalid("server selected extensions '\(ext)' that were not offered")
        }
        guard let proto = head.headers["Sec-WebSocket-Protocol"]?.trimmingASCIISpaces(), !proto.isEmpty else {
            return nil
        }
        guard request.offeredSubprotocols.contains(String(proto)) else {
            throw WebSocketError.handshakeInvalid("server selected subprotocol '\(proto)' that was not offered")
        }
        return String(proto)
    }

    /// Up to 200 characters of a rejection's body (``bodyExcerpt(_:limit:)``), empty when none.
    static func bodyExcerpt(_ body: [UInt8]) -> String { LoadKitProtocols.bodyExcerpt(body, limit: 200) ?? "" }

    // MARK: server side

    /// Why a server refuses an upgrade request, with the HTTP status to answer.
    public struct Rejection: Error, Sendable, Hashable {
        /// 400 for a malformed request, 426 for a wrong version.
        public var status: Int
        /// The cause, sent as the response body.
        public var message: String
        /// The complete response to send before closing.
        public var responseBytes: [UInt8] {
            let body = Array(message.utf8)
            var s = "HTTP/1.1 \(status) \(status == 426 ? "Upgrade Required" : "Bad Request")\r\n"
            if status == 426 { s += "Sec-WebSocket-Version: 13\r\n" }
            s += "Content-Type: text/plain\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            return Array(s.utf8) + body
        }
    }

    /// A server's acceptance of an upgrade request.
    public struct Acceptance: Sendable, Hashable {
        /// The `101 Switching Protocols` response head to send.
        public var responseBytes: [UInt8]
        /// The subprotocol chosen (the client's first offer that the server supports).
        public var subprotocol: String?
    }

    /// Validates an upgrade request; returns its key and the chosen subprotocol.
    static func check(_ head: HTTPRequestHead, supportedSubprotocols: [String]) -> Result<(key: String, chosen: String?), Rejection> {
        guard head.method == .GET else { return .failure(Rejection(status: 400, message: "WebSocket upgrade must use GET")) }
        guard head.version.major == 1 && head.version.minor >= 1 else {
            return .failure(Rejection(status: 400, message: "WebSocket upgrade needs HTTP/1.1"))
        }
        guard head.headers.containsToken("websocket", in: "Upgrade") else {
            return .failure(Rejection(status: 400, message: "missing 'Upgrade: websocket'"))
        }
        guard head.headers.containsToken("upgrade", in: "Connection") else {
            return .failure(Rejection(status: 400, message: "missing 'Connection: Upgrade'"))
        }
        guard head.headers["Sec-WebSocket-Version"]?.trimmingASCIISpaces() == "13" else {
            return .failure(Rejection(status: 426, message: "unsupported Sec-WebSocket-Version (13 required)"))
        }
        guard let key = head.headers["Sec-WebSocket-Key"].map({ String($0.trimmingASCIISpaces()) }),
              WebSocketHandshakeKeys.isValidKey(key) else {
            return .failure(Rejection(status: 400, message: "missing or malformed Sec-WebSocket-Key"))
        }
        var offered: [String] = []
        for v in head.headers.values(for: "Sec-WebSocket-Protocol") {
            for p in v.split(separator: ",") { offered.append(String(p.trimmingASCIISpaces())) }
        }
        return .success((key, supportedSubprotocols.first { offered.contains($0) }))
    }

    /// Checks an upgrade request (GET, HTTP/1.1, Upgrade/Connection tokens, version 13, a valid
    /// 16-byte key) and builds the 101 answer. `supportedSubprotocols` in the server's order is
    /// matched against the client's offer; `extraHeaders` are added to the answer.
    public static func accept(_ head: HTTPRequestHead, supportedSubprotocols: [String] = [],
                              extraHeaders: [(String, String)] = []) -> Result<Acceptance, Rejection> {
        let checked: (key: String, chosen: String?)
        switch check(head, supportedSubprotocols: supportedSubprotocols) {
        case .failure(let r): return .failure(r)
        case .success(let c): checked = c
        }
        let key = checked.key, chosen = checked.chosen
        var s = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        s += "Sec-WebSocket-Accept: \(WebSocketHandshakeKeys.accept(forKey: key))\r\n"
        if let chosen { s += "Sec-WebSocket-Protocol: \(chosen)\r\n" }
        for (n, v) in extraHeaders { s += "\(n): \(String(String.UnicodeScalarView(v.unicodeScalars.filter { $0 != "\r" && $0 != "\n" })))\r\n" }
        s += "\r\n"
        return .success(Acceptance(responseBytes: Array(s.utf8), subprotocol: chosen))
    }
}
