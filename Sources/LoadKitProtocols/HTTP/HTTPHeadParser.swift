#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
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

/// tchar per RFC 9110 §5.6.2.
private let tokenTable: [Bool] = {
    var t = [Bool](repeating: false, count: 256)
    for c in UInt8(ascii: "a")...UInt8(ascii: "z") { t[Int(c)] = true }
    for c in UInt8(ascii: "A")...UInt8(ascii: "Z") { t[Int(c)] = true }
    for c in UInt8(ascii: "0")...UInt8(ascii: "9") { t[Int(c)] = true }
    for c in "!#$%&'*+-.^_`|~".utf8 { t[Int(c)] = true }
    return t
}()

@inline(__always) func isTokenByte(_ b: UInt8) -> Bool { tokenTable[Int(b)] }

/// Splits a complete head into its first line and header fields.
private func splitHead(_ head: UnsafeRawBufferPointer) -> Result<(first: Range<Int>, headers: HTTPHeaders), HTTPError> {
    var lineStart = 0
    var first: Range<Int>? = nil
    var headers = HTTPHeaders()
    let n = head.count
    // One allocation for the fields: at most one per line after the start line.
    var lineCount = 0
    if let base = head.baseAddress {
        var i = 0
        while i < n, let p = memchr(base + i, Int32(LF), n - i) { lineCount += 1; i = base.distance(to: UnsafeRawPointer(p)) + 1 }
    }
    headers.reserveCapacity(max(0, lineCount - 2))
    while lineStart < n {
        var lf = lineStart
        while lf < n && head[lf] != LF { lf += 1 }
        var lineEnd = lf
        if lineEnd > lineStart && head[lineEnd - 1] == CR { lineEnd -= 1 }
        defer { lineStart = lf + 1 }
        if first == nil { first = lineStart..<lineEnd; continue }
        if lineEnd == lineStart { break }  // the empty line that ends the head
        let sp = head[lineStart]
        if sp == 0x20 || sp == 0x09 {
            // obs-fold: continuation of the previous value (RFC 9112 §5.2 lets a recipient replace it by SP).
            guard let last = headers.fields.last else { return .failure(.malformed("header continuation line without a header")) }
            let more = trimmed(head, lineStart, lineEnd)
            guard let extra = fieldValue(head, more) else { return .failure(.malformed("invalid character in header '\(last.name)'")) }
            headers.replaceLastValue(last.value + " " + extra)
            continue
        }
        var colon = lineStart
        while colon < lineEnd && head[colon] != UInt8(ascii: ":") {
            guard isTokenByte(head[colon]) else {
                return .failure(.malformed(head[colon] == 0x20 ? "space in or after a header name" : "invalid character in header name"))
            }
            colon += 1
        }
        guard colon < lineEnd else { return .failure(.malformed("header line without ':'")) }
        guard colon > lineStart else { return .failure(.malformed("empty header name")) }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: head[lineStart..<colon]), as: UTF8.self)
        guard let value = fieldValue(head, trimmed(head, colon + 1, lineEnd)) else {
            return .failure(.malformed("invalid character in value of header '\(name)'"))
        }
        headers.add(name, value)
    }
    guard let f = first else { return .failure(.malformed("empty head")) }
    return .success((f, headers))
}

private func trimmed(_ b: UnsafeRawBufferPointer, _ lo: Int, _ hi: Int) -> Range<Int> {
    var l = lo, h = hi
    while l < h && (b[l] == 0x20 || b[l] == 0x09) { l += 1 }
    while h > l && (b[h - 1] == 0x20 || b[h - 1] == 0x09) { h -= 1 }
    return l..<h
}

/// A field value, or nil when it holds control characters other than HTAB.
private func fieldValue(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> String? {
    for i in r {
        let c = b[i]
        if (c < 0x20 && c != 0x09) || c == 0x7f { return nil }
    }
    return String(decoding: UnsafeRawBufferPointer(rebasing: b[r]), as: UTF8.self)
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
    let split: (first: Range<Int>, headers: HTTPHeaders)
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
        guard let r = fieldValue(head, line.lowerBound + 13..<line.upperBound) else {
            return .failure(.malformed("invalid character in reason phrase"))
        }
        reason = r
    }
    return .success(HTTPResponseHead(version: version, status: status, reason: reason, headers: split.headers))
}

func parseRequestHead(_ head: UnsafeRawBufferPointer) -> Result<HTTPRequestHead, HTTPError> {
    let split: (first: Range<Int>, headers: HTTPHeaders)
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
