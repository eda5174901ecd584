import LoadKitTransport

/// The protocol behaviour of an open WebSocket — ping answers and the closing handshake — as a
/// plain value: each event returns the action the I/O code must perform. No sockets, no clocks;
/// tests drive it directly.
///
/// open → closing (we sent a close, or the peer did and we answered) → closed.
/// The server closes TCP once the handshake completes; the client waits (bounded) for the server
/// to do so (RFC 6455 §7.1.1). Protocol violations send a close with 1002/1007/1009 and drop TCP.
package struct WebSocketStateMachine: Sendable {
    /// Connection states.
    public enum State: Sendable, Hashable {
        /// Data may flow both ways.
        case open
        /// A close frame was sent; `info` is what will be reported when TCP closes.
        indirect case closing(WebSocketCloseInfo)
        /// Finished; `info` says how.
        indirect case closed(WebSocketCloseInfo)
        // Both `indirect` (boxed): inline, the info made every open connection 40 bytes larger.
    }

    /// What to do after sending a close frame.
    public enum AfterClose: Sendable, Hashable {
        /// Wait this long for the peer's close (and TCP close), then drop the connection.
        case awaitPeer(Duration)
        /// Close TCP at once (server after a completed handshake, or after a violation).
        case closeConnection
    }

    /// What the I/O code must do.
    public enum Action: Sendable, Hashable {
        /// Nothing.
        case none
        /// Answer with a pong carrying the ping's payload.
        case sendPong
        /// Send a close frame (`code` nil: empty payload), then act on `then`.
        case sendClose(code: UInt16?, reason: String, then: AfterClose)
        /// Drop the TCP connection now.
        case closeConnection
    }

    /// The current state.
    public private(set) var state: State = .open
    /// Which side this is.
    public let role: WebSocketRole
    /// How long to wait for the peer's part of the closing handshake.
    public let closeTimeout: Duration
    private var sentClose = false

    /// Creates an open connection's state machine.
    public init(role: WebSocketRole, closeTimeout: Duration = .seconds(5)) {
        self.role = role
        self.closeTimeout = closeTimeout
    }

    /// True while data frames may be sent.
    public var canSend: Bool { state == .open }

    /// A ping arrived.
    public mutating func receivedPing() -> Action {
        state == .open ? .sendPong : .none
    }

    /// A close frame arrived with `code` (nil when its payload was empty) and `reason`.
    public mutating func receivedClose(code: UInt16?, reason: String) -> Action {
        switch state {
        case .open:
            // The peer starts the handshake: echo its code, then finish.
            let info = WebSocketCloseInfo(code: code ?? WebSocketCloseCode.noStatusReceived, reason: reason, initiatedByPeer: true)
            state = .closing(info)
            sentClose = true
            return .sendClose(code: code, reason: "", then: role == .server ? .closeConnection : .awaitPeer(closeTimeout))
        case .closing(let info):
            // The peer answers our close: the handshake is complete.
            guard sentClose, !info.initiatedByPeer else { return .none }
            _ = code  // we report the code we sent, not the peer's echo
            return role == .server ? .closeConnection : .none
        case .closed:
            return .none
        }
    }

    /// The application asks to close.
    public mutating func close(code: UInt16, reason: String) -> Action {
        guard state == .open else { return .none }
        state = .closing(WebSocketCloseInfo(code: code, reason: reason, initiatedByPeer: false))
        sentClose = true
        return .sendClose(code: code, reason: reason, then: .awaitPeer(closeTimeout))
    }

    /// The application closes because the peer failed the protocol carried inside (a STOMP ERROR
    /// frame, missed heart-beats): a normal closing handshake, whose close information says
    /// `detail` — the session counts as ended by the peer.
    package mutating func close(code: UInt16, reason: String, endedByPeer detail: String) -> Action {
        guard state == .open else { return .none }
        state = .closing(WebSocketCloseInfo(code: code, reason: reason, initiatedByPeer: false, detail: detail))
        sentClose = true
        return .sendClose(code: code, reason: reason, then: .awaitPeer(closeTimeout))
    }

    /// The peer broke the protocol: fail the connection with the error's close code.
    public mutating func protocolViolation(_ error: WebSocketProtocolError) -> Action {
        switch state {
        case .open:
            state = .closing(WebSocketCloseInfo(code: error.closeCode, reason: "", initiatedByPeer: false, detail: error.message))
            sentClose = true
            return .sendClose(code: error.closeCode, reason: String(error.message.prefix(100)), then: .closeConnection)
        case .closing(var info):
            if info.detail == nil { info.detail = error.message }
            state = .closing(info)
            return .closeConnection
        case .closed:
            return .none
        }
    }

    /// The close timer fired: the peer did not finish the handshake in time.
    public mutating func closeTimerFired() -> Action {
        if case .closing = state { return .closeConnection }
        return .none
    }

    /// TCP closed (`transportError` nil for our own orderly close). Returns how the connection
    /// ended: an abrupt drop while open is 1006.
    public mutating func connectionClosed(transportError: String?) -> WebSocketCloseInfo {
        let info: WebSocketCloseInfo
        switch state {
        case .open:
            info = WebSocketCloseInfo(code: WebSocketCloseCode.abnormalClosure, initiatedByPeer: true,
                                      detail: transportError ?? "connection closed without a close frame")
        case .closing(let i):
            info = i
        case .closed(let i):
            return i
        }
        state = .closed(info)
        return info
    }
}
