import LoadKitTransport

/// Incremental parser for whole responses (client role): head, then a body delimited by
/// `Content-Length`, `chunked` (extensions and trailers accepted) or the end of the stream.
/// Interim 1xx responses are skipped, except 101 which is returned (the connection is upgraded).
/// Responses to HEAD and 204/304 responses have no body.
///
/// Call ``expectResponse(to:)`` before each request's response, feed slices with ``parse(_:)``, and
/// call ``finish()`` when the peer closes (a read-until-close body completes there).
package struct HTTPResponseParser: Sendable {
    private var headScanner: HeadScanner
    private var head: HTTPResponseHead?
    private var body: BodyDecoder?
    private var requestWasHEAD = false
    /// Largest body accepted (default 16 MiB).
    public let maxBodyBytes: Int

    /// Creates a parser.
    public init(limits: HTTPHeadLimits = HTTPHeadLimits(), maxBodyBytes: Int = 16 << 20) {
        headScanner = HeadScanner(limits: limits)
        self.maxBodyBytes = maxBodyBytes
    }

    /// Tells the parser which method the next response answers (HEAD responses have no body).
    public mutating func expectResponse(to method: HTTPMethod) { requestWasHEAD = method == .HEAD }

    /// True when no part of a response has been received.
    public var isIdle: Bool { head == nil && !headScanner.started }

    /// Whether the connection may carry another exchange after the last response returned by
    /// ``parse(_:)`` (its head's ``HTTPResponseHead/keepAlive``, decided from the facts the
    /// parser noted, without searching the fields again).
    private(set) var lastKeepsAlive = false

    /// Feeds bytes; `.done` carries one response and how many bytes it used.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> HTTPParseResult<HTTPResponse> {
        var offset = 0
        while true {
            if head == nil {
                let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                switch headScanner.scan(rest, parseHead: parseResponseHeadNotingFacts) {
                case .needMore: return .needMore
                case .failure(let e): return .failure(e)
                case .done(let (h, facts), let used):
                    offset += used
                    if h.status >= 100 && h.status < 200 && h.status != 101 { continue }  // interim response
                    lastKeepsAlive = facts.folded ? h.keepAlive : facts.keepAlive(h.version)
                    if h.status == 101 { return .done(HTTPResponse(head: h), consumed: offset) }
                    switch BodyDecoder.start(responseFraming(h, requestWasHEAD: requestWasHEAD, facts: facts), limit: maxBodyBytes) {
                    case .failure(let e): return .failure(e)
                    case .success(let decoder): head = h; body = decoder
                    }
                }
            }
            switch body!.feed(bytes, from: offset) {
            case .failure(let e): return .failure(e)
            case .success(let used): offset += used
            }
            if body!.isComplete { return .done(complete(), consumed: offset) }
            return .needMore
        }
    }

    /// Feeds bytes from an array.
    public mutating func parse(_ bytes: [UInt8]) -> HTTPParseResult<HTTPResponse> {
        bytes.withUnsafeBytes { parse($0) }
    }

    /// The peer closed the stream: completes a read-until-close body, reports truncation otherwise.
    /// `.needMore` means nothing was pending.
    public mutating func finish() -> HTTPParseResult<HTTPResponse> {
        if isIdle { return .needMore }
        if body?.endsAtClose == true { return .done(complete(), consumed: 0) }
        return .failure(.malformed(head == nil ? "connection closed inside a response head" : "connection closed before the response body was complete"))
    }

    /// True when the response being read ends only at connection close.
    var readsUntilClose: Bool { body?.endsAtClose == true }

    private mutating func complete() -> HTTPResponse {
        // Moved out, not copied: a copy would retain every string of the head once more.
        var decoder = body.take()!
        return HTTPResponse(head: head.take()!, body: decoder.takeBody())
    }
}

/// Incremental parser for whole requests (server role): head, then a body delimited by
/// `Content-Length` or `chunked`. Several pipelined requests in one slice come out one per call:
/// feed the bytes after `consumed` again.
///
/// Errors map to statuses: ``HTTPError/headTooLarge(limit:)`` → 431,
/// ``HTTPError/bodyTooLarge(limit:)`` → 413, anything else → 400.
package struct HTTPRequestParser: Sendable {
    private var headParser: HTTPRequestHeadParser
    private var head: HTTPRequestHead?
    private var body: BodyDecoder?
    /// Largest body accepted (default 16 MiB).
    public let maxBodyBytes: Int

    /// Creates a parser.
    public init(limits: HTTPHeadLimits = HTTPHeadLimits(), maxBodyBytes: Int = 16 << 20) {
        headParser = HTTPRequestHeadParser(limits: limits)
        self.maxBodyBytes = maxBodyBytes
    }

    /// True when no part of a request has been received.
    public var isIdle: Bool { head == nil && !headParser.hasPartialHead }

    /// The head of a request whose body is still arriving (a server answers `Expect: 100-continue` with it).
    public var headAwaitingBody: HTTPRequestHead? { head }

    /// Feeds bytes; `.done` carries one request and how many bytes it used.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> HTTPParseResult<HTTPServerRequest> {
        var offset = 0
        if head == nil {
            switch headParser.parse(bytes) {
            case .needMore: return .needMore
            case .failure(let e): return .failure(e)
            case .done(let h, let used):
                offset = used
                switch BodyDecoder.start(requestFraming(h), limit: maxBodyBytes) {
                case .failure(let e): return .failure(e)
                case .success(let decoder): head = h; body = decoder
                }
            }
        }
        switch body!.feed(bytes, from: offset) {
        case .failure(let e): return .failure(e)
        case .success(let used): offset += used
        }
        guard body!.isComplete else { return .needMore }
        let r = HTTPServerRequest(head: head!, body: body!.takeBody())
        head = nil
        body = nil
        return .done(r, consumed: offset)
    }

    /// Feeds bytes from an array.
    public mutating func parse(_ bytes: [UInt8]) -> HTTPParseResult<HTTPServerRequest> {
        bytes.withUnsafeBytes { parse($0) }
    }
}
