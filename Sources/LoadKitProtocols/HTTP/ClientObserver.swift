import LoadKitTransport

/// Listens to what the clients do on behalf of the virtual user whose task calls them. The runner
/// installs the user's listener as a task-local around the script, so ``HTTPClient`` and
/// ``WebSocketClient`` record k6's built-in metrics (`http_reqs`, `http_req_duration`,
/// `ws_sessions`, …) with no code in the script; outside a run nobody listens and nothing is
/// recorded. The clients only report facts; what is counted where is the listener's business.
package protocol ClientObserver: Sendable {
    /// One HTTP request finished: answered (any status) or failed without an answer.
    func httpExchangeFinished(_ exchange: HTTPExchange)
    /// A WebSocket opening handshake succeeded; the returned session listener (if any) is told of
    /// every message and of the close, on the connection's loop. `countsOperation`: the open is
    /// a successful operation — false when a protocol over it (STOMP) counts its own connect
    /// (``WebSocketSessionObserver/carriedSessionConnected()``), so a login the broker refuses
    /// is one failure, not a success and a failure.
    func webSocketOpened(handshakeNanos: UInt64, tlsNanos: UInt64?, bytesSent: Int, bytesReceived: Int,
                         countsOperation: Bool) -> (any WebSocketSessionObserver)?
    /// A WebSocket opening handshake (or its TCP connect) failed with a classified `error`, after
    /// writing `bytesSent` and reading `bytesReceived` (a refusal's head and body; 0 when the
    /// connect itself failed).
    func webSocketFailed(_ error: any Error, endpoint: Endpoint, bytesSent: Int, bytesReceived: Int)
    /// A session opened for the user, `handle` being the object the script holds it by (the
    /// ``WebSocketClient``), for the runner to close should the script drop it still open: the
    /// sessions an iteration opened when the iteration throws, every one when the user ends —
    /// only those whose handle is gone (a script that keeps its client keeps its session).
    /// Called from the task that opened it.
    func sessionOpened(_ session: any AbandonableSession, heldBy handle: any AnyObject & Sendable)
    /// A connection that is neither HTTP nor WebSocket (STOMP straight over TCP) is about to
    /// start; the returned listener (if any) is told of its bytes each way.
    func streamOpened() -> (any StreamTrafficObserver)?
    /// A connected STOMP session over plain TCP ended by the server's failure (an ERROR frame,
    /// silence past the heart-beats, a drop) while nobody may have been waiting on it: count it
    /// once now, under `error.occurrence`; returns whether it was counted. Called on the
    /// connection's loop.
    func sessionFailed(_ error: any CountedFailure) -> Bool
    /// The cancellation scope installed around the observed task (a virtual user's), if any:
    /// requests the task makes itself register there instead of installing a handler each.
    var cancellation: TaskCancellationScope? { get }
}

extension ClientObserver {
    /// Default: sessions are the script's business.
    package func sessionOpened(_ session: any AbandonableSession, heldBy handle: any AnyObject & Sendable) {}
    /// Default: not counted.
    package func sessionFailed(_ error: any CountedFailure) -> Bool { false }
}

/// A client a script may keep across iterations (`user.once`) whose session can end under it
/// (the server closes it, or the runner closes it for an iteration that failed): a kept one that
/// has ended is made again. Thread-safe.
package protocol EndingSession: AnyObject, Sendable {
    /// True once the session is over for good.
    var hasEnded: Bool { get }
}

/// An open client session (a WebSocket) that the runner may close on a virtual user's behalf.
package protocol AbandonableSession: AnyObject, Sendable {
    /// Closes with 1001 (going away) when still open, then calls `closed` (on the session's loop;
    /// not when it was closed already). Thread-safe.
    func closeAbandoned(_ closed: @escaping @Sendable () -> Void)
}

/// Hears the bytes of one connection that is neither HTTP nor WebSocket; called on its loop.
package protocol StreamTrafficObserver: AnyObject, Sendable {
    /// Bytes put on the wire and taken from it since the last call.
    func traffic(bytesSent: Int, bytesReceived: Int)
}

/// Hears one WebSocket session's traffic; called on the connection's loop.
package protocol WebSocketSessionObserver: AnyObject, Sendable {
    /// Data messages and wire bytes (frames, control frames included) since the last call.
    func traffic(messagesSent: Int, messagesReceived: Int, bytesSent: Int, bytesReceived: Int)
    /// The session ended (either side, `info` says which and how); called once.
    func sessionClosed(_ info: WebSocketCloseInfo)
    /// The protocol the session carries (STOMP) failed by the server's doing while connected: an
    /// ERROR frame, silence past the heart-beats, the server's close. Count it once now, under
    /// `error.occurrence` (the script may see it again later); returns whether it was counted.
    /// Called on the connection's loop.
    func carriedSessionFailed(_ error: any CountedFailure) -> Bool
    /// The protocol the session carries (STOMP) completed its connect (CONNECTED): one successful
    /// operation, which the WebSocket open did not count. Called on the connection's loop.
    func carriedSessionConnected()
}

package enum ClientObservation {
    /// The listener of the virtual user whose task is running, nil outside a load run.
    @TaskLocal package static var current: (any ClientObserver)?
}

/// The phases of one HTTP request in nanoseconds, as k6 splits them:
/// `duration` = `sending` + `waiting` + `receiving`; `blocked`, `connecting` and
/// `tlsHandshaking` come before it (zero on a reused keep-alive connection).
public struct HTTPTimings: Sendable, Equatable {
    /// Waiting before the request could start: for a free pool slot, and the hop to the loop.
    public var blocked: UInt64 = 0
    /// TCP connect (0 on a reused connection).
    public var connecting: UInt64 = 0
    /// TLS handshake (0 for `http` and on a reused connection).
    public var tlsHandshaking: UInt64 = 0
    /// Handing the request's bytes to the kernel.
    public var sending: UInt64 = 0
    /// From sent to the first response byte (time to first byte).
    public var waiting: UInt64 = 0
    /// From the first to the last response byte.
    public var receiving: UInt64 = 0

    /// `sending + waiting + receiving`: k6's `http_req_duration`.
    public var duration: UInt64 { sending &+ waiting &+ receiving }

    /// Creates timings (all zero by default).
    public init(blocked: UInt64 = 0, connecting: UInt64 = 0, tlsHandshaking: UInt64 = 0,
                sending: UInt64 = 0, waiting: UInt64 = 0, receiving: UInt64 = 0) {
        self.blocked = blocked; self.connecting = connecting; self.tlsHandshaking = tlsHandshaking
        self.sending = sending; self.waiting = waiting; self.receiving = receiving
    }
}

/// Which response statuses count as success (k6's `expectedStatuses`): others make
/// `http_req_failed` a hit and count one `http_<code>` error, blamed on the server.
///
/// ```swift
/// client.configuration.expectedStatuses = ExpectedStatuses(200...299, 409)  // a conflict is an answer
/// try await client.get(url, expecting: [200, 404])
/// ```
public struct ExpectedStatuses: Sendable, Hashable, ExpressibleByArrayLiteral, CustomStringConvertible {
    /// Ranges of statuses that count as success.
    public var ranges: [ClosedRange<Int>]

    /// Statuses in any of `ranges` (and any of `codes`) count as success.
    public init(_ ranges: ClosedRange<Int>..., codes: [Int] = []) {
        self.ranges = ranges + codes.map { $0...$0 }
    }

    /// Single status codes, e.g. `[200, 201, 409]`.
    public init(arrayLiteral codes: Int...) { ranges = codes.map { $0...$0 } }

    /// 200–399, as k6: redirects and successes are answers, 4xx and 5xx are failures.
    public static let `default` = ExpectedStatuses(200...399)

    /// Whether `status` counts as success.
    public func contains(_ status: Int) -> Bool { ranges.contains { $0.contains(status) } }

    public var description: String {
        ranges.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
            .joined(separator: ",")
    }
}

/// One finished HTTP request as the client saw it, for the listener.
package struct HTTPExchange: Sendable {
    /// The request's method and path (its label is built only when needed: on a failure).
    var method: HTTPMethod
    var path: String
    /// `GET /api/items` (no query: it may carry tokens), or the request's name tag.
    package var label: String { name ?? "\(method.rawValue) \(path)" }
    /// The step its failure is filed under: ``label`` — or nothing for an unexpected status
    /// without a name tag, whose text names its request already (`GET http://…/api/items
    /// answered HTTP 500 …`).
    package var failureStep: String { name == nil && failure is HTTPUnexpectedStatus ? "" : label }
    /// The request's `name` tag, if any.
    package var name: String?
    /// The status, nil when no response came.
    package var status: Int?
    /// The failure to count: the status error for an unexpected status, the transport or HTTP
    /// error when no response came; nil for an expected answer.
    package var failure: (any Error)?
    package var timings: HTTPTimings
    /// Every byte of every send, a retry's included.
    package var bytesSent: Int
    package var bytesReceived: Int
    /// The request waited for a pool slot (the pool was capped).
    package var queued: Bool
    /// The cap of the pool it waited in (``HTTPClient/Configuration/maxConnectionsPerHost``) when
    /// ``queued``, else nil: the run reports it (`http_pool_cap`) beside the wait it caused.
    package var poolCap: Int? = nil
    /// Times it was sent again on a fresh connection (a reused one closed without a word).
    package var retries: Int = 0
    /// The caller's task was cancelled (the runner stopping the user): not the server's failure.
    package var cancelled: Bool
    /// When the response was complete (``monotonicNanos()``), 0 when none came: the recorder
    /// files the exchange under that second without reading the clock again.
    package var finishedAt: UInt64 = 0
}
