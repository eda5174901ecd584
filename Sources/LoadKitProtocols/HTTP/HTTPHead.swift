import LoadKitTransport

/// An HTTP request method. Any token is representable; common ones are static members.
public struct HTTPMethod: RawRepresentable, Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The method token as sent (`GET`).
    public var rawValue: String
    /// Wraps a method token.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Wraps a method token literal.
    public init(stringLiteral value: String) { self.rawValue = value }

    /// `GET`
    public static let GET = HTTPMethod(rawValue: "GET")
    /// `HEAD`
    public static let HEAD = HTTPMethod(rawValue: "HEAD")
    /// `POST`
    public static let POST = HTTPMethod(rawValue: "POST")
    /// `PUT`
    public static let PUT = HTTPMethod(rawValue: "PUT")
    /// `PATCH`
    public static let PATCH = HTTPMethod(rawValue: "PATCH")
    /// `DELETE`
    public static let DELETE = HTTPMethod(rawValue: "DELETE")
    /// `OPTIONS`
    public static let OPTIONS = HTTPMethod(rawValue: "OPTIONS")

    /// `POST`, `PUT` or `PATCH`: sent with a `Content-Length` even when the body is empty.
    /// (Compared with literals: `method == .POST` copied the static value on every request.)
    var expectsBody: Bool {
        switch rawValue {
        case "POST", "PUT", "PATCH": true
        default: false
        }
    }

    /// Idempotent per RFC 9110 §9.2.2: safe to retry once on a stale keep-alive connection.
    public var isIdempotent: Bool {
        switch rawValue {
        case "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE": true
        default: false
        }
    }

    public var description: String { rawValue }
}

/// An HTTP version (`HTTP/1.1` is `major 1, minor 1`).
package struct HTTPVersion: Sendable, Hashable, CustomStringConvertible {
    /// Major version digit.
    public var major: Int
    /// Minor version digit.
    public var minor: Int
    /// Creates a version.
    public init(major: Int, minor: Int) { self.major = major; self.minor = minor }
    /// HTTP/1.1
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)
    /// HTTP/1.0
    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    public var description: String { "HTTP/\(major).\(minor)" }
}

/// The head of an HTTP response: status line and headers.
package struct HTTPResponseHead: Sendable, Hashable {
    /// Protocol version of the response.
    public var version: HTTPVersion
    /// Status code (100–999).
    public var status: Int
    /// Reason phrase (may be empty).
    public var reason: String
    /// Header fields.
    public var headers: HTTPHeaders

    /// Creates a response head.
    public init(version: HTTPVersion = .http1_1, status: Int, reason: String = "", headers: HTTPHeaders = HTTPHeaders()) {
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
    }

    /// Whether the connection may carry another exchange after this response
    /// (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    public var keepAlive: Bool { connectionKeepAlive(version: version, headers: headers) }
}

/// The head of an HTTP request: request line and headers.
package struct HTTPRequestHead: Sendable, Hashable {
    /// The method.
    public var method: HTTPMethod
    /// The request target as sent (usually path and query).
    public var target: String
    /// Protocol version of the request.
    public var version: HTTPVersion
    /// Header fields.
    public var headers: HTTPHeaders

    /// Creates a request head.
    public init(method: HTTPMethod, target: String, version: HTTPVersion = .http1_1, headers: HTTPHeaders = HTTPHeaders()) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
    }

    /// The target's path (before `?`).
    public var path: Substring {
        if let q = target.firstIndex(of: "?") { return target[..<q] }
        return target[...]
    }

    /// The target's query (after `?`), or nil.
    public var query: Substring? {
        if let q = target.firstIndex(of: "?") { return target[target.index(after: q)...] }
        return nil
    }

    /// Whether the client allows another request on this connection.
    public var keepAlive: Bool { connectionKeepAlive(version: version, headers: headers) }
}

func connectionKeepAlive(version: HTTPVersion, headers: HTTPHeaders) -> Bool {
    if version.major == 1 && version.minor >= 1 { return !headers.containsToken("close", in: "Connection") }
    return headers.containsToken("keep-alive", in: "Connection")
}
