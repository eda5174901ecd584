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

/// STOMP on a byte stream: forwards the transport's events to the client and tells the virtual
/// user's observer (if any) the bytes each way, as a WebSocket session does for `data_sent` /
/// `data_received`. Loop-confined.
final class StompTCPStream: ConnectionDelegate, @unchecked Sendable {
    let transport: any Transport
    let client: StompClient
    private let observer: (any ClientObserver)?

    init(_ transport: any Transport, client: StompClient, observer: (any ClientObserver)?) {
        self.transport = transport; self.client = client; self.observer = observer
    }

    func write(_ bytes: UnsafeRawBufferPointer) {
        transport.write(rawBytes: bytes)
        count(sent: bytes.count, received: 0)
    }

    func connection(_ connection: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        count(sent: 0, received: bytes.count)
        client.handleBytes(bytes)
    }

    func connection(_ connection: any Transport, didCloseWith error: TransportError?) {
        count(sent: 0, received: 0)   // a TLS layer's closing records
        client.transportClosed(error: error)
    }

    private func count(sent: Int, received: Int) {
        guard let observer else { return }
        let framing = transport.takeWireOverhead()  // (0, 0) on plain TCP; a TLS layer's records
        let up = sent + framing.sent, down = received + framing.received
        if up > 0 || down > 0 { observer.streamTraffic(bytesSent: up, bytesReceived: down) }
    }
}
