import LoadKitTransport

/// How a message body is delimited (RFC 9112 §6.3).
enum BodyFraming: Sendable, Equatable {
    case none
    case length(Int)
    case chunked
    case untilClose
}

/// Decides a response's body framing from its head and the request method; `facts` (noted by the
/// parser) answer the usual case — one plain `Content-Length`, no `Transfer-Encoding` — without
/// searching the fields.
func responseFraming(_ head: HTTPResponseHead, requestWasHEAD: Bool, facts: HeadFacts? = nil) -> Result<BodyFraming, HTTPError> {
    if requestWasHEAD || head.status < 200 || head.status == 204 || head.status == 304 { return .success(.none) }
    if let f = facts, !f.transferEncoding, !f.folded {
        if f.contentLengthFields == 0 { return .success(.untilClose) }
        if f.contentLengthFields == 1 && f.contentLength >= 0 { return .success(.length(f.contentLength)) }
    }
    let te = head.headers.values(for: "Transfer-Encoding")
    if !te.isEmpty {
        // The last coding must be chunked to delimit the body; otherwise the body runs to close.
        let last = te.last!.split(separator: ",").last.map { $0.trimmingASCIISpaces() } ?? ""
        return .success(asciiCaseInsensitiveEquals(last, "chunked") ? .chunked : .untilClose)
    }
    switch contentLength(head.headers) {
    case .success(let n?): return .success(.length(n))
    case .success(nil): return .success(.untilClose)
    case .failure(let e): return .failure(e)
    }
}

/// Decides a request's body framing (no read-until-close for requests).
func requestFraming(_ head: HTTPRequestHead) -> Result<BodyFraming, HTTPError> {
    let te = head.headers.values(for: "Transfer-Encoding")
    if !te.isEmpty {
        if head.headers.contains("Content-Length") {
            return .failure(.malformed("both Transfer-Encoding and Content-Length in a request"))
        }
        let codings = te.flatMap { $0.split(separator: ",").map { $0.trimmingASCIISpaces() } }
        guard codings.count == 1, asciiCaseInsensitiveEquals(codings[0], "chunked") else {
            return .failure(.malformed("unsupported request Transfer-Encoding"))
        }
        return .success(.chunked)
    }
    switch contentLength(head.headers) {
    case .success(let n?): return .success(n == 0 ? .none : .length(n))
    case .success(nil): return .success(.none)
    case .failure(let e): return .failure(e)
    }
}

/// The Content-Length value; repeated equal values are accepted, differing ones are not.
private func contentLength(_ headers: HTTPHeaders) -> Result<Int?, HTTPError> {
    var result: Int? = nil
    for v in headers.values(for: "Content-Length") {
        for part in v.split(separator: ",", omittingEmptySubsequences: false) {
            let t = part.trimmingASCIISpaces()
            guard !t.isEmpty, t.utf8.count <= 18, t.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(t) else {
                return .failure(.malformed("invalid Content-Length"))
            }
            if let r = result, r != n { return .failure(.malformed("conflicting Content-Length values")) }
            result = n
        }
    }
    return .success(result)
}

/// Collects a body according to its framing, incrementally, with a size limit.
struct BodyDecoder: Sendable {
    private enum Chunk: Sendable {
        case size(value: Int, digits: Int)
        case ext(length: Int)
        case sizeLF
        case data(remaining: Int)
        case dataCR
        case dataLF
        case trailerLineStart
        case trailerLine
        case trailerLF
    }
    private enum State: Sendable {
        case length(remaining: Int)
        case chunked(Chunk)
        case untilClose
        case complete
    }

    private var state: State
    private(set) var body: [UInt8] = []
    let limit: Int
    private var trailerBytes = 0

    /// The decoder for a head's `framing`, or why there is none: the framing's own error, or a
    /// declared length over `limit` (refused before any of the body is read).
    static func start(_ framing: Result<BodyFraming, HTTPError>, limit: Int) -> Result<BodyDecoder, HTTPError> {
        framing.flatMap { f in
            if case .length(let n) = f, n > limit { return .failure(.bodyTooLarge(limit: limit)) }
            return .success(BodyDecoder(framing: f, limit: limit))
        }
    }

    init(framing: BodyFraming, limit: Int) {
        self.limit = limit
        switch framing {
        case .none: state = .complete
        case .length(let n):
            state = n == 0 ? .complete : .length(remaining: n)
            if n <= limit { body.reserveCapacity(n) }
        case .chunked: state = .chunked(.size(value: 0, digits: 0))
        case .untilClose: state = .untilClose
        }
    }

    /// True once the whole body is in.
    var isComplete: Bool { if case .complete = state { return true } else { return false } }
    /// True when only the end of the stream can finish the body.
    var endsAtClose: Bool { if case .untilClose = state { return true } else { return false } }

    /// Takes the collected body, leaving the decoder empty.
    mutating func takeBody() -> [UInt8] {
        var b: [UInt8] = []
        swap(&b, &body)
        return b
    }

    /// Consumes body bytes from `bytes[start...]`; returns how many were used.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Result<Int, HTTPError> {
        var i = start
        let n = bytes.count
        while i < n {
            switch state {
            case .complete:
                return .success(i - start)
            case .untilClose:
                let take = n - i
                if body.count + take > limit { return .failure(.bodyTooLarge(limit: limit)) }
                body.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<n]))
                i = n
            case .length(let remaining):
                if body.count + remaining > limit { return .failure(.bodyTooLarge(limit: limit)) }
                let take = min(remaining, n - i)
                body.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<i + take]))
                i += take
                state = remaining == take ? .complete : .length(remaining: remaining - take)
            case .chunked(let c):
                switch c {
                case .data(let remaining):
                    let take = min(remaining, n - i)
                    body.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<i + take]))
                    i += take
                    state = .chunked(remaining == take ? .dataCR : .data(remaining: remaining - take))
                default:
                    let b = bytes[i]
                    i += 1
                    if let e = step(c, b) { return .failure(e) }
                }
            }
        }
        return .success(i - start)
    }

    /// One byte of chunk framing (sizes, extensions, CRLFs, trailers).
    private mutating func step(_ c: Chunk, _ b: UInt8) -> HTTPError? {
        switch c {
        case .size(let value, let digits):
            if let d = hexValue(b) {
                guard digits < 15 else { return .malformed("chunk size too long") }
                state = .chunked(.size(value: value << 4 | d, digits: digits + 1))
            } else if digits == 0 {
                return .malformed("invalid chunk size")
            } else if b == UInt8(ascii: ";") || b == 0x20 || b == 0x09 {
                pendingSize = value
                state = .chunked(.ext(length: 0))
            } else if b == 13 {
                pendingSize = value
                state = .chunked(.sizeLF)
            } else if b == 10 {
                pendingSize = value
                return endOfSizeLine()
            } else {
                return .malformed("invalid chunk size")
            }
        case .ext(let length):
            if b == 10 { return endOfSizeLine() }
            guard length < 4096 else { return .malformed("chunk extension too long") }
            state = .chunked(.ext(length: length + 1))
        case .sizeLF:
            guard b == 10 else { return .malformed("missing LF after chunk size") }
            return endOfSizeLine()
        case .dataCR:
            if b == 13 { state = .chunked(.dataLF) } else if b == 10 { state = .chunked(.size(value: 0, digits: 0)) } else {
                return .malformed("missing CRLF after chunk data")
            }
        case .dataLF:
            guard b == 10 else { return .malformed("missing LF after chunk data") }
            state = .chunked(.size(value: 0, digits: 0))
        case .trailerLineStart:
            if b == 10 { state = .complete } else if b == 13 { state = .chunked(.trailerLF) } else {
                state = .chunked(.trailerLine)
                return countTrailer()
            }
        case .trailerLine:
            if b == 10 { state = .chunked(.trailerLineStart) } else { return countTrailer() }
        case .trailerLF:
            guard b == 10 else { return .malformed("missing LF after trailers") }
            state = .complete
        case .data:
            break
        }
        return nil
    }

    private mutating func countTrailer() -> HTTPError? {
        trailerBytes += 1
        return trailerBytes > 64 * 1024 ? .headTooLarge(limit: 64 * 1024) : nil
    }

    private mutating func endOfSizeLine() -> HTTPError? {
        let size = pendingSize
        pendingSize = 0
        if size == 0 { state = .chunked(.trailerLineStart); return nil }
        if body.count + size > limit { return .bodyTooLarge(limit: limit) }
        state = .chunked(.data(remaining: size))
        return nil
    }

    // The chunk size, kept while its extension and line end are skipped.
    private var pendingSize = 0

    @inline(__always) private func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case 0x30...0x39: Int(b - 0x30)
        case 0x41...0x46: Int(b - 0x41 + 10)
        case 0x61...0x66: Int(b - 0x61 + 10)
        default: nil
        }
    }
}
