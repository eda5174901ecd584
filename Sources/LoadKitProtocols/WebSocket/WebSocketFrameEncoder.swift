#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LoadKitTransport

/// Writes frames into a caller-owned, reused `[UInt8]` (no allocation once it has grown):
/// header with the shortest length form (7, 16 or 64 bits), optional mask key, payload
/// (masked on the way in when a key is given).
package enum WebSocketFrameEncoder {
    /// Appends one frame to `out`.
    public static func encode(into out: inout [UInt8], fin: Bool = true, rsv: UInt8 = 0, opcode: WebSocketOpcode,
                              maskKey: WebSocketMaskKey?, payload: UnsafeRawBufferPointer) {
        let n = payload.count
        out.append((fin ? 0x80 : 0) | (rsv & 7) << 4 | opcode.rawValue)
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        if n < 126 {
            out.append(maskBit | UInt8(n))
        } else if n <= 0xFFFF {
            out.append(maskBit | 126)
            out.append(UInt8(n >> 8)); out.append(UInt8(n & 0xFF))
        } else {
            out.append(maskBit | 127)
            let v = UInt64(n)
            for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) }
        }
        if let k = maskKey {
            out.append(k.b0); out.append(k.b1); out.append(k.b2); out.append(k.b3)
        }
        let start = out.count
        out.append(contentsOf: payload)
        if let k = maskKey, n > 0 {
            _ = out.withUnsafeMutableBytes { p in
                webSocketApplyMask(UnsafeMutableRawBufferPointer(rebasing: p[start...]), key: k)
            }
        }
    }

    /// Appends one frame with an array payload.
    public static func encode(into out: inout [UInt8], fin: Bool = true, rsv: UInt8 = 0, opcode: WebSocketOpcode,
                              maskKey: WebSocketMaskKey?, payload: [UInt8]) {
        payload.withUnsafeBytes { encode(into: &out, fin: fin, rsv: rsv, opcode: opcode, maskKey: maskKey, payload: $0) }
    }

    /// Encodes a whole frame value (uses its header's mask key) into a new array.
    public static func encode(_ frame: WebSocketFrame) -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out, fin: frame.header.fin, rsv: frame.header.rsv, opcode: frame.header.opcode,
               maskKey: frame.header.maskKey, payload: frame.payload)
        return out
    }
}

/// A fast generator of masking keys: wyrand seeded from the system's random source, so keys are
/// unpredictable to the peer (RFC 6455 §10.3) without a system call per frame.
struct MaskKeyGenerator: Sendable {
    private var state: UInt64

    /// A generator seeded from `SystemRandomNumberGenerator`.
    init() {
        var g = SystemRandomNumberGenerator()
        state = g.next()
    }

    /// The next key.
    mutating func next() -> WebSocketMaskKey {
        state &+= 0xA076_1D64_78BD_642F
        let m = state.multipliedFullWidth(by: state ^ 0xE703_7ED1_A0B4_28DB)
        return WebSocketMaskKey(UInt32(truncatingIfNeeded: m.high ^ m.low))
    }
}
