import LoadKitTransport

/// The server role of the STOMP codec, for fixtures: judges client frames and builds CONNECTED,
/// MESSAGE, RECEIPT and ERROR frames. A plain state machine without I/O; the fixture owns
/// routing (destinations → subscribers) and authentication, and parses the client's bytes with
/// its own ``StompFrameParser`` created with `peer: .loadGenerator` (kept outside this struct so
/// the parser's frame callback may call ``receive(_:now:)``).
package struct StompServerSession: Sendable {
    /// Session phases.
    public enum State: Sendable, Equatable {
        /// Waiting for CONNECT/STOMP.
        case awaitingConnect
        /// CONNECTED sent.
        case connected
        /// DISCONNECT received or ERROR sent: close after flushing.
        case closed
    }

    /// A client request, already validated against the spec's required headers.
    public enum Request: Sendable {
        /// CONNECT or STOMP: answer with ``accept(_:heartBeat:now:server:session:)`` or ``errorFrame(message:body:receiptID:)``.
        case connect(StompFrame)
        /// SUBSCRIBE with its id, destination and ack mode.
        case subscribe(id: String, destination: String, ack: StompAckMode, frame: StompFrame)
        /// UNSUBSCRIBE of a subscription id.
        case unsubscribe(id: String, frame: StompFrame)
        /// SEND to a destination.
        case send(destination: String, frame: StompFrame)
        /// ACK of an ack id.
        case ack(id: String, frame: StompFrame)
        /// NACK of an ack id.
        case nack(id: String, frame: StompFrame)
        /// BEGIN, COMMIT or ABORT with its transaction id.
        case transaction(command: StompCommand, id: String, frame: StompFrame)
        /// DISCONNECT: send the receipt (if asked) then close.
        case disconnect(frame: StompFrame)
    }

    /// Current phase.
    public private(set) var state: State = .awaitingConnect
    /// Negotiated heart-beats, after ``accept(_:heartBeat:now:server:session:)``.
    public private(set) var heartBeatClock: StompHeartBeatClock
    /// Live subscriptions: id → (destination, ack mode).
    public private(set) var subscriptions: [String: (destination: String, ack: StompAckMode)] = [:]
    /// The version chosen at CONNECT.
    public private(set) var version = "1.2"

    /// Creates a session awaiting CONNECT.
    public init(now: UInt64 = monotonicNanos()) {
        heartBeatClock = StompHeartBeatClock(heartBeat: .none, now: now)
    }

    /// Judges one client frame. Errors are protocol violations: answer with ``errorFrame(message:body:receiptID:)``
    /// and close. A frame's `receipt` header is the caller's to answer (``receiptFrame(for:)``)
    /// after acting on the request.
    public mutating func receive(_ frame: StompFrame, now: UInt64 = monotonicNanos()) -> Result<Request, StompError> {
        heartBeatClock.lastReceived = now
        func missing(_ h: String) -> Result<Request, StompError> {
            .failure(.malformed("\(frame.command) without '\(h)' header", source: .loadGenerator))
        }
        switch state {
        case .closed:
            return .failure(.unexpected("\(frame.command) after the session ended", source: .loadGenerator))
        case .awaitingConnect:
            guard frame.command == .connect || frame.command == .stomp else {
                return .failure(.unexpected("\(frame.command) before CONNECT", source: .loadGenerator))
            }
            return .success(.connect(frame))
        case .connected:
            break
        }
        switch frame.command {
        case .send:
            guard let d = frame["destination"] else { return missing("destination") }
            return .success(.send(destination: d, frame: frame))
        case .subscribe:
            guard let id = frame["id"] else { return missing("id") }
            guard let d = frame["destination"] else { return missing("destination") }
            let ackValue = frame["ack"] ?? "auto"
            guard let ack = StompAckMode(rawValue: ackValue) else {
                return .failure(.malformed("SUBSCRIBE with ack mode '\(ackValue)'", source: .loadGenerator))
            }
            subscriptions[id] = (d, ack)
            return .success(.subscribe(id: id, destination: d, ack: ack, frame: frame))
        case .unsubscribe:
            guard let id = frame["id"] else { return missing("id") }
            subscriptions[id] = nil
            return .success(.unsubscribe(id: id, frame: frame))
        case .ack, .nack:
            guard let id = frame["id"] else { return missing("id") }
            return .success(frame.command == .ack ? .ack(id: id, frame: frame) : .nack(id: id, frame: frame))
        case .begin, .commit, .abort:
            guard let t = frame["transaction"] else { return missing("transaction") }
            return .success(.transaction(command: frame.command, id: t, frame: frame))
        case .disconnect:
            state = .closed
            return .success(.disconnect(frame: frame))
        default:
            return .failure(.unexpected("\(frame.command) from a client", source: .loadGenerator))
        }
    }

    /// Accepts a CONNECT: negotiates version and heart-beats (`heartBeat`: what the server can
    /// send and wants to receive, in ms) and returns the CONNECTED frame, or an error when the
    /// client offers no version we speak or a malformed heart-beat.
    public mutating func accept(_ connect: StompFrame, heartBeat: (send: UInt64, receive: UInt64) = (0, 0),
                                now: UInt64 = monotonicNanos(), server: String? = "LoadKit",
                                session: String? = nil) -> Result<StompFrame, StompError> {
        let offered = (connect["accept-version"] ?? "1.0").split(separator: ",").map { $0.trimmingSpaces }
        guard let v = ["1.2", "1.1", "1.0"].first(where: { v in offered.contains { $0 == v } }) else {
            return .failure(.unexpected("CONNECT accept-version '\(connect["accept-version"] ?? "")' (supported: 1.0,1.1,1.2)", source: .loadGenerator))
        }
        guard let client = StompHeartBeat.parseHeader(connect["heart-beat"]) else {
            return .failure(.malformed("CONNECT heart-beat '\(connect["heart-beat"] ?? "")'", source: .loadGenerator))
        }
        version = v
        let hb = StompHeartBeat.negotiate(own: heartBeat, peer: client)
        heartBeatClock = StompHeartBeatClock(heartBeat: hb, now: now)
        state = .connected
        var f = StompFrame(.connected, headers: [("version", v), ("heart-beat", "\(heartBeat.send),\(heartBeat.receive)")])
        if let server { f.addHeader("server", server) }
        if let session { f.addHeader("session", session) }
        return .success(f)
    }

    /// Heart-beat decision for the server side (send an EOL when idle; drop a silent client).
    public mutating func tick(now: UInt64) -> StompHeartBeatClock.Decision {
        guard state == .connected else { return .none }
        let d = heartBeatClock.tick(now: now)
        if d == .sendHeartBeat { heartBeatClock.lastSent = now }
        return d
    }

    /// Records written bytes (heart-beat bookkeeping).
    public mutating func bytesSent(now: UInt64) { heartBeatClock.lastSent = now }
    /// Records received bytes (heart-beat bookkeeping).
    public mutating func bytesReceived(now: UInt64) { heartBeatClock.lastReceived = now }

    /// Marks the session over (after sending ERROR).
    public mutating func close() { state = .closed }

    /// The RECEIPT answering `frame`'s `receipt` header, or nil when none was asked for.
    public static func receiptFrame(for frame: StompFrame) -> StompFrame? {
        guard let r = frame["receipt"] else { return nil }
        return StompFrame(.receipt, headers: [("receipt-id", r)])
    }

    /// An ERROR frame (`message` header, optional body and `receipt-id`). Send it, then close.
    public static func errorFrame(message: String, body: String = "", receiptID: String? = nil) -> StompFrame {
        var f = StompFrame(.error, headers: [("message", message), ("content-type", "text/plain")], text: body)
        if let receiptID { f.addHeader("receipt-id", receiptID) }
        return f
    }

    /// Appends a MESSAGE frame straight into `buffer` (the broadcast hot path: no frame value).
    public static func encodeMessage(destination: String, subscription: String, messageID: String, ack: String? = nil,
                                     contentType: String? = nil, headers: [(String, String)] = [],
                                     body: UnsafeRawBufferPointer, into buffer: inout [UInt8]) {
        StompFrameEncoder.appendHead(.message, into: &buffer)
        StompFrameEncoder.appendHeader("destination", destination, escape: true, into: &buffer)
        StompFrameEncoder.appendHeader("message-id", messageID, escape: true, into: &buffer)
        StompFrameEncoder.appendHeader("subscription", subscription, escape: true, into: &buffer)
        if let ack { StompFrameEncoder.appendHeader("ack", ack, escape: true, into: &buffer) }
        if let contentType { StompFrameEncoder.appendHeader("content-type", contentType, escape: true, into: &buffer) }
        for (n, v) in headers where n != "content-length" {
            StompFrameEncoder.appendHeader(n, v, escape: true, into: &buffer)
        }
        StompFrameEncoder.appendBody(body, command: .message, into: &buffer)
    }
}
