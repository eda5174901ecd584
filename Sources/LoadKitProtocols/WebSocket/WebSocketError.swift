import LoadKitTransport

/// A violation of RFC 6455 found while reading a peer's frames; carries the close code we answer
/// with (1002 protocol error, 1007 invalid payload data, 1009 message too big).
package struct WebSocketProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The close code sent to the peer for this violation.
    public var closeCode: UInt16
    /// What was wrong, for logs and the close reason.
    public var message: String

    /// Creates a protocol error.
    public init(closeCode: UInt16, _ message: String) {
        self.closeCode = closeCode
        self.message = message
    }

    static func protocolError(_ m: String) -> Self { .init(closeCode: WebSocketCloseCode.protocolError, m) }
    static func invalidData(_ m: String) -> Self { .init(closeCode: WebSocketCloseCode.invalidPayloadData, m) }
    static func tooBig(_ m: String) -> Self { .init(closeCode: WebSocketCloseCode.messageTooBig, m) }

    public var description: String { "WebSocket protocol error \(closeCode): \(message)" }
}

/// A classified WebSocket failure for reports: handshake rejections (`ws_handshake_401`),
/// closes (`ws_close_1008`), abrupt drops (`ws_close_1006`), protocol violations.
public struct WebSocketError: ClassifiedError, CountedFailure, Sendable, Hashable {
    /// Stable report key, e.g. `ws_handshake_403`, `ws_handshake_invalid`, `ws_close_1011`.
    public var kind: String
    /// Which side caused it.
    public var source: FailureSource
    /// Human-readable cause (never contains request header values such as tokens).
    public var message: String
    /// The close code, when the failure is a close.
    public var closeCode: UInt16?
    /// The close reason, when the failure is a close.
    public var closeReason: String?
    /// The HTTP status of a rejected handshake.
    public var httpStatus: Int?
    /// Non-zero once a protocol carried over the connection (STOMP) counted this close as its
    /// session's failure for the virtual user: the copies the script sees are not counted again.
    package var occurrence: UInt64 = 0

    /// Creates an error.
    public init(kind: String, source: FailureSource, message: String, closeCode: UInt16? = nil,
                closeReason: String? = nil, httpStatus: Int? = nil) {
        self.kind = kind
        self.source = source
        self.message = message
        self.closeCode = closeCode
        self.closeReason = closeReason
        self.httpStatus = httpStatus
    }

    /// The message, through ``Secrets/redact(_:)``.
    public var description: String { Secrets.redact(message) }

    /// Equal when everything but the count's ``occurrence`` is.
    public static func == (a: WebSocketError, b: WebSocketError) -> Bool {
        a.kind == b.kind && a.source == b.source && a.message == b.message && a.closeCode == b.closeCode
            && a.closeReason == b.closeReason && a.httpStatus == b.httpStatus
    }

    /// Hashes what ``==`` compares.
    public func hash(into h: inout Hasher) {
        h.combine(kind); h.combine(source); h.combine(message); h.combine(closeCode); h.combine(closeReason); h.combine(httpStatus)
    }

    /// Nothing arrived within a receive's time-out (`ws_receive_timeout`, server).
    static let receiveTimeoutKind = "ws_receive_timeout"

    /// The handshake answered with a status other than 101 (`ws_handshake_<status>`, server),
    /// naming the server (`authority`, when known) and quoting the start of its body. A 2xx is
    /// an answer from something that is not a WebSocket endpoint, and says so.
    static func handshakeStatus(_ status: Int, reason: String, body: String, authority: String? = nil) -> WebSocketError {
        let tail = body.isEmpty ? "" : ": \(body)"
        let with = authority.map { "WebSocket handshake with \($0)" } ?? "WebSocket handshake"
        let phrase = reason.isEmpty ? "" : " \(reason)"
        let what = (200...299).contains(status)
            ? "\(with) answered HTTP \(status)\(phrase) instead of 101 Switching Protocols (not a WebSocket endpoint?)"
            : "\(with) rejected with HTTP \(status)\(phrase)"
        return WebSocketError(kind: "ws_handshake_\(status)", source: .server, message: what + tail, httpStatus: status)
    }

    /// The 101 response was not a valid upgrade (`ws_handshake_invalid`, server).
    static func handshakeInvalid(_ why: String) -> WebSocketError {
        WebSocketError(kind: "ws_handshake_invalid", source: .server, message: "invalid WebSocket handshake response: \(why)")
    }

    /// The connection ended with `info` (`ws_close_<code>`), seen from `role`: the text says who
    /// closed and why — `WebSocket closed by the server with 4001 "bye"`, `WebSocket closed by
    /// LoadKit with 1007: the server sent invalid data (text message is not valid UTF-8)`, or a
    /// drop without close frame (1006). The source is the peer's side in every case: a close we
    /// send because the peer broke the protocol is still the peer's fault.
    static func closed(_ info: WebSocketCloseInfo, role: WebSocketRole = .client) -> WebSocketError {
        let code = info.code
        let peer = role == .client ? "the server" : "the client"
        let what: String
        if code == WebSocketCloseCode.abnormalClosure {
            what = "WebSocket connection dropped without a close frame (1006)" + (info.detail.map { ": \($0)" } ?? "")
        } else if info.initiatedByPeer {
            what = code == WebSocketCloseCode.noStatusReceived
                ? "WebSocket closed by \(peer) without a status code (1005)"
                : "WebSocket closed by \(peer) with \(code)" + (info.reason.isEmpty ? "" : " \"\(info.reason)\"")
        } else {
            let why: String
            switch code {
            case WebSocketCloseCode.invalidPayloadData: why = "\(peer) sent invalid data"
            case WebSocketCloseCode.messageTooBig: why = "\(peer) sent a message over the size limit"
            default: why = "\(peer) broke the WebSocket protocol"
            }
            what = "WebSocket closed by LoadKit with \(code): \(why)" + (info.detail.map { " (\($0))" } ?? "")
        }
        return WebSocketError(kind: "ws_close_\(code)", source: role == .client ? .server : .loadGenerator,
                              message: Secrets.redact(what), closeCode: code, closeReason: info.reason)
    }

    /// The connection is closing or closed on our own request (`ws_closed`, script).
    static let closedLocally = WebSocketError(kind: "ws_closed", source: .script,
                                              message: "WebSocket is closed (closed locally)")
}

/// Close status codes (RFC 6455 §7.4.1) and their validity on the wire.
public enum WebSocketCloseCode {
    /// Normal closure.
    public static let normal: UInt16 = 1000
    /// Endpoint going away (server shutdown, page navigation).
    public static let goingAway: UInt16 = 1001
    /// Protocol error.
    public static let protocolError: UInt16 = 1002
    /// Data type the endpoint cannot accept.
    public static let unsupportedData: UInt16 = 1003
    /// Reserved: no status code was present. Never sent.
    public static let noStatusReceived: UInt16 = 1005
    /// Reserved: closed without a close frame. Never sent.
    public static let abnormalClosure: UInt16 = 1006
    /// Text not valid UTF-8 (or otherwise inconsistent data).
    public static let invalidPayloadData: UInt16 = 1007
    /// Policy violation.
    public static let policyViolation: UInt16 = 1008
    /// Message too big to process.
    public static let messageTooBig: UInt16 = 1009
    /// Client expected an extension the server did not negotiate.
    public static let mandatoryExtension: UInt16 = 1010
    /// Unexpected server condition.
    public static let internalError: UInt16 = 1011
    /// Reserved: TLS handshake failure. Never sent.
    public static let tlsHandshake: UInt16 = 1015

    /// True when `code` may appear in a close frame: 1000–1003, 1007–1014 (1012–1014 are
    /// IANA-registered), and 3000–4999 (libraries and applications). 1004–1006, 1015 and
    /// everything else are never sent.
    public static func isValidOnWire(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }
}

/// How a WebSocket connection ended.
public struct WebSocketCloseInfo: Sendable, Hashable, CustomStringConvertible {
    /// The close code: the peer's (or 1005 when its close frame had none), 1006 for an abrupt drop,
    /// or the code we sent when we closed because of a violation.
    public var code: UInt16
    /// The close reason (UTF-8, at most 123 bytes on the wire).
    public var reason: String
    /// True when the peer started the closing handshake or dropped the connection.
    public var initiatedByPeer: Bool
    /// Extra detail for abrupt drops and protocol errors (transport error, violation).
    public var detail: String?

    /// Creates close information.
    public init(code: UInt16, reason: String = "", initiatedByPeer: Bool, detail: String? = nil) {
        self.code = code
        self.reason = reason
        self.initiatedByPeer = initiatedByPeer
        self.detail = detail
    }

    public var description: String {
        "close \(code)" + (reason.isEmpty ? "" : " '\(reason)'") + (initiatedByPeer ? " by peer" : " by us")
            + (detail.map { " (\($0))" } ?? "")
    }
}

/// Encoding and decoding of close frame payloads (2-byte code + UTF-8 reason).
enum WebSocketClosePayload {
    /// Parses a received close payload: nil code for an empty payload (1005); errors for a
    /// 1-byte payload, a code not allowed on the wire, or a reason that is not UTF-8.
    static func parse(_ p: UnsafeRawBufferPointer) throws(WebSocketProtocolError) -> (code: UInt16?, reason: String) {
        if p.count == 0 { return (nil, "") }
        if p.count == 1 { throw .protocolError("close frame payload of 1 byte") }
        let code = UInt16(p[0]) << 8 | UInt16(p[1])
        guard WebSocketCloseCode.isValidOnWire(code) else { throw .protocolError("close code \(code) is not allowed on the wire") }
        let reasonBytes = UnsafeRawBufferPointer(rebasing: p[2...])
        var v = UTF8Validator()
        guard v.validate(reasonBytes), v.isComplete else { throw .invalidData("close reason is not valid UTF-8") }
        return (code, String(decoding: reasonBytes, as: UTF8.self))
    }

    /// Builds a close payload; the reason is cut to 123 bytes at a character boundary.
    static func make(code: UInt16?, reason: String) -> [UInt8] {
        guard let code else { return [] }
        var out: [UInt8] = [UInt8(code >> 8), UInt8(code & 0xFF)]
        var budget = 123
        for ch in reason.unicodeScalars {
            let n = UTF8.width(ch)
            if n > budget { break }
            budget -= n
            out.append(contentsOf: String(ch).utf8)
        }
        return out
    }
}
