import LoadKitTransport

/// A classified STOMP failure.
///
/// Kinds: `stomp_malformed` (a frame broke the protocol; the source names the side that sent it),
/// `stomp_error` (the server sent ERROR), `stomp_heartbeat_timeout` (the peer fell silent),
/// `stomp_timeout` (CONNECTED or a RECEIPT did not arrive in time), `stomp_closed` (the session is
/// over), `stomp_protocol` (an unexpected but well-formed frame).
public struct StompError: ClassifiedError, CountedFailure, Sendable, Equatable {
    /// Report key (see the type's documentation).
    public var kind: String
    /// Which side is to blame.
    public var source: FailureSource
    /// Human-readable cause. Never contains passcodes or tokens.
    public var message: String
    /// Non-zero once the client counted this failure for its virtual user (a session the server
    /// ended): the copies the script sees later are not counted again.
    package var occurrence: UInt64 = 0

    /// Equal when kind, side and message are (whether or not it was counted yet).
    public static func == (a: StompError, b: StompError) -> Bool {
        a.kind == b.kind && a.source == b.source && a.message == b.message
    }

    /// Creates an error; prefer the static factories.
    public init(kind: String, source: FailureSource, message: String) {
        self.kind = kind
        self.source = source
        self.message = message
    }

    /// The message (what reports print), through ``Secrets/redact(_:)``.
    public var description: String { Secrets.redact(message) }

    /// A frame that does not follow the STOMP 1.2 grammar or exceeds a limit.
    public static func malformed(_ what: String, source: FailureSource) -> StompError {
        StompError(kind: "stomp_malformed", source: source, message: "malformed STOMP frame: \(what)")
    }

    /// The server sent an ERROR frame: its `message` header and the start of its body.
    public static func serverError(message: String?, bodyPrefix: String) -> StompError {
        var text = "STOMP ERROR from server: \(message ?? "(no message header)")"
        if !bodyPrefix.isEmpty { text += " — \(bodyPrefix)" }
        return StompError(kind: "stomp_error", source: .server, message: text)
    }

    /// Nothing arrived from the server within the negotiated heart-beat window.
    public static func heartBeatTimeout(silentForMillis: UInt64, expectedMillis: UInt64) -> StompError {
        StompError(kind: "stomp_heartbeat_timeout", source: .server,
                   message: "STOMP server silent for \(silentForMillis) ms (heart-beat expected every \(expectedMillis) ms)")
    }

    /// A response (CONNECTED, RECEIPT) did not arrive in time.
    public static func timeout(_ what: String) -> StompError {
        StompError(kind: timeoutKind, source: .server, message: "STOMP \(what) timed out")
    }

    /// The kind of ``timeout(_:)``.
    static let timeoutKind = "stomp_timeout"

    /// The session is closed or not yet connected.
    public static func closed(_ why: String) -> StompError {
        StompError(kind: "stomp_closed", source: .loadGenerator, message: "STOMP session closed: \(why)")
    }

    /// The server ended the connection without an ERROR frame or a close handshake of its own
    /// (a TCP FIN while the session was connected).
    static func droppedByServer() -> StompError {
        StompError(kind: "stomp_closed", source: .server, message: "STOMP session closed: the server closed the connection without ERROR")
    }

    /// A call on a session that `cause` ended earlier: the same failure (kind, side and, once
    /// counted, its occurrence), saying so.
    static func endedEarlier(by cause: any ClassifiedError) -> StompError {
        var e = StompError(kind: cause.kind, source: cause.source, message: "STOMP session ended earlier: \(cause.description)")
        if let counted = cause as? any CountedFailure { e.occurrence = counted.occurrence }
        return e
    }

    /// A well-formed frame that is not allowed in the current state.
    public static func unexpected(_ what: String, source: FailureSource) -> StompError {
        StompError(kind: "stomp_protocol", source: source, message: "unexpected STOMP frame: \(what)")
    }
}
