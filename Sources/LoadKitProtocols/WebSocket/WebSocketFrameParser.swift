import LoadKitTransport

/// Which end of the connection a codec works for: clients mask what they send and require
/// unmasked frames; servers require masked frames and send unmasked (RFC 6455 §5.1).
package enum WebSocketRole: Sendable, Hashable {
    /// The connecting side.
    case client
    /// The accepting side.
    case server
}

/// Incremental frame parser: fed byte slices as they arrive, it hands out each complete frame's
/// header and unmasked payload, or fails with a ``WebSocketProtocolError`` naming the close code.
///
/// Frames that lie whole inside the fed slice are delivered in place (no copy; masked payloads are
/// unmasked in place, which is why the input is mutable). Only an incomplete frame's leftover bytes
/// are kept, and a header is validated before its payload is buffered, so a hostile length never
/// causes a large allocation.
package struct WebSocketFrameParser: Sendable {
    /// Parser states.
    enum State: Sendable, Hashable {
        /// At a frame boundary with no leftover bytes.
        case idle
        /// Part of a frame is kept in `leftover`; `needed` more bytes complete its header (or
        /// its whole frame when the header is known).
        case partial(needed: Int)
        /// A violation was found; every later call fails with it.
        case failed(WebSocketProtocolError)
    }

    private(set) var state: State = .idle
    private var leftover: [UInt8] = []
    /// Which frames are legal to receive: a server requires masked frames, a client unmasked ones.
    public let role: WebSocketRole
    /// Frames with a longer payload fail with 1009.
    public var maxFrameSize: Int

    /// Creates a parser for the given role (the role of the side that *receives*).
    public init(role: WebSocketRole, maxFrameSize: Int = 16 << 20) {
        self.role = role
        self.maxFrameSize = maxFrameSize
    }

    /// Bytes held for an incomplete frame.
    public var bufferedBytes: Int { leftover.count }

    /// Outcome of looking at the start of a frame.
    enum Probe {
        case needMore(Int)
        case frame(WebSocketFrameHeader, headerLength: Int)
    }

    /// Parses and validates a header at the start of `p`.
    func probe(_ p: UnsafeRawBufferPointer) throws(WebSocketProtocolError) -> Probe {
        if p.count < 2 { return .needMore(2 - p.count) }
        let b0 = p[0], b1 = p[1]
        let fin = b0 & 0x80 != 0
        let rsv = (b0 >> 4) & 0x7
        let opcode = WebSocketOpcode(rawValue: b0 & 0x0F)
        let masked = b1 & 0x80 != 0
        let len7 = Int(b1 & 0x7F)
        // Validate everything knowable from the first two bytes before waiting for more.
        if rsv != 0 { throw .protocolError("RSV bits \(rsv) set without a negotiated extension") }
        if opcode.isReserved { throw .protocolError("reserved opcode 0x\(String(opcode.rawValue, radix: 16))") }
        if opcode.isControl {
            if !fin { throw .protocolError("fragmented \(opcode) frame") }
            if len7 > 125 { throw .protocolError("\(opcode) frame longer than 125 bytes") }
        }
        switch (role, masked) {
        case (.server, false): throw .protocolError("client frame is not masked")
        case (.client, true): throw .protocolError("server frame is masked")
        default: break
        }
        let ext = len7 == 126 ? 2 : (len7 == 127 ? 8 : 0)
        let headerLength = 2 + ext + (masked ? 4 : 0)
        if p.count < headerLength { return .needMore(headerLength - p.count) }
        var length: UInt64
        if len7 == 126 {
            length = UInt64(p[2]) << 8 | UInt64(p[3])
        } else if len7 == 127 {
            length = 0
            for i in 2..<10 { length = length << 8 | UInt64(p[i]) }
            if length >> 63 != 0 { throw .protocolError("64-bit payload length with the high bit set") }
        } else {
            length = UInt64(len7)
        }
        if length > UInt64(maxFrameSize) {
            throw .tooBig("frame of \(length) bytes exceeds the limit of \(maxFrameSize)")
        }
        var key: WebSocketMaskKey?
        if masked {
            let k = 2 + ext
            key = WebSocketMaskKey(p[k], p[k + 1], p[k + 2], p[k + 3])
        }
        return .frame(WebSocketFrameHeader(fin: fin, rsv: rsv, opcode: opcode, maskKey: key, payloadLength: Int(length)),
                      headerLength: headerLength)
    }

    /// Feeds bytes. `onFrame` runs for each complete frame with its header and unmasked payload;
    /// the payload buffer is valid only during the call. After an error the parser stays failed.
    /// The bytes in `input` are modified (masked payloads are unmasked in place).
    public mutating func parse(_ input: UnsafeMutableRawBufferPointer,
                               _ onFrame: (WebSocketFrameHeader, UnsafeMutableRawBufferPointer) -> Void) throws(WebSocketProtocolError) {
        var offset = 0
        let total = input.count
        // First complete a frame begun in an earlier call.
        while case .partial(let needed) = state {
            if offset == total { return }
            let take = min(needed, total - offset)
            leftover.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[offset..<(offset + take)]))
            offset += take
            let result = leftover.withUnsafeBytes { p in Result { () throws(WebSocketProtocolError) in try probe(p) } }
            let probed: Probe
            switch result {
            case .success(let p): probed = p
            case .failure(let error): fail(error); throw error
            }
            switch probed {
            case .needMore(let n):
                state = .partial(needed: n)
            case .frame(let h, let hl):
                let frameLength = hl + h.payloadLength
                if leftover.count < frameLength {
                    leftover.reserveCapacity(frameLength)
                    state = .partial(needed: frameLength - leftover.count)
                } else {
                    state = .idle
                    leftover.withUnsafeMutableBytes { p in
                        let payload = UnsafeMutableRawBufferPointer(rebasing: p[hl..<frameLength])
                        if let k = h.maskKey { webSocketApplyMask(payload, key: k) }
                        onFrame(h, payload)
                    }
                    // Keep a small buffer's capacity for the next split frame; drop big ones.
                    leftover.removeAll(keepingCapacity: leftover.capacity <= 4096)
                }
            }
        }
        if case .failed(let e) = state { throw e }
        // Then frames that lie whole in the input, delivered in place.
        while offset < total {
            let rest = UnsafeMutableRawBufferPointer(rebasing: input[offset...])
            let probed: Probe
            do { probed = try probe(UnsafeRawBufferPointer(rest)) } catch { fail(error); throw error }
            switch probed {
            case .needMore(let n):
                keep(rest, needing: n)
                return
            case .frame(let h, let hl):
                let frameLength = hl + h.payloadLength
                if rest.count < frameLength {
                    keep(rest, needing: frameLength - rest.count)
                    return
                }
                let payload = UnsafeMutableRawBufferPointer(rebasing: rest[hl..<frameLength])
                if let k = h.maskKey { webSocketApplyMask(payload, key: k) }
                onFrame(h, payload)
                offset += frameLength
            }
        }
    }

    private mutating func keep(_ bytes: UnsafeMutableRawBufferPointer, needing n: Int) {
        leftover.append(contentsOf: UnsafeRawBufferPointer(bytes))
        state = .partial(needed: n)
    }

    private mutating func fail(_ e: WebSocketProtocolError) {
        state = .failed(e)
        leftover = []
    }

    /// Convenience for tests and slow paths: parses `bytes` and returns whole frames (copies).
    public mutating func parse(_ bytes: [UInt8]) throws(WebSocketProtocolError) -> [WebSocketFrame] {
        var frames: [WebSocketFrame] = []
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        defer { p.deallocate() }
        bytes.withUnsafeBytes { if $0.count > 0 { p.copyMemory(from: $0) } }
        try parse(p) { h, payload in
            frames.append(WebSocketFrame(fin: h.fin, rsv: h.rsv, opcode: h.opcode, maskKey: h.maskKey, payload: Array(payload)))
        }
        return frames
    }
}
