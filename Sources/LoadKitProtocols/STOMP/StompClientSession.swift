import Synchronization
import LoadKitTransport

/// Acknowledgement mode of a subscription.
public enum StompAckMode: String, Sendable, Hashable, CaseIterable {
    /// The server considers a message delivered once sent.
    case auto
    /// ACK acknowledges the message and every earlier one on the subscription.
    case client
    /// ACK/NACK acknowledge one message each.
    case clientIndividual = "client-individual"
}

/// Settings for a client session (what goes into CONNECT and how heart-beats are judged).
public struct StompClientConfiguration: Sendable {
    /// The `host` header (virtual host); nil sends none (some brokers require it).
    public var host: String?
    /// Extra CONNECT headers, in order: `login`, `passcode`, `Authorization: Bearer …`, ….
    public var connectHeaders: [(String, String)]
    /// What we offer: send at least every `send`, want to receive at least every `receive`
    /// (zero disables a direction).
    public var heartBeat: (send: Duration, receive: Duration)
    /// Silence allowed is the negotiated receive interval × this factor + ``toleranceMillis``.
    public var toleranceFactor: Double
    /// Fixed extra silence allowed, in milliseconds.
    public var toleranceMillis: UInt64
    /// Use the STOMP 1.2 `STOMP` command instead of `CONNECT`.
    public var useStompCommand: Bool

    /// Creates a configuration.
    public init(host: String? = nil, connectHeaders: [(String, String)] = [],
                heartBeat: (send: Duration, receive: Duration) = (.seconds(10), .seconds(10)),
                toleranceFactor: Double = 1.5, toleranceMillis: UInt64 = 250, useStompCommand: Bool = false) {
        self.host = host
        self.connectHeaders = connectHeaders
        self.heartBeat = heartBeat
        self.toleranceFactor = toleranceFactor
        self.toleranceMillis = toleranceMillis
        self.useStompCommand = useStompCommand
    }
}

/// The STOMP 1.2 client protocol as a plain state machine: it builds the frames to send and
/// judges the frames received, returning what the I/O layer must do. No I/O, no clocks of its own
/// (callers pass monotonic nanoseconds), so tests drive it directly.
package struct StompClientSession: Sendable {
    /// Session phases.
    public enum State: Sendable, Equatable {
        /// CONNECT not yet produced.
        case idle
        /// CONNECT sent, awaiting CONNECTED.
        case connecting
        /// CONNECTED received.
        case connected
        /// DISCONNECT sent, awaiting its receipt.
        case disconnecting
        /// Over (gracefully or by `failure`).
        case closed
    }

    /// What a received frame means for the I/O layer.
    public enum Action: Sendable {
        /// Nothing to do (e.g. a frame to ignore).
        case none
        /// CONNECTED arrived: start heart-beat timing with the tick interval of `heartBeat`.
        case connected(version: String, heartBeat: StompHeartBeat)
        /// A MESSAGE for a subscription: hand it to that subscription's handler.
        case message(StompFrame)
        /// A RECEIPT for an earlier frame: resume whoever waits for `id`.
        case receipt(id: String)
        /// The DISCONNECT receipt arrived: close the transport.
        case disconnected
        /// The session failed (ERROR frame, protocol violation): close the transport.
        case failed(StompError)
    }

    /// The configuration in use.
    public var configuration: StompClientConfiguration { configurationBox.value }
    // Shared by the sessions made with equal configurations in a row (every worker of a chat
    // run): one pointer per session instead of an 80-byte copy (`bench chat`).
    private let configurationBox: ConfigurationBox
    /// Current phase.
    public private(set) var state: State = .idle
    /// Negotiated heart-beats (``StompHeartBeat/none`` until CONNECTED).
    public private(set) var heartBeatClock: StompHeartBeatClock
    /// The STOMP version the server chose.
    public private(set) var version: String?
    /// Why the session ended, when it ended by failure.
    public private(set) var failure: StompError? {
        get { failureBox?.value }
        set { failureBox = newValue.map(FailureBox.init) }
    }
    // Boxed: a session that has not failed (nearly all of them) keeps 8 bytes for it, not 40.
    private var failureBox: FailureBox?
    private final class FailureBox: Sendable {
        let value: StompError
        init(_ value: StompError) { self.value = value }
    }
    /// The receipt id of our DISCONNECT, once sent.
    public private(set) var disconnectReceipt: String?

    private var nextSubscription = 0
    private var nextReceipt = 0
    // Values that must never appear in error text (passcodes, tokens).
    public init(configuration: StompClientConfiguration, now: UInt64 = monotonicNanos()) {
        configurationBox = ConfigurationBox.shared(configuration)
        heartBeatClock = StompHeartBeatClock(heartBeat: .none, now: now)
    }

    /// Credentials among the CONNECT headers, never to be echoed in errors: the parts of each
    /// credential header's value that ``Secrets`` registers (the credential without its scheme,
    /// a `Basic` password, …: ``Secrets/credentialParts(of:named:)``). Computed when an ERROR
    /// frame needs redacting, not kept per session (10,000 sessions would hold 10,000 copies).
    private var secrets: [String] {
        var secrets: [String] = []
        for (name, value) in configuration.connectHeaders where Secrets.isSecret(name) {
            secrets.append(contentsOf: Secrets.credentialParts(of: value, named: name))
        }
        return secrets
    }

    // MARK: connecting

    /// The CONNECT (or STOMP) frame; moves to `connecting`.
    public mutating func connectFrame(now: UInt64) -> StompFrame {
        state = .connecting
        var f = StompFrame(configuration.useStompCommand ? .stomp : .connect)
        f.addHeader("accept-version", "1.2")
        if let host = configuration.host { f.addHeader("host", host) }
        let hb = configuration.heartBeat
        f.addHeader("heart-beat", "\(Self.millis(hb.send)),\(Self.millis(hb.receive))")
        for (n, v) in configuration.connectHeaders { f.addHeader(n, v) }
        heartBeatClock.lastSent = now
        heartBeatClock.lastReceived = now
        return f
    }

    static func millis(_ d: Duration) -> UInt64 { d.nanoseconds / 1_000_000 }

    // MARK: receiving

    /// Judges a received frame.
    public mutating func received(_ frame: StompFrame, now: UInt64) -> Action {
        heartBeatClock.lastReceived = now
        switch state {
        case .connected, .disconnecting:
            if frame.command == .message { return .message(frame) }
            if frame.command == .receipt {
                guard let id = frame["receipt-id"] else {
                    return fail(.unexpected("RECEIPT without receipt-id", source: .server))
                }
                if state == .disconnecting, id == disconnectReceipt {
                    state = .closed
                    return .disconnected
                }
                return .receipt(id: id)
            }
            if frame.command == .error { return fail(serverError(frame)) }
            return fail(.unexpected("\(frame.command) while connected", source: .server))
        case .connecting:
            if frame.command == .connected {
                guard let peer = StompHeartBeat.parseHeader(frame["heart-beat"]) else {
                    return fail(.malformed("CONNECTED heart-beat header '\(frame["heart-beat"] ?? "")'", source: .server))
                }
                let v = frame["version"] ?? "1.0"
                let hb = configuration.heartBeat
                let negotiated = StompHeartBeat.negotiate(own: (Self.millis(hb.send), Self.millis(hb.receive)), peer: peer,
                                                          toleranceFactor: configuration.toleranceFactor,
                                                          toleranceMillis: configuration.toleranceMillis)
                heartBeatClock = StompHeartBeatClock(heartBeat: negotiated, now: now)
                version = v
                state = .connected
                return .connected(version: v, heartBeat: negotiated)
            }
            if frame.command == .error { return fail(serverError(frame)) }
            return fail(.unexpected("\(frame.command) before CONNECTED", source: .server))
        case .idle, .closed:
            return .none
        }
    }

    /// Records that bytes (frames or heart-beats) arrived; call on every read.
    public mutating func bytesReceived(now: UInt64) { heartBeatClock.lastReceived = now }

    /// Records that bytes were written; call on every write.
    public mutating func bytesSent(now: UInt64) { heartBeatClock.lastSent = now }

    /// Heart-beat decision at `now` (only while connected). A silent server fails the session
    /// with kind `stomp_heartbeat_timeout`. `periodMillis`: see ``StompHeartBeatClock/tick(now:periodMillis:)``.
    public mutating func tick(now: UInt64, periodMillis: UInt64? = nil) -> StompHeartBeatClock.Decision {
        guard state == .connected || state == .disconnecting else { return .none }
        let d = heartBeatClock.tick(now: now, periodMillis: periodMillis)
        switch d {
        case .peerSilent(let silent):
            _ = fail(.heartBeatTimeout(silentForMillis: silent, expectedMillis: heartBeatClock.heartBeat.expectReceiveEveryMillis))
        case .sendHeartBeat:
            heartBeatClock.lastSent = now
        case .none:
            break
        }
        return d
    }

    /// Ends the session because of a failure found outside the protocol (transport closed,
    /// time-out); returns the failure that stands (the first one).
    @discardableResult
    public mutating func fail(_ error: StompError) -> Action {
        if failure == nil { failure = error }
        state = .closed
        return .failed(failure ?? error)
    }

    /// Marks the session closed without a failure (transport closed after DISCONNECT).
    public mutating func markClosed() { state = .closed }

    private func serverError(_ frame: StompFrame) -> StompError {
        var message = frame["message"]
        var body = String(decoding: frame.body.prefix(16 * 1024), as: UTF8.self)
        for s in secrets {
            message = message.map { redact($0, s) }
            body = redact(body, s)
        }
        // Server text enters the error through Secrets: redacted, then cut.
        return .serverError(message: message.map { Secrets.excerpt($0, limit: 200) },
                            bodyPrefix: body.isEmpty ? "" : Secrets.excerpt(body, limit: 200))
    }

    private func redact(_ text: String, _ secret: String) -> String {
        guard text.contains(secret) else { return text }
        return text.split(separator: secret, omittingEmptySubsequences: false).joined(separator: Secrets.mask)
    }

    // MARK: sending

    /// True when frames other than CONNECT may be sent.
    public var canSend: Bool { state == .connected }

    /// A fresh receipt id (`r-N`).
    public mutating func makeReceiptID() -> String {
        nextReceipt += 1
        return "r-\(nextReceipt)"
    }

    /// A SUBSCRIBE frame and its id (`sub-N` unless given).
    public mutating func subscribeFrame(destination: String, id: String? = nil, ack: StompAckMode = .auto,
                                        headers: [(String, String)] = [], receipt: String? = nil) -> (id: String, frame: StompFrame) {
        let sid: String
        if let id { sid = id } else { sid = "sub-\(nextSubscription)"; nextSubscription += 1 }
        var f = StompFrame(.subscribe, headers: [("id", sid), ("destination", destination)])
        if ack != .auto { f.addHeader("ack", ack.rawValue) }
        for (n, v) in headers { f.addHeader(n, v) }
        if let receipt { f.addHeader("receipt", receipt) }
        return (sid, f)
    }

    /// An UNSUBSCRIBE frame.
    public func unsubscribeFrame(id: String, receipt: String? = nil) -> StompFrame {
        var f = StompFrame(.unsubscribe, headers: [("id", id)])
        if let receipt { f.addHeader("receipt", receipt) }
        return f
    }

    /// An ACK (or NACK) frame for a received MESSAGE (its `ack` header becomes our `id`, STOMP 1.2).
    public func ackFrame(for message: StompMessage, negative: Bool = false, transaction: String? = nil,
                         receipt: String? = nil) -> StompFrame? {
        guard let ackID = message.ackID ?? message.messageID else { return nil }
        var f = StompFrame(negative ? .nack : .ack, headers: [("id", ackID)])
        if let transaction { f.addHeader("transaction", transaction) }
        if let receipt { f.addHeader("receipt", receipt) }
        return f
    }

    /// The DISCONNECT frame with a receipt; moves to `disconnecting`.
    public mutating func disconnectFrame() -> StompFrame {
        let id = makeReceiptID()
        disconnectReceipt = id
        state = .disconnecting
        return StompFrame(.disconnect, headers: [("receipt", id)])
    }
}

/// An immutable ``StompClientConfiguration`` that sessions share.
private final class ConfigurationBox: Sendable {
    let value: StompClientConfiguration
    private init(_ value: StompClientConfiguration) { self.value = value }

    private static let last = Mutex<ConfigurationBox?>(nil)

    /// The last box made, when its configuration equals `c`; else a new one (then kept as the last).
    static func shared(_ c: StompClientConfiguration) -> ConfigurationBox {
        last.withLock { last in
            if let b = last, b.value.isSame(as: c) { return b }
            let b = ConfigurationBox(c)
            last = b
            return b
        }
    }
}

extension StompClientConfiguration {
    /// Field by field equality (the type holds tuples, so it is not `Equatable`).
    fileprivate func isSame(as o: StompClientConfiguration) -> Bool {
        host == o.host && heartBeat.send == o.heartBeat.send && heartBeat.receive == o.heartBeat.receive
            && toleranceFactor == o.toleranceFactor && toleranceMillis == o.toleranceMillis
            && useStompCommand == o.useStompCommand && connectHeaders.count == o.connectHeaders.count
            && zip(connectHeaders, o.connectHeaders).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}
