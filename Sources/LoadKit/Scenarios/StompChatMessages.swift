import LoadKitTransport
import LoadKitProtocols
import LoadKitEngine

/// A parsed message-body template (``StompChatConfiguration/messageTemplate``): literal bytes and
/// placeholders, rendered per message without string searching.
package struct MessageTemplate: Sendable, Equatable {
    enum Part: Sendable, Equatable {
        case literal([UInt8]), messageId, roomId, roomIdJSON, workerId, seq, timestamp
    }
    let parts: [Part]

    /// Parses `text`; it must contain `{messageId}` (RTT is matched by it).
    public init(_ text: String) throws {
        let names: [(String, Part)] = [("{messageId}", .messageId), ("{roomIdJSON}", .roomIdJSON), ("{roomId}", .roomId),
                                       ("{workerId}", .workerId), ("{seq}", .seq), ("{timestamp}", .timestamp)]
        var parts: [Part] = []
        var literal: [UInt8] = []
        var rest = Substring(text)
        outer: while !rest.isEmpty {
            if rest.first == "{" {
                for (name, part) in names where rest.hasPrefix(name) {
                    if !literal.isEmpty { parts.append(.literal(literal)); literal = [] }
                    parts.append(part)
                    rest = rest.dropFirst(name.count)
                    continue outer
                }
            }
            literal.append(contentsOf: rest.first!.utf8)
            rest = rest.dropFirst()
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        guard parts.contains(.messageId) else {
            throw ConfigError(variable: "STOMP_MESSAGE_TEMPLATE", value: text,
                              expected: "a body containing {messageId} (the id RTT is matched by)")
        }
        self.parts = parts
    }

    /// Renders one message body.
    public func render(messageId: String, roomId: String, workerId: Int, seq: UInt64, timestampMillis: Int64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(192)
        for p in parts {
            switch p {
            case .literal(let b): out += b
            case .messageId: out += messageId.utf8
            case .roomId: out += roomId.utf8
            case .roomIdJSON:
                if !roomId.isEmpty, roomId.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                    out += roomId.utf8
                } else {
                    out.append(0x22)
                    for b in roomId.utf8 {
                        if b == 0x22 || b == 0x5C { out.append(0x5C) }
                        if b >= 0x20 { out.append(b) }
                    }
                    out.append(0x22)
                }
            case .workerId: out += String(workerId).utf8
            case .seq: out += String(seq).utf8
            case .timestamp: out += String(timestampMillis).utf8
            }
        }
        return out
    }
}

/// Message ids of one worker: `lk<runTag>-<workerId>-<seq>`, and finding one's own in a broadcast
/// body (wherever the server put it: a `messageId` field or inside the echoed text).
package struct StompEchoMatcher: Sendable {
    /// `lk<runTag>-<workerId>-`.
    public var prefix: [UInt8] { Array(prefixText.utf8) }
    // The text only: a byte copy beside it was one more allocation per worker (`bench chat`).
    private let prefixText: String

    /// The matcher of worker `workerId` in run `runTag`.
    public init(runTag: String, workerId: Int) {
        prefixText = "lk\(runTag)-\(workerId)-"
    }

    /// The id of message `seq`.
    public func messageId(seq: UInt64) -> String { prefixText + String(seq) }

    /// The sequence number of this worker's id in `body`, or nil when the body carries none.
    public func seq(in body: UnsafeRawBufferPointer) -> UInt64? {
        var text = prefixText
        return text.withUTF8 { Self.seq(in: body, prefix: $0) }
    }

    private static func seq(in body: UnsafeRawBufferPointer, prefix: UnsafeBufferPointer<UInt8>) -> UInt64? {
        let n = prefix.count
        guard body.count > n, let first = prefix.first else { return nil }
        var i = 0
        let end = body.count - n
        while i < end {
            if body[i] == first {
                var k = 1
                while k < n && body[i + k] == prefix[k] { k += 1 }
                if k == n {
                    var j = i + n, v: UInt64 = 0, digits = 0
                    while j < body.count, body[j] >= 0x30, body[j] <= 0x39, digits < 19 {
                        v = v * 10 + UInt64(body[j] - 0x30); j += 1; digits += 1
                    }
                    if digits > 0 { return v }
                }
            }
            i += 1
        }
        return nil
    }

    /// ``seq(in:)`` over an array.
    public func seq(in body: [UInt8]) -> UInt64? { body.withUnsafeBytes { seq(in: $0) } }
}

/// One worker's messages sent and not yet seen back: match an echo to its send time (RTT), and
/// expire those older than the time-out. Pure; the worker guards it with a lock.
package struct StompPendingMessages: Sendable {
    // Few at a time (sends are seconds apart, echoes take milliseconds): a short array, in send
    // order, with no storage kept while empty (10,000 idle workers hold nothing).
    private var sentAt: [(seq: UInt64, at: UInt64)] = []

    /// Creates an empty tracker.
    public init() {}

    /// Messages waiting for their echo.
    public var count: Int { sentAt.count }

    /// Notes message `seq` sent at `nanos` (monotonic).
    public mutating func sent(seq: UInt64, at nanos: UInt64) {
        if let i = sentAt.firstIndex(where: { $0.seq == seq }) { sentAt[i].at = nanos } else { sentAt.append((seq, nanos)) }
    }

    /// The round trip of message `seq` echoed at `nanos`, or nil when it was not pending
    /// (a duplicate, or already expired).
    public mutating func echoed(seq: UInt64, at nanos: UInt64) -> UInt64? {
        guard let i = sentAt.firstIndex(where: { $0.seq == seq }) else { return nil }
        let t = sentAt.remove(at: i).at
        if sentAt.isEmpty { sentAt = [] }
        return nanos > t ? nanos - t : 0
    }

    /// Removes and returns the sequence numbers of messages sent `timeout` or longer before `now`.
    public mutating func expire(now: UInt64, timeout: Duration) -> [UInt64] {
        let limit = timeout.nanoseconds
        guard sentAt.contains(where: { now > $0.at && now - $0.at >= limit }) else { return [] }
        let gone = sentAt.filter { now > $0.at && now - $0.at >= limit }.map(\.seq)
        sentAt.removeAll { now > $0.at && now - $0.at >= limit }
        if sentAt.isEmpty { sentAt = [] }
        return gone.sorted()
    }

    /// Removes every pending message; returns their sequence numbers, oldest first.
    public mutating func takeAll() -> [UInt64] {
        let all = sentAt.map(\.seq).sorted()
        sentAt = []
        return all
    }

    /// Removes every pending message; returns how many there were.
    public mutating func removeAll() -> Int {
        let n = sentAt.count
        sentAt = []
        return n
    }
}

/// A message sent on a connection that dropped before the broadcast brought it back: counted as a
/// failure at the drop (not left pending until the time-out, which a short run would never reach).
public struct StompMessageLost: ClassifiedError, Sendable {
    /// The message's id.
    public var messageId: String
    /// Why the connection ended.
    public var cause: String
    /// `message_lost`.
    public var kind: String { "message_lost" }
    /// The server (or the path to it) dropped the connection with the message unanswered.
    public var source: FailureSource { .server }
    public var description: String { "message \(messageId) was lost: the connection dropped before it came back (\(cause))" }
}

/// A message not echoed back within the time-out (seed 001: pending messages are cleaned up and
/// counted as failures).
public struct StompMessageTimeout: ClassifiedError, Sendable {
    /// The message's id.
    public var messageId: String
    /// The time-out in force.
    public var timeout: Duration
    /// `message_timeout`.
    public var kind: String { "message_timeout" }
    /// The server did not deliver the broadcast back.
    public var source: FailureSource { .server }
    public var description: String {
        "message \(messageId) was not received back within \(timeout.milliseconds) ms"
    }
}
