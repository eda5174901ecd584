import LoadKitTransport

/// A STOMP command (`CONNECT`, `SEND`, `MESSAGE`, …). Any token is representable so a parser can
/// hand unknown commands to the session, which decides whether they are an error.
public struct StompCommand: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The command as it appears on the wire.
    public let rawValue: String
    /// Wraps a command token.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// The wire token.
    public var description: String { rawValue }

    // Client frames.
    /// Opens a session (also `STOMP`).
    public static let connect = StompCommand(rawValue: "CONNECT")
    /// STOMP 1.2 alias of CONNECT.
    public static let stomp = StompCommand(rawValue: "STOMP")
    /// Publishes a message.
    public static let send = StompCommand(rawValue: "SEND")
    /// Registers a subscription.
    public static let subscribe = StompCommand(rawValue: "SUBSCRIBE")
    /// Removes a subscription.
    public static let unsubscribe = StompCommand(rawValue: "UNSUBSCRIBE")
    /// Acknowledges a message.
    public static let ack = StompCommand(rawValue: "ACK")
    /// Rejects a message.
    public static let nack = StompCommand(rawValue: "NACK")
    /// Starts a transaction.
    public static let begin = StompCommand(rawValue: "BEGIN")
    /// Commits a transaction.
    public static let commit = StompCommand(rawValue: "COMMIT")
    /// Aborts a transaction.
    public static let abort = StompCommand(rawValue: "ABORT")
    /// Ends the session gracefully.
    public static let disconnect = StompCommand(rawValue: "DISCONNECT")
    // Server frames.
    /// The server accepted the connection.
    public static let connected = StompCommand(rawValue: "CONNECTED")
    /// A message delivered to a subscription.
    public static let message = StompCommand(rawValue: "MESSAGE")
    /// Confirms a frame that asked for a receipt.
    public static let receipt = StompCommand(rawValue: "RECEIPT")
    /// A server-side error; the server closes the connection after it.
    public static let error = StompCommand(rawValue: "ERROR")

    /// CONNECT, STOMP and CONNECTED frames carry headers without escaping (STOMP 1.2 §"Value Encoding").
    @inlinable public var escapesHeaders: Bool {
        self != .connect && self != .connected && self != .stomp
    }
}

/// One STOMP frame: a command, ordered headers (repeats allowed; the first occurrence wins on
/// lookup, as the spec says) and body bytes.
///
/// Headers are stored as one byte array plus offsets, so a parsed frame costs three allocations
/// however many headers it has; a header becomes a `String` only when asked for.
public struct StompFrame: Sendable, Equatable, CustomStringConvertible {
    /// The frame's command.
    public var command: StompCommand
    /// The body (the bytes before the terminating NUL, or exactly `content-length` bytes).
    public var body: [UInt8]
    // Unescaped header names and values back to back; `index` holds, per header, the start of the
    // name, the start of the value (= end of the name) and the end of the value.
    @usableFromInline var headerBytes: [UInt8]
    @usableFromInline var headerIndex: [Int32]

    /// Creates a frame from header pairs (kept in order) and a body.
    public init(_ command: StompCommand, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.command = command
        self.body = body
        self.headerBytes = []
        self.headerIndex = []
        headerIndex.reserveCapacity(headers.count * 3)
        for (n, v) in headers { addHeader(n, v) }
    }

    /// Creates a frame with a UTF-8 text body.
    public init(_ command: StompCommand, headers: [(String, String)] = [], text: String) {
        self.init(command, headers: headers, body: Array(text.utf8))
    }

    init(command: StompCommand, headerBytes: [UInt8], headerIndex: [Int32], body: [UInt8]) {
        self.command = command
        self.headerBytes = headerBytes
        self.headerIndex = headerIndex
        self.body = body
    }

    /// Number of headers, repeats included.
    public var headerCount: Int { headerIndex.count / 3 }

    /// Appends a header (after any existing ones, so an existing header of the same name wins).
    public mutating func addHeader(_ name: String, _ value: String) {
        headerIndex.append(Int32(headerBytes.count))
        headerBytes.append(contentsOf: name.utf8)
        headerIndex.append(Int32(headerBytes.count))
        headerBytes.append(contentsOf: value.utf8)
        headerIndex.append(Int32(headerBytes.count))
    }

    /// Removes every header named `name`.
    public mutating func removeHeader(_ name: String) {
        let old = headers
        headerBytes.removeAll(keepingCapacity: true)
        headerIndex.removeAll(keepingCapacity: true)
        for (n, v) in old where n != name { addHeader(n, v) }
    }

    /// All headers in wire order, repeats included.
    public var headers: [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        out.reserveCapacity(headerCount)
        for i in 0..<headerCount {
            out.append((String(decoding: headerBytes[Int(headerIndex[3 * i])..<Int(headerIndex[3 * i + 1])], as: UTF8.self),
                        String(decoding: headerBytes[Int(headerIndex[3 * i + 1])..<Int(headerIndex[3 * i + 2])], as: UTF8.self)))
        }
        return out
    }

    /// The position of the first header named `name`, or nil. Compares bytes; allocates nothing.
    @usableFromInline func headerSlot(_ name: String) -> Int? {
        var name = name
        return name.withUTF8 { n -> Int? in
            headerBytes.withUnsafeBufferPointer { hb -> Int? in
                var i = 0
                let count = headerIndex.count
                while i < count {
                    let s = Int(headerIndex[i]), e = Int(headerIndex[i + 1])
                    if e - s == n.count && (n.count == 0 || memcmpBytes(hb.baseAddress! + s, n.baseAddress!, n.count)) {
                        return i
                    }
                    i += 3
                }
                return nil
            }
        }
    }

    /// The value of the first header named `name` (the spec's rule for repeated headers).
    public subscript(_ name: String) -> String? {
        guard let i = headerSlot(name) else { return nil }
        return String(decoding: headerBytes[Int(headerIndex[i + 1])..<Int(headerIndex[i + 2])], as: UTF8.self)
    }

    /// The raw bytes of the first header named `name`, without making a `String` (hot paths:
    /// matching a message id).
    public func headerValueBytes(_ name: String) -> ArraySlice<UInt8>? {
        guard let i = headerSlot(name) else { return nil }
        return headerBytes[Int(headerIndex[i + 1])..<Int(headerIndex[i + 2])]
    }

    /// True when the first header named `name` has exactly the value `value` (no allocation).
    public func header(_ name: String, equals value: String) -> Bool {
        guard let bytes = headerValueBytes(name) else { return false }
        return bytes.elementsEqual(value.utf8)
    }

    /// The body as UTF-8 text (invalid sequences replaced).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// Same command, same headers in the same order, same body.
    public static func == (a: StompFrame, b: StompFrame) -> Bool {
        guard a.command == b.command, a.body == b.body, a.headerCount == b.headerCount else { return false }
        let ha = a.headers, hb = b.headers
        for i in 0..<ha.count where ha[i] != hb[i] { return false }
        return true
    }

    /// A one-line summary (command, headers, body size) for logs and test failures.
    public var description: String {
        // Credentials never reach logs.
        let h = headers.map { h -> String in
            "\(h.name):\(Secrets.isSecret(h.name) ? Secrets.mask : h.value)"
        }.joined(separator: ", ")
        return "\(command)[\(h)] \(body.count) bytes"
    }
}

@inline(__always) func memcmpBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    var i = 0
    while i < n {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}

/// A MESSAGE delivered to a subscription. Header values are decoded on demand.
public struct StompMessage: Sendable {
    /// The MESSAGE frame as received.
    public let frame: StompFrame
    /// Wraps a MESSAGE frame.
    public init(frame: StompFrame) { self.frame = frame }
    /// The `destination` header.
    public var destination: String? { frame["destination"] }
    /// The `message-id` header.
    public var messageID: String? { frame["message-id"] }
    /// The `subscription` header (the id given at subscribe time).
    public var subscription: String? { frame["subscription"] }
    /// The `ack` header, used as the `id` of ACK/NACK in STOMP 1.2.
    public var ackID: String? { frame["ack"] }
    /// The `content-type` header.
    public var contentType: String? { frame["content-type"] }
    /// The body bytes.
    public var body: [UInt8] { frame.body }
    /// The body as UTF-8 text.
    public var text: String { frame.bodyText }
    /// The value of any header (first occurrence).
    public subscript(_ name: String) -> String? { frame[name] }
}
