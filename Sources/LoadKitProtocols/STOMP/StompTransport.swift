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

    func close() {
        switch self {
        case .none: break
        case .tcp(let c): c.transport.close()
        case .webSocket(let ws): ws.closeOnLoop(code: WebSocketCloseCode.normal)
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

    init(_ transport: any Transport, client: StompClient, traffic: (any StreamTrafficObserver)?) {
        self.transport = transport; self.client = client; self.traffic = traffic
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
