import LoadKitTransport

/// A parsed `http`, `https`, `ws` or `wss` URL: where to connect and what to ask for.
///
/// ```swift
/// let e = try Endpoint("ws://127.0.0.1:8080/ws?room=1")
/// e.host            // "127.0.0.1"
/// e.requestTarget   // "/ws?room=1"
/// let s = try Endpoint("chat.local:8080/ws", defaultScheme: .ws)   // SERVER_URL without scheme
/// ```
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// The URL schemes LoadKit speaks.
    public enum Scheme: String, Sendable, Hashable, CaseIterable {
        /// Plain HTTP.
        case http
        /// HTTP over TLS.
        case https
        /// WebSocket.
        case ws
        /// WebSocket over TLS.
        case wss

        /// True for `https` and `wss`.
        public var isTLS: Bool { self == .https || self == .wss }
        /// 80 for plain schemes, 443 for TLS ones.
        public var defaultPort: Int { isTLS ? 443 : 80 }
    }

    /// The scheme.
    public var scheme: Scheme
    /// Host name or numeric address, lower-cased; IPv6 literals without brackets.
    public var host: String
    /// The TCP port (the scheme's default when the URL has none).
    public var port: Int
    /// The path, always starting with `/`.
    public var path: String
    /// The query without `?`, or nil when the URL has none.
    public var query: String?

    /// Parses `url`. A bare `host:port[/path]` (no `://`) takes `defaultScheme`; a scheme name
    /// followed by `//` without the colon (`ws//host/…`) is rejected, not read as host `ws`.
    /// Throws ``HTTPError/badURL(input:reason:)`` naming the input (query and credentials redacted).
    /// Registers the values of credential-named query parameters as secrets (reports mask them).
    public init(_ url: String, defaultScheme: Scheme = .http) throws(HTTPError) {
        let input = url.trimmingASCIISpaces()
        func fail(_ reason: String) -> HTTPError { .badURL(input: Endpoint.redact(String(input)), reason: reason) }
        guard !input.isEmpty else { throw fail("empty URL") }
        var rest = Substring(input)
        // `ws//host:8765/echo`, the colon forgotten: read as a bare host it would be host `ws` with
        // path `//host:8765/echo`, failing only after a DNS lookup of 'ws'. Say so at once.
        if let slash = rest.firstIndex(of: "/"), rest[slash...].hasPrefix("//"),
           let sc = Scheme(rawValue: rest[..<slash].lowercased()) {
            throw fail("missing ':' after the scheme '\(sc.rawValue)'? (write \(sc.rawValue)://host/…)")
        }
        if let r = rest.range(of: "://") {
            let s = rest[..<r.lowerBound].lowercased()
            guard let sc = Scheme(rawValue: s) else {
                throw fail("unsupported scheme '\(s)' (use http, https, ws or wss)")
            }
            scheme = sc
            rest = rest[r.upperBound...]
        } else {
            scheme = defaultScheme
        }
        // Drop the fragment; it never goes on the wire.
        if let h = rest.firstIndex(of: "#") { rest = rest[..<h] }
        let authEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authEnd]
        let tail = rest[authEnd...]
        (host, port) = try Self.hostAndPort(authority, scheme: scheme, fail)
        var pathPart = tail
        query = nil
        if let q = tail.firstIndex(of: "?") {
            pathPart = tail[..<q]
            query = String(tail[tail.index(after: q)...])
        }
        path = pathPart.isEmpty ? "/" : String(pathPart)
        let target = path + (query.map { "?" + $0 } ?? "")
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7f }) else {
            throw fail("spaces or control characters in path or query (percent-encode them)")
        }
        if let query { Self.registerSecretParameters(query) }
    }

    /// Registers the values of query parameters named as credentials (`api_key`, `token`,
    /// `ticket`, `client_secret`, … — ``RequestSecrets/isCredentialName(_:)``, the rule request
    /// bodies' fields follow too) as secrets, as header values are (a hash when seen before): a
    /// server echoing one — a 401 page quoting the key it refused — never gets it into an error
    /// example or a report. The query itself is never printed. Other parameters cost a name
    /// comparison.
    static func registerSecretParameters(_ query: String) {
        RequestSecrets.registerQuery(query)
    }

    /// The host and port of a URL's authority (`host`, `host:port`, `[v6]:port`).
    private static func hostAndPort(_ authority: Substring, scheme: Scheme,
                                    _ fail: (String) -> HTTPError) throws(HTTPError) -> (String, Int) {
        var authority = authority
        let host: String
        if authority.contains("@") {
            throw fail("credentials in the URL are not supported; pass an Authorization header")
        }
        guard !authority.isEmpty else { throw fail("missing host") }
        var portText: Substring? = nil
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw fail("unterminated IPv6 literal") }
            let literal = authority[authority.index(after: authority.startIndex)..<close]
            guard !literal.isEmpty, literal.contains(":"),
                  literal.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw fail("invalid IPv6 literal '\(literal)'")
            }
            host = literal.lowercased()
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected text after IPv6 literal") }
                portText = after.dropFirst()
            }
        } else {
            if let colon = authority.lastIndex(of: ":") {
                portText = authority[authority.index(after: colon)...]
                authority = authority[..<colon]
            }
            guard !authority.isEmpty else { throw fail("missing host") }
            guard authority.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_") }) else {
                throw fail("invalid character in host '\(authority)'")
            }
            host = authority.lowercased()
        }
        if let p = portText, !p.isEmpty {
            guard p.count <= 5, p.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(p), (1...65535).contains(n) else {
                throw fail("invalid port '\(p)' (1-65535)")
            }
            return (host, n)
        }
        return (host, scheme.defaultPort)
    }

    /// Builds an endpoint from parts (no validation beyond the port range).
    public init(scheme: Scheme, host: String, port: Int? = nil, path: String = "/", query: String? = nil) {
        self.scheme = scheme
        self.host = host
        self.port = port ?? scheme.defaultPort
        self.path = path.hasPrefix("/") ? path : "/" + path
        self.query = query
    }

    /// True for `https` and `wss`.
    public var isTLS: Bool { scheme.isTLS }

    /// Path and query as sent in the request line (`/chat?room=1`).
    public var requestTarget: String {
        if let q = query { return path + "?" + q }
        return path
    }

    /// The `Host` header value: the host (IPv6 in brackets) and the port unless it is the default.
    public var hostHeader: String {
        let h = isIPv6 ? "[\(host)]" : host
        return port == scheme.defaultPort ? h : "\(h):\(port)"
    }

    /// `host:port` with IPv6 in brackets; the key of a connection pool.
    public var authority: String {
        let h = isIPv6 ? "[\(host)]" : host
        return "\(h):\(port)"
    }

    /// True when the host is an IPv6 literal (written in brackets in URLs and `Host`).
    public var isIPv6: Bool {
        // Over the contiguous bytes: the generic `utf8.contains` was ≈ 0.7 % of a request's CPU
        // (every request's `Host` header asks).
        host.utf8.withContiguousStorageIfAvailable { $0.contains(UInt8(ascii: ":")) } ?? host.utf8.contains(UInt8(ascii: ":"))
    }

    /// Appends the `Host` header value without building a string (request encoding hot path).
    func appendHostHeader(to buffer: inout [UInt8]) {
        let v6 = isIPv6
        if v6 { buffer.append(UInt8(ascii: "[")) }
        appendUTF8(&buffer, host)
        if v6 { buffer.append(UInt8(ascii: "]")) }
        if port != scheme.defaultPort {
            buffer.append(UInt8(ascii: ":"))
            appendDecimal(&buffer, port)
        }
    }

    /// The full URL, query included.
    public var url: String { "\(scheme.rawValue)://\(hostHeader)\(requestTarget)" }

    /// The URL with the query redacted (queries often carry tokens); safe for logs and errors.
    public var description: String { "\(scheme.rawValue)://\(hostHeader)\(path)\(query == nil ? "" : "?…")" }

    /// The same endpoint with another path and query (`/api/login`, `a=1`).
    public func with(path: String, query: String? = nil) -> Endpoint {
        Endpoint(scheme: scheme, host: host, port: port, path: path, query: query)
    }

    /// Resolves the host to a socket address (numeric hosts never touch the resolver).
    @inline(never)  // a small context of its own (see WebSocketClient.connectNow)
    public func resolve() async throws -> SocketAddress {
        try await SocketAddress.resolve(host: host, port: port)
    }

    /// Removes query and user-info from a URL text so error messages never leak secrets.
    package static func redact(_ s: String) -> String {
        var out = Substring(s)
        if let q = out.firstIndex(of: "?") { out = out[..<q] + "?…" }
        // Everything up to the last `@`: a password may hold `/` or `#` (so user-info cannot be
        // bounded by the authority's end); an `@` in a path hides more than needed, never less.
        let start = out.range(of: "://")?.upperBound ?? out.startIndex
        if let at = out[start...].lastIndex(of: "@") {
            out = out[..<start] + "…@" + out[out.index(after: at)...]
        }
        return String(out)
    }
}
