import LoadKitTransport

/// Turns frames into messages: reassembles fragmented text/binary messages (control frames may
/// arrive between fragments and are passed through at once), validates text as UTF-8 across
/// fragment boundaries and enforces the message size limit.
///
/// A message that arrives in one frame is passed through without a copy; fragments are
/// collected in one buffer, which is released after a large message.
package struct WebSocketMessageAssembler: Sendable {
    /// Largest accepted message (sum of its fragments); larger fails with 1009.
    public var maxMessageSize: Int
    private var fragments: [UInt8] = []
    private var fragmentedOpcode: WebSocketOpcode?
    private var utf8 = UTF8Validator()

    /// Creates an assembler.
    public init(maxMessageSize: Int = 16 << 20) { self.maxMessageSize = maxMessageSize }

    /// True while a fragmented message is incomplete.
    public var inFragmentedMessage: Bool { fragmentedOpcode != nil }

    /// Accepts one frame. `deliver` runs with `.text`/`.binary` and the whole message's payload
    /// when a message completes, and with a control opcode and its payload for each control frame.
    /// The payload is valid only during the call.
    public mutating func push(_ header: WebSocketFrameHeader, _ payload: UnsafeRawBufferPointer,
                              _ deliver: (WebSocketOpcode, UnsafeRawBufferPointer) -> Void) throws(WebSocketProtocolError) {
        let op = header.opcode
        if op.isControl {
            deliver(op, payload)
            return
        }
        if op == .continuation {
            guard let started = fragmentedOpcode else { throw .protocolError("continuation frame without a message to continue") }
            if fragments.count + payload.count > maxMessageSize {
                throw .tooBig("message exceeds the limit of \(maxMessageSize) bytes")
            }
            if started == .text {
                guard utf8.validate(payload) else { throw .invalidData("text message is not valid UTF-8") }
            }
            fragments.append(contentsOf: payload)
            if header.fin {
                if started == .text && !utf8.isComplete { throw .invalidData("text message ends inside a UTF-8 sequence") }
                fragmentedOpcode = nil
                utf8.reset()
                fragments.withUnsafeBytes { deliver(started, $0) }
                fragments.removeAll(keepingCapacity: fragments.capacity <= 4096)
            }
            return
        }
        // .text or .binary (the parser already rejected reserved opcodes).
        if fragmentedOpcode != nil { throw .protocolError("new \(op) message before the fragmented one ended") }
        if payload.count > maxMessageSize { throw .tooBig("message exceeds the limit of \(maxMessageSize) bytes") }
        if op == .text {
            utf8.reset()
            guard utf8.validate(payload) else { throw .invalidData("text message is not valid UTF-8") }
            if header.fin && !utf8.isComplete { throw .invalidData("text message ends inside a UTF-8 sequence") }
        }
        if header.fin {
            utf8.reset()
            deliver(op, payload)
        } else {
            fragmentedOpcode = op
            fragments.append(contentsOf: payload)
        }
    }
}
