import Synchronization
import LoadKitTransport

extension WebSocketConnection {
    // MARK: receiving (async API)

    /// The next message. Throws when the connection has closed and no message is left:
    /// `ws_close_<code>` (source server) when the peer closed or broke the protocol,
    /// `ws_close_1006` for a drop without close frame, `ws_closed` after our own close;
    /// `ws_receive_timeout` when `timeout` passes first; `CancellationError` when the task is
    /// cancelled (the connection stays usable in both cases). Only used when no handler or
    /// callbacks are set.
    public func receive(timeout: Duration? = nil) async throws -> WebSocketMessage {
        let token = ReceiveToken()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<WebSocketMessage, any Error>) in
                onLoop { [self] in
                    if inboxHead < inbox.count {
                        let m = inbox[inboxHead]
                        inboxHead += 1
                        if inboxHead == inbox.count { inbox.removeAll(keepingCapacity: inbox.capacity <= 16); inboxHead = 0 }
                        cont.resume(returning: m)
                    } else if let info = endingInfo {
                        cont.resume(throwing: Self.error(for: info, role: role))
                    } else if token.cancelled {
                        cont.resume(throwing: CancellationError())
                    } else {
                        receivers.append((token, cont))
                        if let timeout {
                            token.timer = loop.schedule(after: timeout) { [weak self] in
                                self?.abandon(token, with: WebSocketError(kind: WebSocketError.receiveTimeoutKind, source: .server,
                                                                           message: "no WebSocket message within \(timeout.readable)"))
                            }
                        }
                    }
                }
            }
        } onCancel: {
            onLoop { [self] in
                token.cancelled = true
                abandon(token, with: CancellationError())
            }
        }
    }

    /// Whether a ``receive(timeout:)`` is waiting for a message (for tests). On the loop.
    var isWaitingForAMessage: Bool { !receivers.isEmpty }

    private func abandon(_ token: ReceiveToken, with error: any Error) {
        token.timer?.cancel()
        token.timer = nil
        guard let i = receivers.firstIndex(where: { $0.token === token }) else { return }
        let r = receivers.remove(at: i)
        r.cont.resume(throwing: error)
    }

    static func error(for info: WebSocketCloseInfo, role: WebSocketRole = .client) -> WebSocketError {
        // Closed by the peer, or by us because the peer broke the protocol (detail says how).
        if info.initiatedByPeer || info.detail != nil { return .closed(info, role: role) }
        return .closedLocally
    }
}
