import LoadKitTransport

/// Negotiated STOMP heart-beats and the pure bookkeeping that decides when to send one and when
/// the peer has been silent too long. Times are monotonic nanoseconds supplied by the caller.
public struct StompHeartBeat: Sendable, Equatable {
    /// Send something (a heart-beat EOL when idle) at least this often; 0 = never.
    public var sendEveryMillis: UInt64
    /// The peer promised to send at least this often; 0 = not monitored.
    public var expectReceiveEveryMillis: UInt64
    /// Silence longer than this is a failure (the promise plus the tolerance margin); 0 = never.
    public var receiveTimeoutMillis: UInt64

    /// No heart-beats in either direction.
    public static let none = StompHeartBeat(sendEveryMillis: 0, expectReceiveEveryMillis: 0, receiveTimeoutMillis: 0)

    /// Creates a negotiated setting directly.
    public init(sendEveryMillis: UInt64, expectReceiveEveryMillis: UInt64, receiveTimeoutMillis: UInt64) {
        self.sendEveryMillis = sendEveryMillis
        self.expectReceiveEveryMillis = expectReceiveEveryMillis
        self.receiveTimeoutMillis = receiveTimeoutMillis
    }

    /// STOMP 1.2 negotiation, seen from the side that sent `own` (`x,y`: "I can send every x ms",
    /// "I want to receive every y ms") and got `peer` back. We send every `max(own.x, peer.y)` when
    /// both are non-zero; we expect the peer every `max(peer.x, own.y)` when both are non-zero,
    /// and allow `expected × toleranceFactor + toleranceMillis` of silence before failing.
    public static func negotiate(own: (send: UInt64, receive: UInt64), peer: (send: UInt64, receive: UInt64),
                                 toleranceFactor: Double = 1.5, toleranceMillis: UInt64 = 0) -> StompHeartBeat {
        let send = (own.send == 0 || peer.receive == 0) ? 0 : max(own.send, peer.receive)
        let expect = (peer.send == 0 || own.receive == 0) ? 0 : max(peer.send, own.receive)
        let timeout = expect == 0 ? 0 : UInt64(Double(expect) * max(1, toleranceFactor)) + toleranceMillis
        return StompHeartBeat(sendEveryMillis: send, expectReceiveEveryMillis: expect, receiveTimeoutMillis: timeout)
    }

    /// Parses a `heart-beat` header value `"x,y"` (whitespace tolerated); nil when malformed.
    public static func parseHeader(_ value: String?) -> (send: UInt64, receive: UInt64)? {
        guard let value else { return (0, 0) }  // absent header means no heart-beats
        let parts = value.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2,
              let x = UInt64(parts[0].trimmingSpaces), let y = UInt64(parts[1].trimmingSpaces) else { return nil }
        return (x, y)
    }

    /// How often the owner should call ``StompHeartBeatClock/tick(now:)``; nil when nothing is timed.
    public var tickIntervalMillis: UInt64? {
        var t = UInt64.max
        if sendEveryMillis > 0 { t = min(t, max(1, sendEveryMillis / 2)) }
        if receiveTimeoutMillis > 0 { t = min(t, max(1, receiveTimeoutMillis / 3)) }
        return t == .max ? nil : t
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}

/// Tracks last send/receive times against a negotiated ``StompHeartBeat``.
package struct StompHeartBeatClock: Sendable, Equatable {
    /// What a tick asks the owner to do.
    public enum Decision: Sendable, Equatable {
        /// Nothing is due.
        case none
        /// Send a heart-beat EOL now (the connection has been idle).
        case sendHeartBeat
        /// The peer has been silent for `silentMillis`: fail the connection.
        case peerSilent(silentMillis: UInt64)
    }

    /// The negotiated setting.
    public var heartBeat: StompHeartBeat
    /// Monotonic time of the last bytes sent.
    public var lastSent: UInt64
    /// Monotonic time of the last bytes received.
    public var lastReceived: UInt64

    /// Starts the clock at `now`.
    public init(heartBeat: StompHeartBeat, now: UInt64) {
        self.heartBeat = heartBeat
        lastSent = now
        lastReceived = now
    }

    /// The decision at `now`. A beat is sent when waiting for the next tick could exceed the
    /// send interval, so the gap between our writes never exceeds it. `periodMillis` is how often
    /// the owner actually ticks (default ``StompHeartBeat/tickIntervalMillis``); a shorter period
    /// lets the beat go closer to the interval instead of up to one tick early.
    public func tick(now: UInt64, periodMillis: UInt64? = nil) -> Decision {
        let ms: UInt64 = 1_000_000
        if heartBeat.receiveTimeoutMillis > 0, now > lastReceived, now - lastReceived > heartBeat.receiveTimeoutMillis * ms {
            return .peerSilent(silentMillis: (now - lastReceived) / ms)
        }
        if heartBeat.sendEveryMillis > 0, let tick = periodMillis ?? heartBeat.tickIntervalMillis,
           now >= lastSent, (now - lastSent) + tick * ms >= heartBeat.sendEveryMillis * ms {
            return .sendHeartBeat
        }
        return .none
    }
}
