import Synchronization
import LoadKitTransport

enum StompTransport {
    case none
    case tcp(any Transport)
    /// One STOMP frame (or heart-beat) per WebSocket message: text when the bytes are UTF-8
    /// (what browsers' STOMP clients send), binary otherwise.
    case webSocket(WebSocketConnection)

    func write(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .none: break
        case .tcp(let c): c.write(rawBytes: bytes)
        case .webSocket(let ws):
            ws.sendOnLoop(isUTF8(bytes) ? .text : .binary, payload: bytes)
        }
    }

    func close() {
        switch self {
        case .none: break
        case .tcp(let c): c.close()
        case .webSocket(let ws): ws.closeOnLoop(code: WebSocketCloseCode.normal)
        }
    }

    private func isUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        // ASCII fast path; full validation only for frames with non-ASCII bytes.
        if !bytes.contains(where: { $0 >= 0x80 }) { return true }
        return String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) != nil
    }
}

/// Forwards TCP events to the client (kept separate so the client's API stays clean).
final class StompTCPAdapter: ConnectionDelegate, @unchecked Sendable {
    let client: StompClient
    init(client: StompClient) { self.client = client }
    func connection(_ connection: any Transport, didRead bytes: UnsafeRawBufferPointer) { client.handleBytes(bytes) }
    func connection(_ connection: any Transport, didCloseWith error: TransportError?) { client.transportClosed(error: error) }
}
