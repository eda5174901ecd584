import Synchronization
import LoadKitTransport

extension StompClient {
    // MARK: subscribing

    /// Subscribes to `destination`; `onMessage` runs on the loop for every MESSAGE of this
    /// subscription (keep it short: no blocking, no awaiting). With `receipt` the call returns
    /// once the server confirmed the subscription. Returns the subscription id.
    @discardableResult
    public func subscribe(destination: String, id: String? = nil, ack: StompAckMode = .auto,
                          headers: [(String, String)] = [], receipt: Bool = false, timeout: Duration = .seconds(10),
                          onMessage: @escaping @Sendable (StompMessage) -> Void) async throws -> String {
        let box = UncheckedSendable(headers)
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<String, any Error>) in
            loop.execute { [self] in
                guard session.canSend else { cont.resume(throwing: notConnected()); return }
                let rid = receipt ? session.makeReceiptID() : nil
                let (sid, frame) = session.subscribeFrame(destination: destination, id: id, ack: ack, headers: box.value, receipt: rid)
                subscriptions.add(Subscription(id: sid, handler: onMessage))
                write(frame: frame)
                if let rid {
                    awaitReceipt(rid, timeout: timeout) { result in cont.resume(with: result.map { sid }) }
                } else {
                    cont.resume(returning: sid)
                }
            }
        }
    }

    /// Removes a subscription (messages already in flight for it are dropped).
    public func unsubscribe(id: String, receipt: Bool = false, timeout: Duration = .seconds(10)) async throws {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            loop.execute { [self] in
                guard session.canSend else { cont.resume(throwing: notConnected()); return }
                subscriptions.remove(id: id)
                let rid = receipt ? session.makeReceiptID() : nil
                write(frame: session.unsubscribeFrame(id: id, receipt: rid))
                if let rid { awaitReceipt(rid, timeout: timeout) { cont.resume(with: $0) } } else { cont.resume() }
            }
        }
    }

    // MARK: sending

    /// Sends a message without waiting (thread-safe; on the loop it writes at once). Dropped and
    /// counted in ``droppedSends`` when the session is not connected.
    public func send(destination: String, body: [UInt8], contentType: String? = nil, headers: [(String, String)] = []) {
        if loop.inLoop {
            writeSend(destination: destination, body: body, contentType: contentType, headers: headers, receipt: nil)
        } else {
            let box = UncheckedSendable(headers)
            loop.execute { [self] in
                writeSend(destination: destination, body: body, contentType: contentType, headers: box.value, receipt: nil)
            }
        }
    }

    /// Sends a UTF-8 text message without waiting; see ``send(destination:body:contentType:headers:)``.
    public func send(destination: String, text: String, contentType: String? = "text/plain", headers: [(String, String)] = []) {
        send(destination: destination, body: Array(text.utf8), contentType: contentType, headers: headers)
    }

    /// Sends a message with a `receipt` header and returns once the server's RECEIPT arrives.
    public func send(destination: String, body: [UInt8], contentType: String? = nil, headers: [(String, String)] = [],
                     receipt: Bool, timeout: Duration = .seconds(10)) async throws {
        let box = UncheckedSendable(headers)
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            loop.execute { [self] in
                guard session.canSend else { cont.resume(throwing: notConnected()); return }
                let rid = receipt ? session.makeReceiptID() : nil
                writeSend(destination: destination, body: body, contentType: contentType, headers: box.value, receipt: rid)
                if let rid { awaitReceipt(rid, timeout: timeout) { cont.resume(with: $0) } } else { cont.resume() }
            }
        }
    }

    private func writeSend(destination: String, body: [UInt8], contentType: String?, headers: [(String, String)], receipt: String?) {
        guard session.canSend else { droppedSends += 1; return }
        var out = loop.takeEncodeBuffer(1)
        StompFrameEncoder.appendHead(.send, into: &out)
        StompFrameEncoder.appendHeader("destination", destination, escape: true, into: &out)
        if let contentType { StompFrameEncoder.appendHeader("content-type", contentType, escape: true, into: &out) }
        for (n, v) in headers where n != "content-length" { StompFrameEncoder.appendHeader(n, v, escape: true, into: &out) }
        if let receipt { StompFrameEncoder.appendHeader("receipt", receipt, escape: true, into: &out) }
        body.withUnsafeBytes { StompFrameEncoder.appendBody($0, command: .send, into: &out) }
        flush(out)
    }

    /// Acknowledges a message (subscriptions with ack mode `client` or `client-individual`).
    public func ack(_ message: StompMessage) { acknowledge(message, negative: false) }

    /// Rejects a message (NACK).
    public func nack(_ message: StompMessage) { acknowledge(message, negative: true) }

    private func acknowledge(_ message: StompMessage, negative: Bool) {
        let work: @Sendable () -> Void = { [self] in
            guard session.canSend, let f = session.ackFrame(for: message, negative: negative) else { return }
            write(frame: f)
        }
        if loop.inLoop { work() } else { loop.execute(work) }
    }

    /// Sends any frame as is (escape hatch for tests and extensions such as transactions).
    public func send(frame: StompFrame) {
        if loop.inLoop { write(frame: frame) } else { loop.execute { [self] in write(frame: frame) } }
    }
}
