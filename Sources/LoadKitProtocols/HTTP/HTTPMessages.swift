import Foundation
import LoadKitTransport

/// A request for ``HTTPClient``: method, URL, headers and body.
public struct HTTPRequest: Sendable {
    /// The method.
    public var method: HTTPMethod
    /// Where to send it.
    public var endpoint: Endpoint
    /// Extra header fields; `Host` and `Content-Length` are added when absent.
    public var headers: HTTPHeaders
    /// The body (empty for none).
    public var body: [UInt8]
    /// The `name` tag (k6's): requests to `/items/123` and `/items/456` named `/items/{id}`
    /// also aggregate as `http_req_duration{name:/items/{id}}`, `http_reqs{name:…}` and
    /// `http_req_failed{name:…}`, which an SLA can select. Nil: only the untagged metrics.
    public var name: String?
    /// Statuses that count as success for this request; nil: the client's
    /// ``HTTPClient/Configuration/expectedStatuses``.
    public var expectedStatuses: ExpectedStatuses?

    /// Creates a request for a parsed endpoint.
    public init(method: HTTPMethod = .GET, endpoint: Endpoint, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [],
                name: String? = nil, expecting: ExpectedStatuses? = nil) {
        self.method = method
        self.endpoint = endpoint
        self.headers = headers
        self.body = body
        self.name = name
        self.expectedStatuses = expecting
    }

    /// Creates a request for a URL string; throws `bad_url` when it does not parse.
    public init(method: HTTPMethod = .GET, url: String, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [],
                name: String? = nil, expecting: ExpectedStatuses? = nil) throws(HTTPError) {
        self.init(method: method, endpoint: try Endpoint(url), headers: headers, body: body, name: name, expecting: expecting)
    }

    /// Appends the wire form to `buffer` (reused by the client to avoid allocation).
    public func encode(into buffer: inout [UInt8]) {
        Self.encode(method: method, endpoint: endpoint, headers: headers, body: body, into: &buffer)
    }

    /// The wire form of a request given by its parts (the client keeps them apart).
    static func encode(method: HTTPMethod, endpoint: Endpoint, headers: HTTPHeaders,
                       body: [UInt8], into buffer: inout [UInt8]) {
        appendUTF8(&buffer, method.rawValue)
        buffer.append(0x20)
        appendUTF8(&buffer, endpoint.path)
        if let q = endpoint.query {
            buffer.append(UInt8(ascii: "?"))
            appendUTF8(&buffer, q)
        }
        buffer.append(contentsOf: " HTTP/1.1\r\n".utf8)
        var hasHost = false, hasLength = false
        for f in headers.fields {
            if !hasHost && asciiCaseInsensitiveEquals(f.name, "Host") { hasHost = true }
            if !hasLength && (asciiCaseInsensitiveEquals(f.name, "Content-Length") || asciiCaseInsensitiveEquals(f.name, "Transfer-Encoding")) { hasLength = true }
        }
        if !hasHost {
            buffer.append(contentsOf: "Host: ".utf8)
            endpoint.appendHostHeader(to: &buffer)
            buffer.append(contentsOf: "\r\n".utf8)
        }
        for f in headers.fields { appendField(&buffer, f.name, f.value) }
        if !hasLength && (!body.isEmpty || method.expectsBody) {
            buffer.append(contentsOf: "Content-Length: ".utf8)
            appendDecimal(&buffer, body.count)
            buffer.append(contentsOf: "\r\n".utf8)
        }
        buffer.append(contentsOf: "\r\n".utf8)
        buffer.append(contentsOf: body)
    }
}

/// A response received by ``HTTPClient``.
public struct HTTPResponse: Sendable {
    /// The status code.
    public var status: Int
    /// The reason phrase.
    public var reason: String
    /// The protocol version.
    package var version: HTTPVersion
    /// Header fields.
    public var headers: HTTPHeaders
    /// The (de-chunked) body.
    public var body: [UInt8]
    /// Nanoseconds from sending the request to its first response byte (0 when not measured).
    public var timeToFirstByteNanos: UInt64 = 0
    /// Nanoseconds from the call (waiting for a connection included) to the last byte (0 when not measured).
    public var totalNanos: UInt64 = 0
    /// The request's phases as k6 splits them (set by ``HTTPClient``).
    public var timings = HTTPTimings()
    /// The method of the request this answers (set by ``HTTPClient``), for error messages.
    public var requestMethod: HTTPMethod? { origin?.method }
    /// The endpoint of the request this answers (set by ``HTTPClient``), for error messages.
    public var requestEndpoint: Endpoint? { origin?.endpoint }
    /// The request this answers, held by one reference: copying a response does not copy the
    /// request's method and endpoint field by field.
    var origin: PendingRequest?

    /// Creates a response value.
    package init(head: consuming HTTPResponseHead, body: consuming [UInt8] = []) {
        status = head.status
        reason = head.reason
        version = head.version
        headers = head.headers
        self.body = body
    }

    /// The head part (status line and headers).
    package var head: HTTPResponseHead { HTTPResponseHead(version: version, status: status, reason: reason, headers: headers) }

    /// The body as UTF-8 text (invalid bytes replaced).
    public var bodyString: String { String(decoding: body, as: UTF8.self) }

    /// Throws ``HTTPError/status(code:method:endpoint:)`` (`http_<code>`, server) unless the status is in `range`.
    /// Returns the response, so calls chain: `try await client.get(url).requireStatus().decode(T.self)`.
    @discardableResult
    public func requireStatus(_ range: ClosedRange<Int> = 200...299) throws(HTTPError) -> HTTPResponse {
        guard range.contains(status) else {
            throw HTTPError.status(code: status, method: requestMethod?.rawValue ?? "request",
                                   endpoint: requestEndpoint?.description ?? "server")
        }
        return self
    }

    /// Decodes the body as JSON. A body that does not decode throws a ``ScriptFailure``
    /// (`http_bad_json`, source server) naming the type.
    public func decode<T: Decodable>(_ type: T.Type = T.self, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        do { return try decoder.decode(T.self, from: Data(body)) } catch {
            throw ScriptFailure("response body (\(body.count) bytes, HTTP \(status)) is not a valid \(T.self): \(error)",
                                kind: "http_bad_json", source: .server)
        }
    }

    /// The body parsed as JSON (`[String: Any]`, `[Any]`, …), or nil when it is not JSON.
    public var json: Any? { try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) }

    /// A value inside the JSON body by a dotted path (`"data.accessToken"`, `"items.0.id"`),
    /// rendered as text (strings as is, numbers and booleans in JSON form); nil when absent.
    public func jsonValue(at path: String) -> String? {
        var cur: Any? = json
        for key in path.split(separator: ".") {
            if let d = cur as? [String: Any] { cur = d[String(key)] } else if let a = cur as? [Any], let i = Int(key), a.indices.contains(i) {
                cur = a[i]
            } else { return nil }
        }
        switch cur {
        case let s as String: return s
        case let n as NSNumber:
            if CFGetTypeID_isBool(n) { return n.boolValue ? "true" : "false" }
            return n.stringValue
        case nil, is NSNull: return nil
        case let other?:
            guard let d = try? JSONSerialization.data(withJSONObject: other, options: [.sortedKeys]) else { return nil }
            return String(decoding: d, as: UTF8.self)
        }
    }
}

@inline(__always) private func CFGetTypeID_isBool(_ n: NSNumber) -> Bool {
    // On Linux and Darwin JSONSerialization yields booleans as NSNumber with objCType "c".
    String(cString: n.objCType) == "c"
}

/// A request received by ``HTTPServer``.
package struct HTTPServerRequest: Sendable {
    /// The request head.
    public var head: HTTPRequestHead
    /// The (de-chunked) body.
    public var body: [UInt8]
    /// Values of `{name}` segments matched by a ``Router`` route.
    public var pathParameters: [String: String] = [:]
    /// The client's address (set by ``HTTPServer``).
    public var remoteAddress: SocketAddress?

    /// Creates a request value.
    public init(head: HTTPRequestHead, body: [UInt8] = []) {
        self.head = head
        self.body = body
    }

    /// The method.
    public var method: HTTPMethod { head.method }
    /// The target as sent (path and query).
    public var target: String { head.target }
    /// The path (before `?`).
    public var path: String { String(head.path) }
    /// Header fields.
    public var headers: HTTPHeaders { head.headers }
    /// The body as UTF-8 text.
    public var bodyString: String { String(decoding: body, as: UTF8.self) }

    /// Query parameters, percent- and `+`-decoded, in order.
    public var queryItems: [(name: String, value: String)] {
        guard let q = head.query else { return [] }
        return q.split(separator: "&").map { part in
            if let eq = part.firstIndex(of: "=") {
                return (percentDecode(part[..<eq]), percentDecode(part[part.index(after: eq)...]))
            }
            return (percentDecode(part), "")
        }
    }

    /// The first query parameter named `name`.
    public func query(_ name: String) -> String? { queryItems.first { $0.name == name }?.value }

    /// Decodes the body as JSON.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(body))
    }
}

/// A response produced by an ``HTTPServer`` handler.
package struct HTTPServerResponse: Sendable {
    /// The status code.
    public var status: Int
    /// Header fields; `Content-Length` (or chunked framing) and `Connection` are added by the server.
    public var headers: HTTPHeaders
    /// The body.
    public var body: [UInt8]
    /// When set, the body is sent with `Transfer-Encoding: chunked` in chunks of this size.
    public var chunkSize: Int?

    /// Creates a response.
    public init(status: Int = 200, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [], chunkSize: Int? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.chunkSize = chunkSize
    }

    /// A text response (`text/plain; charset=utf-8`).
    public static func text(_ text: String, status: Int = 200) -> HTTPServerResponse {
        HTTPServerResponse(status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: Array(text.utf8))
    }

    /// A JSON response encoding `value`; a value that cannot be encoded gives a 500.
    public static func json(_ value: some Encodable, status: Int = 200) -> HTTPServerResponse {
        guard let data = try? JSONEncoder().encode(value) else { return .text("cannot encode response", status: 500) }
        return HTTPServerResponse(status: status, headers: ["Content-Type": "application/json"], body: Array(data))
    }

    /// Appends the wire form to `buffer`. `keepAlive: false` adds `Connection: close`;
    /// `headRequest` sends the framing headers but no body.
    public func encode(into buffer: inout [UInt8], keepAlive: Bool = true, headRequest: Bool = false) {
        buffer.append(contentsOf: "HTTP/1.1 ".utf8)
        appendDecimal(&buffer, status)
        buffer.append(0x20)
        buffer.append(contentsOf: reasonPhrase(status).utf8)
        buffer.append(contentsOf: "\r\n".utf8)
        let bodyAllowed = status >= 200 && status != 204 && status != 304
        var hasLength = false, hasConnection = false
        for f in headers.fields {
            if asciiCaseInsensitiveEquals(f.name, "Content-Length") || asciiCaseInsensitiveEquals(f.name, "Transfer-Encoding") { hasLength = true }
            if asciiCaseInsensitiveEquals(f.name, "Connection") { hasConnection = true }
            appendField(&buffer, f.name, f.value)
        }
        let chunked = bodyAllowed && !hasLength && chunkSize != nil
        if bodyAllowed && !hasLength {
            if chunked {
                buffer.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8)
            } else {
                buffer.append(contentsOf: "Content-Length: ".utf8)
                appendDecimal(&buffer, body.count)
                buffer.append(contentsOf: "\r\n".utf8)
            }
        }
        if !keepAlive && !hasConnection { buffer.append(contentsOf: "Connection: close\r\n".utf8) }
        buffer.append(contentsOf: "\r\n".utf8)
        guard bodyAllowed && !headRequest else { return }
        if chunked {
            let size = max(1, chunkSize ?? 1)
            var i = 0
            while i < body.count {
                let n = min(size, body.count - i)
                buffer.append(contentsOf: String(n, radix: 16).utf8)
                buffer.append(contentsOf: "\r\n".utf8)
                buffer.append(contentsOf: body[i..<i + n])
                buffer.append(contentsOf: "\r\n".utf8)
                i += n
            }
            buffer.append(contentsOf: "0\r\n\r\n".utf8)
        } else {
            buffer.append(contentsOf: body)
        }
    }
}

/// Appends `text`'s UTF-8 bytes with one copy (the generic `append(contentsOf: text.utf8)` went
/// byte by byte: ≈ 1 % of a request's CPU in `loadkit bench http`).
@inline(__always) func appendUTF8(_ buffer: inout [UInt8], _ text: String) {
    let done: Void? = text.utf8.withContiguousStorageIfAvailable { buffer.append(contentsOf: $0) }
    if done == nil { buffer.append(contentsOf: text.utf8) }
}

@inline(__always) func appendField(_ buffer: inout [UInt8], _ name: String, _ value: String) {
    appendUTF8(&buffer, name)
    buffer.append(contentsOf: ": ".utf8)
    // CR/LF in a value would split the message; replace them so a script cannot inject headers.
    for b in value.utf8 { buffer.append(b == 13 || b == 10 ? 0x20 : b) }
    buffer.append(contentsOf: "\r\n".utf8)
}

@inline(__always) func appendDecimal(_ buffer: inout [UInt8], _ value: Int) {
    var v = value
    if v == 0 { buffer.append(0x30); return }
    if v < 0 { buffer.append(UInt8(ascii: "-")); v = -v }
    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                 UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var n = 0
    withUnsafeMutableBytes(of: &digits) { d in
        while v > 0 { d[n] = UInt8(0x30 + v % 10); v /= 10; n += 1 }
        while n > 0 { n -= 1; buffer.append(d[n]) }
    }
}

func percentDecode<S: StringProtocol>(_ s: S, plusAsSpace: Bool = true) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(s.utf8.count)
    var it = Array(s.utf8)[...]
    while let b = it.popFirst() {
        if plusAsSpace && b == UInt8(ascii: "+") { out.append(0x20); continue }
        if b == UInt8(ascii: "%"), it.count >= 2, let h = hexDigit(it[it.startIndex]), let l = hexDigit(it[it.startIndex + 1]) {
            out.append(h << 4 | l)
            it = it.dropFirst(2)
            continue
        }
        out.append(b)
    }
    return String(decoding: out, as: UTF8.self)
}

private func hexDigit(_ b: UInt8) -> UInt8? {
    switch b {
    case 0x30...0x39: b - 0x30
    case 0x41...0x46: b - 0x41 + 10
    case 0x61...0x66: b - 0x61 + 10
    default: nil
    }
}

/// The standard reason phrase for common codes.
func reasonPhrase(_ status: Int) -> String {
    switch status {
    case 100: "Continue"
    case 101: "Switching Protocols"
    case 200: "OK"
    case 201: "Created"
    case 202: "Accepted"
    case 204: "No Content"
    case 301: "Moved Permanently"
    case 302: "Found"
    case 304: "Not Modified"
    case 400: "Bad Request"
    case 401: "Unauthorized"
    case 403: "Forbidden"
    case 404: "Not Found"
    case 405: "Method Not Allowed"
    case 408: "Request Timeout"
    case 409: "Conflict"
    case 413: "Content Too Large"
    case 429: "Too Many Requests"
    case 431: "Request Header Fields Too Large"
    case 500: "Internal Server Error"
    case 501: "Not Implemented"
    case 502: "Bad Gateway"
    case 503: "Service Unavailable"
    case 504: "Gateway Timeout"
    default: "Status"
    }
}
