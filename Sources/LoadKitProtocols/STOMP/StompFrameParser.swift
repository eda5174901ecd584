#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LoadKitTransport

/// Incremental STOMP 1.2 frame parser: feed it byte slices as they arrive (any split, several
/// frames per slice) and it hands back complete frames.
///
/// Grammar handled: EOLs between frames (heart-beats, and the EOLs servers may put after a
/// frame's NUL), an optional CR before every LF, header unescaping (except in CONNECT, STOMP and
/// CONNECTED frames), bodies delimited by `content-length` (may hold NULs; the NUL after them is
/// required) or by the first NUL. Limits bound memory: a line longer than
/// ``Limits/maxLineLength``, more than ``Limits/maxHeaders`` headers or a body larger than
/// ``Limits/maxBodySize`` end parsing with a ``StompError`` of kind `stomp_malformed`, whose
/// source is the peer that sent the bytes. After an error the parser stays failed.
package struct StompFrameParser: Sendable {
    /// Bounds on what one frame may use.
    public struct Limits: Sendable, Equatable {
        /// Longest command or header line in bytes (escaped form, without the EOL).
        public var maxLineLength: Int
        /// Most headers in one frame.
        public var maxHeaders: Int
        /// Largest body in bytes.
        public var maxBodySize: Int
        /// Creates limits; the defaults suit chat-like traffic with generous headroom.
        public init(maxLineLength: Int = 16 * 1024, maxHeaders: Int = 128, maxBodySize: Int = 16 * 1024 * 1024) {
            self.maxLineLength = maxLineLength
            self.maxHeaders = maxHeaders
            self.maxBodySize = maxBodySize
        }
    }

    enum State: Sendable {
        /// Between frames: EOLs are heart-beats; `afterCR` when a CR awaits its LF.
        case idle(afterCR: Bool)
        /// Reading the command line.
        case command
        /// Reading header lines.
        case headers
        /// Reading a body of known length.
        case fixedBody
        /// Expecting the NUL after a `content-length` body.
        case terminator
        /// Reading a body up to the first NUL.
        case nulBody
        /// A previous error; every later call throws it again. Boxed (`indirect`): inline, the
        /// error made every idle connection's parser 32 bytes larger.
        indirect case failed(StompError)
    }

    /// The limits in force.
    public let limits: Limits
    /// Who sent the bytes (blamed in errors): `.server` for a client, `.loadGenerator` for a fixture server.
    public let peer: FailureSource
    /// Heart-beat EOLs seen between frames so far.
    public private(set) var heartBeats = 0

    var state: State = .idle(afterCR: false)
    var line: [UInt8] = []
    var command = StompCommand.send
    var escapes = true
    var headerBytes: [UInt8] = []
    var headerIndex: [Int32] = []
    var contentLength = -1
    var body: [UInt8] = []

    /// Creates a parser for bytes sent by `peer`.
    public init(peer: FailureSource, limits: Limits = Limits()) {
        self.peer = peer
        self.limits = limits
    }

    /// True when no partial frame is buffered.
    public var isIdle: Bool { if case .idle = state { return true } else { return false } }

    /// Parses `input`, calling `onFrame` for every frame completed by it, in order.
    /// Throws the first protocol violation (and rethrows what `onFrame` throws).
    ///
    /// Longer than the house limit on purpose: one loop over the bytes with a case per state
    /// (the per-byte hot path of every STOMP client and the fixture broker — `loadkit bench
    /// stomp`); splitting the states into calls costs frames per second.
    public mutating func parse(_ input: UnsafeRawBufferPointer, onFrame: (StompFrame) throws -> Void) throws {
        guard let base = input.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        let end = input.count
        var p = 0
        while p < end {
            switch state {
            case .failed(let e):
                throw e
            case .idle(let afterCR):
                let b = base[p]
                if b == 0x0A {
                    heartBeats &+= 1
                    state = .idle(afterCR: false)
                    p += 1
                } else if afterCR {
                    try fail("CR not followed by LF between frames")
                } else if b == 0x0D {
                    state = .idle(afterCR: true)
                    p += 1
                } else {
                    state = .command
                }
            case .command, .headers:
                let rest = end - p
                let found = memchr(base + p, 0x0A, rest)
                if let found {
                    let n = UnsafeRawPointer(found) - UnsafeRawPointer(base + p)
                    if line.isEmpty {
                        try lineComplete(UnsafeBufferPointer(start: base + p, count: n))
                    } else {
                        guard line.count + n <= limits.maxLineLength + 1 else { try tooLong() ; return }
                        line.append(contentsOf: UnsafeBufferPointer(start: base + p, count: n))
                        let l = line
                        line.removeAll(keepingCapacity: true)
                        try l.withUnsafeBufferPointer { try lineComplete($0) }
                    }
                    p += n + 1
                } else {
                    guard line.count + rest <= limits.maxLineLength + 1 else { try tooLong(); return }
                    line.append(contentsOf: UnsafeBufferPointer(start: base + p, count: rest))
                    p = end
                }
            case .fixedBody:
                let take = min(contentLength - body.count, end - p)
                body.append(contentsOf: UnsafeBufferPointer(start: base + p, count: take))
                p += take
                if body.count == contentLength { state = .terminator }
            case .terminator:
                guard base[p] == 0 else {
                    try fail("no NUL after a body of content-length \(contentLength)")
                    return
                }
                p += 1
                state = .idle(afterCR: false)
                try emit(onFrame)
            case .nulBody:
                let rest = end - p
                if let found = memchr(base + p, 0, rest) {
                    let n = UnsafeRawPointer(found) - UnsafeRawPointer(base + p)
                    guard body.count + n <= limits.maxBodySize else { try bodyTooLarge(); return }
                    body.append(contentsOf: UnsafeBufferPointer(start: base + p, count: n))
                    p += n + 1
                    state = .idle(afterCR: false)
                    try emit(onFrame)
                } else {
                    guard body.count + rest <= limits.maxBodySize else { try bodyTooLarge(); return }
                    body.append(contentsOf: UnsafeBufferPointer(start: base + p, count: rest))
                    p = end
                }
            }
        }
    }

    /// Parses a byte array (tests and callers holding arrays).
    public mutating func parse(_ bytes: [UInt8], onFrame: (StompFrame) throws -> Void) throws {
        try bytes.withUnsafeBytes { try parse($0, onFrame: onFrame) }
    }

    /// Parses `bytes` and returns the frames completed by them.
    public mutating func frames(from bytes: [UInt8]) throws -> [StompFrame] {
        var out: [StompFrame] = []
        try parse(bytes) { out.append($0) }
        return out
    }

    // MARK: steps

    private mutating func lineComplete(_ raw: UnsafeBufferPointer<UInt8>) throws {
        var n = raw.count
        if n > 0 && raw[n - 1] == 0x0D { n -= 1 }
        guard n <= limits.maxLineLength else { try tooLong(); return }
        let l = UnsafeBufferPointer(rebasing: raw[0..<n])
        if case .command = state {
            guard n > 0, n <= 32, l.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
                try fail("invalid command line (\(n) bytes; expected an upper-case command)")
                return
            }
            command = knownCommand(l) ?? StompCommand(rawValue: String(decoding: l, as: UTF8.self))
            escapes = command.escapesHeaders
            contentLength = -1
            state = .headers
            return
        }
        // Header line or the blank line that ends the headers.
        if n == 0 {
            if contentLength >= 0 {
                body.reserveCapacity(contentLength)
                state = contentLength == 0 ? .terminator : .fixedBody
            } else {
                state = .nulBody
            }
            return
        }
        guard headerIndex.count / 3 < limits.maxHeaders else {
            try fail("more than \(limits.maxHeaders) headers")
            return
        }
        guard let colon = l.firstIndex(of: 0x3A) else {
            try fail("header line without ':'")
            return
        }
        let nameStart = headerBytes.count
        headerIndex.append(Int32(nameStart))
        try appendUnescaped(UnsafeBufferPointer(rebasing: l[0..<colon]))
        let valueStart = headerBytes.count
        headerIndex.append(Int32(valueStart))
        try appendUnescaped(UnsafeBufferPointer(rebasing: l[(colon + 1)...]))
        headerIndex.append(Int32(headerBytes.count))
        if contentLength < 0 && valueStart - nameStart == 14 && isContentLength(nameStart) {
            // First occurrence wins, so later content-length headers are ignored.
            var v = 0
            let count = headerBytes.count - valueStart
            guard count > 0, count <= 10 else { try fail("invalid content-length"); return }
            for i in valueStart..<headerBytes.count {
                let d = headerBytes[i]
                guard d >= 0x30 && d <= 0x39 else { try fail("invalid content-length"); return }
                v = v * 10 + Int(d - 0x30)
            }
            guard v <= limits.maxBodySize else { try bodyTooLarge(); return }
            contentLength = v
        }
    }

    private func isContentLength(_ start: Int) -> Bool {
        let name = StompFrameEncoder.contentLengthName
        for i in 0..<14 where headerBytes[start + i] != name[i] { return false }
        return true
    }

    private mutating func appendUnescaped(_ s: UnsafeBufferPointer<UInt8>) throws {
        guard escapes, s.contains(0x5C) else {
            headerBytes.append(contentsOf: s)
            return
        }
        var i = 0
        while i < s.count {
            let b = s[i]
            if b != 0x5C { headerBytes.append(b); i += 1; continue }
            guard i + 1 < s.count else { try fail("header ends with a lone backslash"); return }
            switch s[i + 1] {
            case 0x5C: headerBytes.append(0x5C)
            case 0x6E: headerBytes.append(0x0A)
            case 0x72: headerBytes.append(0x0D)
            case 0x63: headerBytes.append(0x3A)
            default:
                try fail("invalid escape sequence '\\\(String(UnicodeScalar(s[i + 1] < 0x80 ? s[i + 1] : 0x3F)))' in a header")
                return
            }
            i += 2
        }
    }

    private mutating func emit(_ onFrame: (StompFrame) throws -> Void) throws {
        let frame = StompFrame(command: command, headerBytes: headerBytes, headerIndex: headerIndex, body: body)
        headerBytes = []
        headerIndex = []
        body = []
        contentLength = -1
        try onFrame(frame)
    }

    private mutating func fail(_ what: String) throws {
        let e = StompError.malformed(what, source: peer)
        state = .failed(e)
        line = []
        headerBytes = []
        headerIndex = []
        body = []
        throw e
    }

    private mutating func tooLong() throws { try fail("line longer than \(limits.maxLineLength) bytes") }
    private mutating func bodyTooLarge() throws { try fail("body larger than \(limits.maxBodySize) bytes") }

    private func knownCommand(_ l: UnsafeBufferPointer<UInt8>) -> StompCommand? {
        // The common commands without building a String from bytes.
        switch l.count {
        case 7 where l.elementsEqual(Self.messageBytes): return .message
        case 4 where l.elementsEqual(Self.sendBytes): return .send
        case 7 where l.elementsEqual(Self.receiptBytes): return .receipt
        case 3 where l.elementsEqual(Self.ackBytes): return .ack
        default: return nil
        }
    }
    private static let messageBytes = Array("MESSAGE".utf8)
    private static let sendBytes = Array("SEND".utf8)
    private static let receiptBytes = Array("RECEIPT".utf8)
    private static let ackBytes = Array("ACK".utf8)
}
