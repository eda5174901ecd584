import Synchronization
import LoadKitTransport

enum StompTransport {
    case none
    /// Frames as they are, on a byte stream (plain TCP).
    case tcp(StompTCPStream)
    /// One STOMP frame (or heart-beat) per WebSocket message: text when the bytes are UTF-8
    /// (what browsers' STOMP clients send), binary otherwise.
    case webSocket(WebSocketConnection)

    func write(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .none: break
        case .tcp(let c): c.write(bytes)
        case .webSocket(let ws):
            ws.sendOnLoop(isUTF8(bytes) ? .text : .binary, payload: bytes)
        }
    }

    /// Closes the pipe; `serverFailure` says why when the server's failure ended the session (a
    /// WebSocket session then counts as ended by the server).
    func close(serverFailure: String? = nil) {
        switch self {
        case .none: break
        case .tcp(let c): c.transport.close()
        case .webSocket(let ws):
            if let serverFailure { ws.closeOnLoop(endedByPeer: serverFailure) } else { ws.closeOnLoop(code: WebSocketCloseCode.normal) }
        }
    }

    /// Counts a connected session's failure for the virtual user listening; false when none
    /// does (or it did not count it).
    func reportFailure(_ error: any CountedFailure) -> Bool {
        switch self {
        case .none: return false
        case .tcp(let c): return c.user?.sessionFailed(error) ?? false
        case .webSocket(let ws): return ws.sessionObserver?.carriedSessionFailed(error) ?? false
        }
    }

    private func isUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        // ASCII fast path; full validation only for frames with non-ASCII bytes.
        if !bytes.contains(where: { $0 >= 0x80 }) { return true }
        return String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) != nil
    }
}

/// STOMP on a plain TCP stream: forwards the transport's events to the client and tells the
/// virtual user's listener (if any) the bytes each way, as a WebSocket session does for
/// `data_sent` / `data_received`. Loop-confined. (No TLS layer here — `connect(tcp:)` has none —
/// so the bytes written and read are the bytes on the wire.)
final class StompTCPStream: ConnectionDelegate, @unchecked Sendable {
    let transport: any Transport
    let client: StompClient
    private let traffic: (any StreamTrafficObserver)?
    /// The virtual user whose task opened the connection (its session failures are counted for it).
    let user: (any ClientObserver)?

    init(_ transport: any Transport, client: StompClient, traffic: (any StreamTrafficObserver)?, user: (any ClientObserver)? = nil) {
        self.transport = transport; self.client = client; self.traffic = traffic; self.user = user
    }

    func write(_ bytes: UnsafeRawBufferPointer) {
        transport.write(rawBytes: bytes)
        traffic?.traffic(bytesSent: bytes.count, bytesReceived: 0)
    }

    func connection(_ connection: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        traffic?.traffic(bytesSent: 0, bytesReceived: bytes.count)
        client.handleBytes(bytes)
    }

    func connection(_ connection: any Transport, didCloseWith error: TransportError?) {
        client.transportClosed(error: error)
    }
}
