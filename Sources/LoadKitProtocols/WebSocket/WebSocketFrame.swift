import LoadKitTransport

/// A WebSocket opcode (RFC 6455 §5.2). Any 4-bit value is representable so a parser can hold,
/// and reject, reserved values; the named ones are static members.
package struct WebSocketOpcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The 4-bit value.
    public let rawValue: UInt8
    /// Creates an opcode from its low 4 bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }

    /// Continues a fragmented message.
    public static let continuation = WebSocketOpcode(rawValue: 0x0)
    /// A UTF-8 text message.
    public static let text = WebSocketOpcode(rawValue: 0x1)
    /// A binary message.
    public static let binary = WebSocketOpcode(rawValue: 0x2)
    /// Starts or answers the closing handshake.
    public static let close = WebSocketOpcode(rawValue: 0x8)
    /// Asks the peer for a pong.
    public static let ping = WebSocketOpcode(rawValue: 0x9)
    /// Answers a ping (or a unilateral heartbeat).
    public static let pong = WebSocketOpcode(rawValue: 0xA)

    /// Control frames (close, ping, pong and reserved 0xB–0xF) have the high bit set.
    public var isControl: Bool { rawValue & 0x8 != 0 }
    /// 0x3–0x7 and 0xB–0xF are reserved for future use and must be rejected.
    public var isReserved: Bool { (rawValue >= 0x3 && rawValue <= 0x7) || rawValue >= 0xB }

    public var description: String {
        switch rawValue {
        case 0x0: "continuation"
        case 0x1: "text"
        case 0x2: "binary"
        case 0x8: "close"
        case 0x9: "ping"
        case 0xA: "pong"
        default: "reserved(0x\(String(rawValue, radix: 16)))"
        }
    }
}

/// The fixed part of a frame: everything but the payload bytes.
package struct WebSocketFrameHeader: Hashable, Sendable {
    /// Last fragment of a message.
    public var fin: Bool
    /// The three RSV bits as the value `0...7` (RSV1 = 4). Nonzero only with an extension.
    public var rsv: UInt8
    /// The frame's opcode.
    public var opcode: WebSocketOpcode
    /// The masking key when the frame is masked (client → server frames are).
    public var maskKey: WebSocketMaskKey?
    /// The payload length in bytes.
    public var payloadLength: Int

    /// Creates a header.
    public init(fin: Bool = true, rsv: UInt8 = 0, opcode: WebSocketOpcode, maskKey: WebSocketMaskKey? = nil, payloadLength: Int) {
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.maskKey = maskKey
        self.payloadLength = payloadLength
    }
}

/// A 4-byte masking key (RFC 6455 §5.3).
package struct WebSocketMaskKey: Hashable, Sendable {
    /// The key bytes in wire order.
    public var b0, b1, b2, b3: UInt8
    /// Creates a key from its four bytes in wire order.
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) {
        self.b0 = b0; self.b1 = b1; self.b2 = b2; self.b3 = b3
    }
    /// Creates a key from a 32-bit value (its low byte goes first on the wire).
    public init(_ v: UInt32) {
        self.init(UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8),
                  UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 24))
    }
}

/// A whole frame with its (unmasked) payload: a convenient value for tests and slow paths.
/// The hot path hands payloads out as buffer pointers instead (see ``WebSocketFrameParser``).
package struct WebSocketFrame: Hashable, Sendable {
    /// Header fields; `maskKey` tells whether the frame arrived masked.
    public var header: WebSocketFrameHeader
    /// Unmasked payload.
    public var payload: [UInt8]

    /// Creates a frame; the header's length is taken from `payload`.
    public init(fin: Bool = true, rsv: UInt8 = 0, opcode: WebSocketOpcode, maskKey: WebSocketMaskKey? = nil, payload: [UInt8]) {
        header = WebSocketFrameHeader(fin: fin, rsv: rsv, opcode: opcode, maskKey: maskKey, payloadLength: payload.count)
        self.payload = payload
    }

    /// Shortcuts to header fields.
    public var fin: Bool { header.fin }
    /// The frame's opcode.
    public var opcode: WebSocketOpcode { header.opcode }
}

/// One complete WebSocket message as the async API hands it out.
public enum WebSocketMessage: Sendable, Hashable {
    /// A text message (validated UTF-8).
    case text(String)
    /// A binary message.
    case binary([UInt8])

    /// The text, or nil for a binary message.
    public var text: String? { if case .text(let s) = self { s } else { nil } }
    /// The payload bytes (UTF-8 for text).
    public var bytes: [UInt8] {
        switch self {
        case .text(let s): Array(s.utf8)
        case .binary(let b): b
        }
    }
}

// MARK: masking

/// XORs `buffer` with `key` in place, starting at key phase `phase` (0...3, the offset of the
/// buffer's first byte within the payload mod 4). Masking and unmasking are the same operation.
/// Works 8 bytes at a time; returns the phase after the last byte, for continuing in a next chunk.
@discardableResult
@inline(__always)
package func webSocketApplyMask(_ buffer: UnsafeMutableRawBufferPointer, key: WebSocketMaskKey, phase: Int = 0) -> Int {
    guard let base = buffer.baseAddress, buffer.count > 0 else { return phase & 3 }
    let keyBytes = (key.b0, key.b1, key.b2, key.b3)
    // The key rotated so that its byte `phase` lines up with the buffer's first byte.
    var rotated: UInt32 = 0
    withUnsafeBytes(of: keyBytes) { kb in
        let k = UInt32(kb[0]) | UInt32(kb[1]) << 8 | UInt32(kb[2]) << 16 | UInt32(kb[3]) << 24
        let shift = UInt32((phase & 3) * 8)
        rotated = shift == 0 ? k : (k >> shift) | (k << (32 - shift))
    }
    let n = buffer.count
    var i = 0
    #if _endian(little)
    // Little-endian loads put the byte at the lowest address in the low bits, as in `rotated`.
    let k64 = UInt64(rotated) | UInt64(rotated) << 32
    while i + 8 <= n {
        let v = (base + i).loadUnaligned(as: UInt64.self)
        (base + i).storeBytes(of: v ^ k64, as: UInt64.self)
        i += 8
    }
    #endif
    // i is a multiple of 4 here, so the tail starts at the rotated key's first byte.
    while i < n {
        let kb = UInt8(truncatingIfNeeded: rotated >> UInt32(8 * (i & 3)))
        base.storeBytes(of: base.load(fromByteOffset: i, as: UInt8.self) ^ kb, toByteOffset: i, as: UInt8.self)
        i += 1
    }
    return (phase + n) & 3
}
