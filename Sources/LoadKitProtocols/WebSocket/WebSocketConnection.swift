import LoadKitTransport

/// The hot-path hook: a loop-confined receiver of a WebSocket's messages, with no copy and no
/// task hop per message. STOMP and other protocols built on WebSocket implement it.
///
/// Contract:
/// - Every call runs on the connection's ``WebSocketConnection/loop``.
/// - `payload` points into a buffer owned by the connection (or the loop's read buffer); it is
///   valid only during the call. Parse it there or copy what must be kept.
/// - Fragmented messages arrive once, reassembled. Text payloads are validated UTF-8.
/// - Ping, pong and close frames are handled by the connection and never reach the handler.
/// - From inside these calls (or anything else on the loop) answer with
///   ``WebSocketConnection/sendOnLoop(_:payload:)`` / ``WebSocketConnection/sendOnLoop(text:)``,
///   which encode and write at once.
/// - After `didCloseWith`, nothing more is delivered and the connection drops its reference to
///   the handler (breaking a handler ↔ connection cycle).
///
/// ```swift
/// final class StompOverWS: WebSocketHandler {
///     func webSocket(_ ws: WebSocketConnection, didReceive opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) {
///         parser.feed(payload)                      // parse in place
///         ws.sendOnLoop(text: reply)                // answer without hopping
///     }
///     func webSocket(_ ws: WebSocketConnection, didCloseWith info: WebSocketCloseInfo) { … }
/// }
/// client.connection.setHandler(StompOverWS())      // from any thread; queued messages are replayed
/// ```
package protocol WebSocketHandler: AnyObject {
    /// A complete text (`.text`) or binary (`.binary`) message arrived.
    func webSocket(_ ws: WebSocketConnection, didReceive opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer)
    /// The connection closed; `info` says how (1006 for an abrupt drop).
    func webSocket(_ ws: WebSocketConnection, didCloseWith info: WebSocketCloseInfo)
    /// The runner is closing the connection for a script that left it open (its iteration
    /// failed, its user ended): a protocol carried inside (STOMP) ends its session now, not when
    /// the closing handshake completes. Default: nothing.
    func webSocketAbandoned(_ ws: WebSocketConnection)
}

extension WebSocketHandler {
    /// Default: nothing (the close arrives through ``webSocket(_:didCloseWith:)``).
    package func webSocketAbandoned(_ ws: WebSocketConnection) {}
}

/// One open WebSocket over a ``Transport`` (TCP, TLS or in-memory), in either role, after the handshake: frame
/// parsing, reassembly, ping answers, the closing handshake, and delivery of messages to a
/// ``WebSocketHandler`` (`setCallbacks` wraps two closures in one), or, while no handler is set,
/// to an async ``receive()`` queue.
///
/// Confined to its transport's loop: methods marked "on the loop" must run there; the others
/// are thread-safe. Idle cost is a few hundred bytes: buffers exist only while a frame or a
/// fragmented message is incomplete, or while a send cannot be written at once.
package final class WebSocketConnection: ConnectionDelegate, AbandonableSession, @unchecked Sendable {
    /// The transport underneath.
    public let transport: any Transport
    /// The loop every callback runs on.
    public var loop: EventLoop { transport.loop }
    /// Which side this is (clients mask what they send; servers require masked frames).
    public let role: WebSocketRole
    /// The subprotocol agreed in the handshake, or nil.
    public let subprotocol: String?
    /// `monotonicNanos()` of the last bytes received: for fixtures that close silent peers
    /// (see ``closeIfIdle(longerThan:code:reason:)``). Read on the loop.
    public private(set) var lastActivityNanos: UInt64
    /// `monotonicNanos()` of the last pong received (0 if none). Read on the loop.
    public private(set) var lastPongNanos: UInt64 = 0

    private var parser: WebSocketFrameParser
    private var assembler: WebSocketMessageAssembler
    private var machine: WebSocketStateMachine
    private var maskKeys: MaskKeyGenerator?
    private var closeTimer: LoopTimer?
    private var reading = true
    /// How the connection ended, once it has.
    public private(set) var closeInfo: WebSocketCloseInfo? {
        get { closeBox?.info }
        set { closeBox = newValue.map(CloseBox.init) }
    }
    // Boxed: an open connection keeps 8 bytes for it, not 48.
    private var closeBox: CloseBox?
    private final class CloseBox {
        let info: WebSocketCloseInfo
        init(_ info: WebSocketCloseInfo) { self.info = info }
    }

    private var handler: (any WebSocketHandler)?
    /// The virtual user's listener for `ws_msgs_*`, `data_*` and `ws_session_duration` (clients
    /// opened inside a load run); set before ``start(initialBytes:)``.
    var sessionObserver: (any WebSocketSessionObserver)?
    private var messagesReceived = 0
    var inbox: [WebSocketMessage] = []
    var inboxHead = 0
    var receivers: [(token: ReceiveToken, cont: CheckedContinuation<WebSocketMessage, any Error>)] = []
    private var closeWaiters: [CheckedContinuation<WebSocketCloseInfo, Never>] = []

    /// Wraps an upgraded transport. Call ``start(initialBytes:)`` on the loop to begin.
    /// - Parameters:
    ///   - maxMessageSize: larger messages (and frames) fail the connection with 1009.
    ///   - closeTimeout: how long the closing handshake may take before the transport is dropped.
    public init(transport: any Transport, role: WebSocketRole, subprotocol: String? = nil,
                maxMessageSize: Int = 16 << 20, closeTimeout: Duration = .seconds(5)) {
        self.transport = transport
        self.role = role
        self.subprotocol = subprotocol
        parser = WebSocketFrameParser(role: role == .client ? .client : .server, maxFrameSize: maxMessageSize)
        assembler = WebSocketMessageAssembler(maxMessageSize: maxMessageSize)
        machine = WebSocketStateMachine(role: role, closeTimeout: closeTimeout)
        maskKeys = role == .client ? MaskKeyGenerator() : nil
        lastActivityNanos = monotonicNanos()
    }

    /// Becomes the transport's delegate and processes `initialBytes` (bytes that arrived
    /// right behind the handshake). On the loop.
    public func start(initialBytes: [UInt8] = []) {
        transport.start(delegate: self)
        if !initialBytes.isEmpty { feed(initialBytes) }
        if !transport.isOpen && closeInfo == nil { finish(transportError: "connection closed during the handshake") }
    }

    /// Processes bytes that were read before this connection became the delegate (a server's
    /// first message in the same read as its 101). On the loop. They count as any later read's:
    /// their messages in `ws_msgs_received`, their bytes in `data_received` (the handshake's
    /// count stopped at the head's end).
    func feed(_ bytes: [UInt8]) {
        var copy = bytes
        copy.withUnsafeMutableBytes { received($0) }
    }

    /// True while messages may be sent (not closing or closed). On the loop.
    public var isOpen: Bool { machine.canSend && transport.isOpen }

    // MARK: delivery set-up (thread-safe)

    /// Routes messages to `handler` from now on (see ``WebSocketHandler``); messages already
    /// queued for ``receive()`` are handed to it first. Thread-safe.
    public func setHandler(_ handler: any WebSocketHandler) {
        let box = UncheckedSendable(handler)
        onLoop { [self] in
            let handler = box.value
            self.handler = handler
            drainInbox()
            if let info = closeInfo { handler.webSocket(self, didCloseWith: info); self.handler = nil }
        }
    }

    /// Routes messages to `onMessage` and the end of the connection to `onClose`, both run on the
    /// loop; queued messages are delivered first. Thread-safe.
    public func setCallbacks(onMessage: @escaping (WebSocketMessage) -> Void,
                             onClose: @escaping (WebSocketCloseInfo) -> Void = { _ in }) {
        setHandler(CallbackHandler(onMessage: onMessage, onClose: onClose))
    }

    private func drainInbox() {
        while inboxHead < inbox.count, let h = handler {
            let m = inbox[inboxHead]
            inboxHead += 1
            switch m {
            case .text(let s): var t = s; t.withUTF8 { h.webSocket(self, didReceive: .text, payload: UnsafeRawBufferPointer($0)) }
            case .binary(let b): b.withUnsafeBytes { h.webSocket(self, didReceive: .binary, payload: $0) }
            }
        }
        if inboxHead == inbox.count { inbox = []; inboxHead = 0 }
    }

    // MARK: sending

    /// Sends one unfragmented message or control frame at once. On the loop. False when the
    /// connection is closing or closed (the message is dropped).
    @discardableResult
    public func sendOnLoop(_ opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) -> Bool {
        guard machine.canSend, transport.isOpen else { return false }
        writeFrame(opcode, payload)
        return true
    }

    /// Sends a text message (the bytes must be UTF-8). On the loop.
    @discardableResult
    public func sendOnLoop(text utf8: UnsafeRawBufferPointer) -> Bool { sendOnLoop(.text, payload: utf8) }

    /// Sends a text message. On the loop.
    @discardableResult
    public func sendOnLoop(text: String) -> Bool {
        var t = text
        return t.withUTF8 { sendOnLoop(.text, payload: UnsafeRawBufferPointer($0)) }
    }

    /// Sends a binary message. On the loop.
    @discardableResult
    public func sendOnLoop(binary: [UInt8]) -> Bool { binary.withUnsafeBytes { sendOnLoop(.binary, payload: $0) } }

    /// Sends a text message from any thread, fire-and-forget (dropped if the connection closes).
    public func send(text: String) {
        if loop.inLoop { sendOnLoop(text: text) } else { loop.execute { [self] in sendOnLoop(text: text) } }
    }

    /// Sends a binary message from any thread, fire-and-forget.
    public func send(binary: [UInt8]) {
        if loop.inLoop { sendOnLoop(binary: binary) } else { loop.execute { [self] in sendOnLoop(binary: binary) } }
    }

    /// Sends a ping (payload at most 125 bytes) from any thread.
    public func ping(_ payload: [UInt8] = []) {
        let p = Array(payload.prefix(125))
        onLoop { [self] in _ = p.withUnsafeBytes { sendOnLoop(.ping, payload: $0) } }
    }

    private func writeFrame(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer) {
        // Encoded into the loop's buffer: an idle connection keeps no send buffer of its own.
        var out = loop.takeEncodeBuffer(0)
        WebSocketFrameEncoder.encode(into: &out, opcode: opcode, maskKey: maskKeys?.next(), payload: payload)
        out.withUnsafeBytes { transport.write(rawBytes: $0) }
        if let observer = sessionObserver {
            let tls = transport.takeWireOverhead()  // data_* are the bytes on the wire: TLS records too
            observer.traffic(messagesSent: opcode == .text || opcode == .binary ? 1 : 0, messagesReceived: 0,
                             bytesSent: out.count + tls.sent, bytesReceived: tls.received)
        }
        loop.returnEncodeBuffer(0, out)
    }

    // MARK: closing

    /// Starts the closing handshake with `code` and `reason` (thread-safe) and returns once the
    /// connection is closed — the peer answered, or `closeTimeout` passed and the transport was dropped.
    @discardableResult
    public func close(code: UInt16 = WebSocketCloseCode.normal, reason: String = "") async -> WebSocketCloseInfo {
        await withCheckedContinuation { (cont: CheckedContinuation<WebSocketCloseInfo, Never>) in
            onLoop { [self] in
                if let info = closeInfo { cont.resume(returning: info); return }
                closeWaiters.append(cont)
                closeOnLoop(code: code, reason: reason)
            }
        }
    }

    /// Starts the closing handshake without waiting. On the loop.
    public func closeOnLoop(code: UInt16 = WebSocketCloseCode.normal, reason: String = "") {
        perform(machine.close(code: code, reason: reason))
    }

    /// Starts a normal closing handshake because the peer failed the protocol carried inside
    /// (`detail` says how): the session counts as ended by the peer. On the loop.
    package func closeOnLoop(endedByPeer detail: String) {
        perform(machine.close(code: WebSocketCloseCode.normal, reason: "", endedByPeer: detail))
    }

    /// Closes with 1001 (going away) for a script that left the connection open (an iteration
    /// that threw, a user that ended), then calls `closed`; nothing when already closing. Thread-safe.
    package func closeAbandoned(_ closed: @escaping @Sendable () -> Void) {
        loop.runOrExecute { [self] in
            guard machine.canSend else { return }
            closeOnLoop(code: WebSocketCloseCode.goingAway)
            handler?.webSocketAbandoned(self)
            closed()
        }
    }

    /// Closes with `code` and `reason` when nothing was received for `idle`; true if it did.
    /// For fixtures that drop silent clients (e.g. 4000 `TIMEOUT` after 60 s). On the loop.
    @discardableResult
    public func closeIfIdle(longerThan idle: Duration, code: UInt16, reason: String) -> Bool {
        guard machine.canSend, monotonicNanos() &- lastActivityNanos > idle.nanoseconds else { return false }
        closeOnLoop(code: code, reason: reason)
        return true
    }

    /// Resumes once the connection is closed, with how it ended (thread-safe).
    public func waitClosed() async -> WebSocketCloseInfo {
        await withCheckedContinuation { (cont: CheckedContinuation<WebSocketCloseInfo, Never>) in
            onLoop { [self] in
                if let info = closeInfo { cont.resume(returning: info) } else { closeWaiters.append(cont) }
            }
        }
    }

    // MARK: ConnectionDelegate

    /// Transport callback: bytes arrived (on the loop).
    public func connection(_ connection: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        lastActivityNanos = monotonicNanos()
        // The loop's read buffer is mutable memory handed out read-only; it is overwritten after
        // this call anyway, so masked payloads are unmasked in place instead of copied.
        received(UnsafeMutableRawBufferPointer(mutating: bytes))
    }

    /// Processes bytes read and counts them and the messages they completed. The observer is
    /// taken first: a read that ends the session (a frame breaking the protocol behind a message)
    /// closes it inside `process`, and its bytes and messages still count.
    private func received(_ bytes: UnsafeMutableRawBufferPointer) {
        let observer = sessionObserver
        let before = messagesReceived
        process(bytes)
        if let observer {
            let tls = transport.takeWireOverhead()
            observer.traffic(messagesSent: 0, messagesReceived: messagesReceived - before, bytesSent: tls.sent,
                             bytesReceived: bytes.count + tls.received)
        }
    }

    /// How the connection ends: ``closeInfo`` once closed, or — while the closing handshake
    /// finishes — the server's close (its close frame arrived, or it broke the protocol): nothing
    /// more will be read and nothing may be sent, so a send or receive fails now as that close,
    /// not as our own ("closed locally") or only once TCP closes. On the loop.
    var endingInfo: WebSocketCloseInfo? {
        if let closeInfo { return closeInfo }
        if case .closing(let info) = machine.state, info.initiatedByPeer || info.detail != nil { return info }
        return nil
    }

    /// Transport callback: the transport closed (on the loop).
    public func connection(_ connection: any Transport, didCloseWith error: TransportError?) {
        finish(transportError: error?.description)
    }

    private func process(_ bytes: UnsafeMutableRawBufferPointer) {
        guard reading else { return }
        do {
            try parser.parse(bytes) { header, payload in
                guard reading else { return }
                do throws(WebSocketProtocolError) {
                    try assembler.push(header, UnsafeRawBufferPointer(payload)) { op, p in dispatch(op, p) }
                } catch {
                    violation(error)
                }
            }
        } catch {
            violation(error)
        }
    }

    private func violation(_ error: WebSocketProtocolError) {
        guard reading else { return }
        reading = false
        perform(machine.protocolViolation(error))
        failReceivers()
    }

    /// Fails the waiting receives with how the connection ends, once no message can come.
    private func failReceivers() {
        guard !receivers.isEmpty, let info = endingInfo else { return }
        let err = Self.error(for: info, role: role)
        let rs = receivers
        receivers = []
        for r in rs { r.token.timer?.cancel(); r.cont.resume(throwing: err) }
    }

    private func dispatch(_ op: WebSocketOpcode, _ payload: UnsafeRawBufferPointer) {
        switch op {
        case .text, .binary:
            messagesReceived &+= 1
            if let h = handler {
                h.webSocket(self, didReceive: op, payload: payload)
            } else {
                let m = WebSocketMessage(op, payload)
                if !receivers.isEmpty {
                    let r = receivers.removeFirst()
                    r.token.timer?.cancel()
                    r.cont.resume(returning: m)
                } else {
                    inbox.append(m)
                }
            }
        case .ping:
            if machine.receivedPing() == .sendPong { writeFrame(.pong, payload) }
        case .pong:
            lastPongNanos = monotonicNanos()
        case .close:
            let parsed = Result { () throws(WebSocketProtocolError) in try WebSocketClosePayload.parse(payload) }
            switch parsed {
            case .success(let c):
                reading = false
                perform(machine.receivedClose(code: c.code, reason: c.reason))
                failReceivers()
            case .failure(let e):
                violation(e)
            }
        default:
            break
        }
    }

    private func perform(_ action: WebSocketStateMachine.Action) {
        switch action {
        case .none, .sendPong:
            break
        case .sendClose(let code, let reason, let then):
            let payload = WebSocketClosePayload.make(code: code, reason: reason)
            payload.withUnsafeBytes { writeFrame(.close, $0) }
            switch then {
            case .closeConnection: dropTransport()
            case .awaitPeer(let d):
                closeTimer?.cancel()
                closeTimer = loop.schedule(after: d) { [weak self] in
                    guard let self else { return }
                    perform(machine.closeTimerFired())
                }
            }
        case .closeConnection:
            dropTransport()
        }
    }

    // Closes the transport; when bytes are still queued (the close frame), half-close first so they go out,
    // and drop the connection for good if the peer does not close within a second.
    private func dropTransport() {
        guard transport.isOpen else { return }
        if transport.bufferedBytes == 0 {
            transport.close()
        } else {
            transport.shutdownOutput()
            closeTimer?.cancel()
            closeTimer = loop.schedule(after: .seconds(1)) { [weak self] in self?.transport.close() }
        }
    }

    private func finish(transportError: String?) {
        guard closeInfo == nil else { return }
        reading = false
        closeTimer?.cancel()
        closeTimer = nil
        let info = machine.connectionClosed(transportError: transportError)
        closeInfo = info
        // The handler first, while the user's listener is still attached: a protocol carried
        // inside (STOMP) counts the server's close as its session's failure through it.
        if let h = handler {
            handler = nil
            h.webSocket(self, didCloseWith: info)
        }
        sessionObserver?.sessionClosed(info)
        sessionObserver = nil
        failReceivers()
        let ws = closeWaiters
        closeWaiters = []
        for w in ws { w.resume(returning: info) }
    }

    func onLoop(_ work: @escaping @Sendable () -> Void) {
        if loop.inLoop { work() } else { loop.execute(work) }
    }
}

/// Identifies one waiting ``WebSocketConnection/receive(timeout:)`` call (loop-confined).
final class ReceiveToken: @unchecked Sendable {
    var cancelled = false
    var timer: LoopTimer?
}

extension WebSocketMessage {
    /// A copy of a text or binary payload as a message.
    init(_ op: WebSocketOpcode, _ payload: UnsafeRawBufferPointer) {
        self = op == .text ? .text(String(decoding: payload, as: UTF8.self)) : .binary(Array(payload))
    }
}

/// `setCallbacks`: two closures as a ``WebSocketHandler`` (messages copied into
/// ``WebSocketMessage`` values). Used on its connection's loop only.
private final class CallbackHandler: WebSocketHandler, @unchecked Sendable {
    let onMessage: (WebSocketMessage) -> Void
    let onClose: (WebSocketCloseInfo) -> Void

    init(onMessage: @escaping (WebSocketMessage) -> Void, onClose: @escaping (WebSocketCloseInfo) -> Void) {
        self.onMessage = onMessage
        self.onClose = onClose
    }

    func webSocket(_ ws: WebSocketConnection, didReceive opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) {
        onMessage(WebSocketMessage(opcode, payload))
    }

    func webSocket(_ ws: WebSocketConnection, didCloseWith info: WebSocketCloseInfo) { onClose(info) }
}
