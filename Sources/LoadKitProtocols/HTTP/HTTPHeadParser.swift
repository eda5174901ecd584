#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLoadKit
import LoadKitTransport

/// What an incremental HTTP parser answers when fed bytes.
package enum HTTPParseResult<Value> {
    /// Every byte given was consumed; feed more.
    case needMore
    /// A complete value; `consumed` bytes of the last input belong to it, the rest come after.
    case done(Value, consumed: Int)
    /// The input is not acceptable; the parser must not be fed again (create a new one).
    case failure(HTTPError)
}

extension HTTPParseResult: Sendable where Value: Sendable {}

/// Limits applied while parsing message heads.
package struct HTTPHeadLimits: Sendable, Hashable {
    /// Maximum bytes of status/request line plus headers (default 64 KiB).
    public var maxHeadBytes: Int
    /// Maximum number of lines in a head (default 256).
    public var maxLines: Int
    /// Creates limits.
    public init(maxHeadBytes: Int = 64 * 1024, maxLines: Int = 256) {
        self.maxHeadBytes = maxHeadBytes
        self.maxLines = maxLines
    }
}

/// Incremental parser for a response head (status line and headers), used by the HTTP client and
/// by the WebSocket handshake. Feed byte slices until it answers `.done(head, consumed:)`; the
/// bytes after `consumed` are the body or the next protocol's first bytes.
///
/// Tolerates bare LF line ends and empty lines before the status line (counted against
/// ``HTTPHeadLimits/maxHeadBytes``). Needs no copying when a head arrives in one slice.
package struct HTTPResponseHeadParser: Sendable {
    private var scanner: HeadScanner
    /// Creates a parser with the given limits.
    public init(limits: HTTPHeadLimits = HTTPHeadLimits()) { scanner = HeadScanner(limits: limits) }

    /// Feeds bytes; see ``HTTPParseResult``.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> HTTPParseResult<HTTPResponseHead> {
        scanner.scan(bytes, parseHead: parseResponseHead)
    }

    /// Feeds bytes from an array; see ``HTTPParseResult``.
    public mutating func parse(_ bytes: [UInt8]) -> HTTPParseResult<HTTPResponseHead> {
        bytes.withUnsafeBytes { parse($0) }
    }

    /// True when part of a head has been received but not yet completed.
    public var hasPartialHead: Bool { scanner.started }
}

/// Incremental parser for a request head (request line and headers), used by the server role and
/// by the WebSocket server's upgrade. Same contract as ``HTTPResponseHeadParser``. Empty lines
/// before the request line are skipped (RFC 9112 §2.2) but count against ``HTTPHeadLimits/maxHeadBytes``.
package struct HTTPRequestHeadParser: Sendable {
    private var scanner: HeadScanner
    /// Creates a parser with the given limits.
    public init(limits: HTTPHeadLimits = HTTPHeadLimits()) { scanner = HeadScanner(limits: limits) }

    /// Feeds bytes; see ``HTTPParseResult``.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> HTTPParseResult<HTTPRequestHead> {
        scanner.scan(bytes, parseHead: parseRequestHead)
    }

    /// Feeds bytes from an array; see ``HTTPParseResult``.
    public mutating func parse(_ bytes: [UInt8]) -> HTTPParseResult<HTTPRequestHead> {
        bytes.withUnsafeBytes { parse($0) }
    }

    /// True when part of a head has been received but not yet completed.
    public var hasPartialHead: Bool { scanner.started }
}

private let LF: UInt8 = 10
private let CR: UInt8 = 13

/// Finds the end of a head (an empty line) across feeds, keeping a partial head only when it
/// spans slices, and enforcing the size and line limits as it goes.
struct HeadScanner: Sendable {
    let limits: HTTPHeadLimits
    private var pending: [UInt8] = []
    // 0: before the first line (skip blank lines), 1: inside a line, 2: just after LF, 3: after LF CR.
    private var state: UInt8 = 0
    private var size = 0
    private var lines = 0

    init(limits: HTTPHeadLimits) { self.limits = limits }

    var started: Bool { state != 0 }

    /// Scans `bytes` for the end of the head and hands the complete head to `parseHead`.
    /// Longer than the house limit on purpose: the per-response hot path (a memchr fast path for
    /// a head within one read, then a byte loop over the same states); split into calls, it
    /// costs requests per second (`loadkit bench http`).
    mutating func scan<H>(_ bytes: UnsafeRawBufferPointer,
                          parseHead: (UnsafeRawBufferPointer) -> Result<H, HTTPError>) -> HTTPParseResult<H> {
        let n = bytes.count
        let maxSize = limits.maxHeadBytes
        // Fast path (the usual case): a fresh head that begins with its start line and ends in
        // this slice, found line by line with memchr; the byte-wise scanner below takes the rest.
        if state == 0, n > 0, bytes[0] != CR, bytes[0] != LF, let base = bytes.baseAddress {
            var i = 0, lines = 0
            while i < n, let p = memchr(base + i, Int32(LF), n - i) {
                let j = base.distance(to: UnsafeRawPointer(p))
                lines += 1
                if lines > limits.maxLines { return .failure(.headTooLarge(limit: maxSize)) }
                let end = j + 1 < n && bytes[j + 1] == LF ? j + 2
                    : j + 2 < n && bytes[j + 1] == CR && bytes[j + 2] == LF ? j + 3 : -1
                if end > 0 {
                    if end > maxSize { return .failure(.headTooLarge(limit: maxSize)) }
                    return finish(parseHead(UnsafeRawBufferPointer(rebasing: bytes[0..<end])), end)
                }
                if j + 1 > maxSize { return .failure(.headTooLarge(limit: maxSize)) }
                i = j + 1
            }
        }
        var i = 0
        var start = 0
        var end = -1
        while i < n {
            let b = bytes[i]
            switch state {
            case 0:
                if b == CR || b == LF {
                    // Empty lines before the start line are skipped but still count against the
                    // head limit: a peer sending endless CRLF must not be read forever.
                    size += 1
                    if size > maxSize { return .failure(.headTooLarge(limit: maxSize)) }
                    i += 1; start = i; continue
                }
                state = 1
            case 1:
                if b == LF {
                    state = 2
                    lines += 1
                    if lines > limits.maxLines { return .failure(.headTooLarge(limit: maxSize)) }
                }
            case 2:
                if b == LF { end = i + 1 } else if b == CR { state = 3 } else { state = 1 }
            default:
                if b == LF { end = i + 1 } else { state = 1 }
            }
            size += 1
            if size > maxSize { return .failure(.headTooLarge(limit: maxSize)) }
            i += 1
            if end >= 0 { break }
        }
        if end < 0 {
            if state != 0 { pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<n])) }
            return .needMore
        }
        let result: Result<H, HTTPError>
        if pending.isEmpty {
            result = parseHead(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
        } else {
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
            result = pending.withUnsafeBytes { parseHead($0) }
            pending = []
        }
        return finish(result, end)
    }

    private mutating func finish<H>(_ result: Result<H, HTTPError>, _ end: Int) -> HTTPParseResult<H> {
        state = 0
        size = 0
        lines = 0
        switch result {
        case .success(let h): return .done(h, consumed: end)
        case .failure(let e): return .failure(e)
        }
    }
}

// MARK: line-level parsing (pure functions over one complete head)

/// tchar per RFC 9110 §5.6.2: the head splitter's table (`lk_http_is_token`), one definition.
@inline(__always) func isTokenByte(_ b: UInt8) -> Bool { lk_http_is_token(b) != 0 }

/// What the framing and keep-alive decisions need from a head, gathered while it is split, so
/// the hot path does not search the fields again (``responseFraming(_:requestWasHEAD:facts:)``).
struct HeadFacts: Sendable {
    /// `Content-Length` fields seen.
    var contentLengthFields = 0
    /// The value of the last `Content-Length` field when it is plain digits, else -1.
    var contentLength = -1
    /// A `Transfer-Encoding` field was seen (the slow path decides the framing then).
    var transferEncoding = false
    /// A `Connection` field holds the token `close`.
    var connectionClose = false
    /// A `Connection` field holds the token `keep-alive`.
    var connectionKeepAlive = false
    /// The head has a folded (obs-fold) line, so a value may differ from what was noted: the
    /// slow paths decide.
    var folded = false

    /// Whether the connection may carry another exchange (``HTTPResponseHead/keepAlive``).
    func keepAlive(_ version: HTTPVersion) -> Bool {
        version.major == 1 && version.minor >= 1 ? !connectionClose : connectionKeepAlive
    }
}

/// A header name the parser meets often, as a constant String when the bytes match exactly
/// (no decoding or validation per response); nil otherwise.
@inline(__always) func commonHeaderName(_ b: UnsafeRawBufferPointer) -> String? {
    @inline(__always) func its(_ s: StaticString) -> Bool {
        s.utf8CodeUnitCount == b.count && memcmp(s.utf8Start, b.baseAddress!, b.count) == 0
    }
    switch b.count {
    case 4: return its("Date") ? "Date" : its("Vary") ? "Vary" : its("ETag") ? "ETag" : nil
    case 6: return its("Server") ? "Server" : nil
    case 10: return its("Connection") ? "Connection" : its("Set-Cookie") ? "Set-Cookie" : its("Keep-Alive") ? "Keep-Alive" : nil
    case 12: return its("Content-Type") ? "Content-Type" : nil
    case 13: return its("Cache-Control") ? "Cache-Control" : its("Last-Modified") ? "Last-Modified" : its("Accept-Ranges") ? "Accept-Ranges" : nil
    case 14: return its("Content-Length") ? "Content-Length" : nil
    case 17: return its("Transfer-Encoding") ? "Transfer-Encoding" : nil
    default: return nil
    }
}

/// True when `b` spells `lower` (lower-case ASCII letters and '-') in any case.
@inline(__always) private func namedIgnoringCase(_ b: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
    guard b.count == lower.utf8CodeUnitCount else { return false }
    let l = lower.utf8Start
    for i in 0..<b.count where b[i] | 0x20 != l[i] { return false }
    return true
}

/// Notes what `name: value` tells the framing (names compared ignoring case, without Strings).
@inline(__always) private func noteFact(_ facts: inout HeadFacts, _ head: UnsafeRawBufferPointer,
                                        name: Range<Int>, value: Range<Int>) {
    let n = UnsafeRawBufferPointer(rebasing: head[name])
    switch n.count {
    case 14 where namedIgnoringCase(n, "content-length"):
        facts.contentLengthFields += 1
        var v = -1
        if value.count > 0 && value.count <= 18 {
            v = 0
            for i in value {
                let d = head[i] &- 0x30
                if d > 9 { v = -1; break }
                v = v * 10 + Int(d)
            }
        }
        facts.contentLength = v
    case 17 where namedIgnoringCase(n, "transfer-encoding"): facts.transferEncoding = true
    case 10 where namedIgnoringCase(n, "connection"):
        // A comma-separated token list: note `close` and `keep-alive`, ignoring case and spaces.
        var start = value.lowerBound
        while start <= value.upperBound {
            var end = start
            while end < value.upperBound && head[end] != UInt8(ascii: ",") { end += 1 }
            let t = trimmed(head, start, end)
            let token = UnsafeRawBufferPointer(rebasing: head[t])
            if namedIgnoringCase(token, "close") { facts.connectionClose = true }
            if namedIgnoringCase(token, "keep-alive") { facts.connectionKeepAlive = true }
            start = end + 1
        }
    default: break
    }
}

/// Splits a complete head into its first line and header fields, noting the framing facts. The
/// fields stay undecoded (``ParsedHeaderFields``); each is checked here, as a String would be.
/// The byte loops are C (`lk_http_split_head`); the facts are noted from the fields' spans.
private func splitHead(_ head: UnsafeRawBufferPointer) -> Result<(first: Range<Int>, headers: HTTPHeaders, facts: HeadFacts), HTTPError> {
    let n = head.count
    guard let base = head.baseAddress else { return .failure(.malformed("empty head")) }
    // A field line takes at least three bytes ("a:" and its line break): room for every field.
    let capacity = n / 3 + 1
    return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 4 * capacity) { spans in
        var firstStart: UInt32 = 0, firstEnd: UInt32 = 0, badStart: UInt32 = 0, badEnd: UInt32 = 0
        var folded: Int32 = 0
        let result = lk_http_split_head(base.assumingMemoryBound(to: UInt8.self), n, spans.baseAddress!, capacity,
                                        &firstStart, &firstEnd, &folded, &badStart, &badEnd)
        guard result >= 0 else {
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: head[Int(badStart)..<Int(badEnd)]), as: UTF8.self)
            return .failure(.malformed(headError(result, fieldName: name)))
        }
        let fields = Int(result)
        var facts = HeadFacts()
        facts.folded = folded != 0
        for k in 0..<fields {
            noteFact(&facts, head, name: Int(spans[4 * k])..<Int(spans[4 * k + 1]),
                     value: Int(spans[4 * k + 2])..<Int(spans[4 * k + 3]))
        }
        let headers = fields == 0 ? HTTPHeaders()
            : HTTPHeaders(parsed: ParsedHeaderFields(head: head, spans: UnsafeBufferPointer(spans), count: fields))
        return .success((Int(firstStart)..<Int(firstEnd), headers, facts))
    }
}

/// The message of an `LK_HEAD_*` error (`fieldName`: the offending field's, where there is one).
private func headError(_ code: Int, fieldName: String) -> String {
    switch code {
    case LK_HEAD_FOLD_WITHOUT_FIELD: return "header continuation line without a header"
    case LK_HEAD_NAME_SPACE: return "space in or after a header name"
    case LK_HEAD_NAME_CHARACTER: return "invalid character in header name"
    case LK_HEAD_NO_COLON: return "header line without ':'"
    case LK_HEAD_EMPTY_NAME: return "empty header name"
    case LK_HEAD_VALUE_CHARACTER: return "invalid character in value of header '\(fieldName)'"
    case LK_HEAD_FOLD_CHARACTER: return "invalid character in header '\(fieldName)'"
    case LK_HEAD_CAPACITY: return "too many header fields"
    default: return "empty head"
    }
}

private func trimmed(_ b: UnsafeRawBufferPointer, _ lo: Int, _ hi: Int) -> Range<Int> {
    var l = lo, h = hi
    while l < h && (b[l] == 0x20 || b[l] == 0x09) { l += 1 }
    while h > l && (b[h - 1] == 0x20 || b[h - 1] == 0x09) { h -= 1 }
    return l..<h
}

/// A field value (a reason phrase), or nil when it holds control characters other than HTAB:
/// the splitter's check (`lk_http_is_field_value`).
private func fieldValue(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> String? {
    let bytes = UnsafeRawBufferPointer(rebasing: b[r])
    guard bytes.isEmpty || lk_http_is_field_value(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count) != 0 else {
        return nil
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Parses `HTTP/<d>.<d>` at `b[r]`.
private func parseVersion(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> HTTPVersion? {
    guard r.count == 8 else { return nil }
    let s = r.lowerBound
    guard b[s] == UInt8(ascii: "H"), b[s + 1] == UInt8(ascii: "T"), b[s + 2] == UInt8(ascii: "T"),
          b[s + 3] == UInt8(ascii: "P"), b[s + 4] == UInt8(ascii: "/"), b[s + 6] == UInt8(ascii: ".") else { return nil }
    let ma = b[s + 5], mi = b[s + 7]
    guard ma >= 0x30 && ma <= 0x39 && mi >= 0x30 && mi <= 0x39 else { return nil }
    let v = HTTPVersion(major: Int(ma - 0x30), minor: Int(mi - 0x30))
    return v.major == 1 ? v : nil
}

func parseResponseHead(_ head: UnsafeRawBufferPointer) -> Result<HTTPResponseHead, HTTPError> {
    parseResponseHeadNotingFacts(head).map(\.head)
}

/// The response head and what its framing needs (the client's hot path).
func parseResponseHeadNotingFacts(_ head: UnsafeRawBufferPointer) -> Result<(head: HTTPResponseHead, facts: HeadFacts), HTTPError> {
    let split: (first: Range<Int>, headers: HTTPHeaders, facts: HeadFacts)
    switch splitHead(head) {
    case .success(let s): split = s
    case .failure(let e): return .failure(e)
    }
    let line = split.first
    // HTTP/1.1 SP 3DIGIT [SP reason]
    guard line.count >= 12, let version = parseVersion(head, line.lowerBound..<line.lowerBound + 8),
          head[line.lowerBound + 8] == 0x20 else {
        return .failure(.malformed("invalid status line"))
    }
    var status = 0
    for i in line.lowerBound + 9..<line.lowerBound + 12 {
        let d = head[i]
        guard d >= 0x30 && d <= 0x39 else { return .failure(.malformed("invalid status code")) }
        status = status * 10 + Int(d - 0x30)
    }
    guard status >= 100 else { return .failure(.malformed("invalid status code \(status)")) }
    var reason = ""
    if line.count > 12 {
        guard head[line.lowerBound + 12] == 0x20 else { return .failure(.malformed("invalid status line")) }
        let okay = line.count == 15 && head[line.lowerBound + 13] == UInt8(ascii: "O") && head[line.lowerBound + 14] == UInt8(ascii: "K")
        guard let r = okay ? "OK" : fieldValue(head, line.lowerBound + 13..<line.upperBound) else {
            return .failure(.malformed("invalid character in reason phrase"))
        }
        reason = r
    }
    return .success((HTTPResponseHead(version: version, status: status, reason: reason, headers: split.headers), split.facts))
}

func parseRequestHead(_ head: UnsafeRawBufferPointer) -> Result<HTTPRequestHead, HTTPError> {
    let split: (first: Range<Int>, headers: HTTPHeaders, facts: HeadFacts)
    switch splitHead(head) {
    case .success(let s): split = s
    case .failure(let e): return .failure(e)
    }
    let line = split.first
    var i = line.lowerBound
    while i < line.upperBound && isTokenByte(head[i]) { i += 1 }
    guard i > line.lowerBound, i < line.upperBound, head[i] == 0x20 else { return .failure(.malformed("invalid request method")) }
    let methodEnd = i
    i += 1
    let targetStart = i
    while i < line.upperBound && head[i] > 0x20 && head[i] != 0x7f { i += 1 }
    guard i > targetStart, i < line.upperBound, head[i] == 0x20 else { return .failure(.malformed("invalid request target")) }
    let targetEnd = i
    guard let version = parseVersion(head, i + 1..<line.upperBound) else { return .failure(.malformed("invalid HTTP version")) }
    let method = HTTPMethod(rawValue: String(decoding: UnsafeRawBufferPointer(rebasing: head[line.lowerBound..<methodEnd]), as: UTF8.self))
    let target = String(decoding: UnsafeRawBufferPointer(rebasing: head[targetStart..<targetEnd]), as: UTF8.self)
    return .success(HTTPRequestHead(method: method, target: target, version: version, headers: split.headers))
}
