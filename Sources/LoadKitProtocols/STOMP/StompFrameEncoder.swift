import LoadKitTransport

/// Encodes STOMP 1.2 frames into a caller-owned, reused byte buffer.
///
/// Header names and values are escaped (`\\`, `\n`, `\r`, `:` → `\\\\`, `\\n`, `\\r`, `\\c`) except in
/// CONNECT, STOMP and CONNECTED frames, which the spec leaves unescaped. A `content-length`
/// header is computed (any given one is replaced) for every non-empty body and always for SEND,
/// MESSAGE and ERROR, so bodies may contain NUL bytes. Every frame ends with a NUL.
package enum StompFrameEncoder {
    /// Appends the encoding of `frame` to `buffer`.
    public static func encode(_ frame: StompFrame, into buffer: inout [UInt8]) {
        frame.body.withUnsafeBytes { body in
            appendHead(frame.command, into: &buffer)
            let escape = frame.command.escapesHeaders
            frame.headerBytes.withUnsafeBufferPointer { hb in
                var i = 0
                while i < frame.headerIndex.count {
                    let s = Int(frame.headerIndex[i]), m = Int(frame.headerIndex[i + 1]), e = Int(frame.headerIndex[i + 2])
                    i += 3
                    let name = UnsafeBufferPointer(rebasing: hb[s..<m])
                    if name.elementsEqual(contentLengthName) { continue }
                    appendHeader(name: UnsafeRawBufferPointer(name), value: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(hb)[m..<e]),
                                 escape: escape, into: &buffer)
                }
            }
            appendBody(body, command: frame.command, into: &buffer)
        }
    }

    /// Encodes `frame` into a new array (tests, rare frames).
    public static func encode(_ frame: StompFrame) -> [UInt8] {
        var b: [UInt8] = []
        encode(frame, into: &b)
        return b
    }

    /// Appends `COMMAND\n`.
    @inlinable public static func appendHead(_ command: StompCommand, into buffer: inout [UInt8]) {
        buffer.append(contentsOf: command.rawValue.utf8)
        buffer.append(0x0A)
    }

    /// Appends `name:value\n`, escaping when `escape` is true.
    public static func appendHeader(_ name: String, _ value: String, escape: Bool, into buffer: inout [UInt8]) {
        var n = name, v = value
        n.withUTF8 { nb in
            v.withUTF8 { vb in
                appendHeader(name: UnsafeRawBufferPointer(nb), value: UnsafeRawBufferPointer(vb), escape: escape, into: &buffer)
            }
        }
    }

    /// Appends `name:value\n` from raw bytes.
    public static func appendHeader(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, escape: Bool,
                                    into buffer: inout [UInt8]) {
        if escape { appendEscaped(name, into: &buffer) } else { buffer.append(contentsOf: name) }
        buffer.append(0x3A)
        if escape { appendEscaped(value, into: &buffer) } else { buffer.append(contentsOf: value) }
        buffer.append(0x0A)
    }

    /// Appends the optional `content-length`, the blank line, the body and the NUL.
    public static func appendBody(_ body: UnsafeRawBufferPointer, command: StompCommand, into buffer: inout [UInt8]) {
        if body.count > 0 || command == .send || command == .message || command == .error {
            buffer.append(contentsOf: contentLengthName)
            buffer.append(0x3A)
            appendDecimal(body.count, into: &buffer)
            buffer.append(0x0A)
        }
        buffer.append(0x0A)
        buffer.append(contentsOf: body)
        buffer.append(0)
    }

    /// The one-byte heart-beat (an EOL between frames).
    public static let heartBeat: [UInt8] = [0x0A]

    static let contentLengthName: [UInt8] = Array("content-length".utf8)

    static func appendEscaped(_ bytes: UnsafeRawBufferPointer, into buffer: inout [UInt8]) {
        for b in bytes {
            switch b {
            case 0x5C: buffer.append(0x5C); buffer.append(0x5C)
            case 0x0A: buffer.append(0x5C); buffer.append(0x6E)
            case 0x0D: buffer.append(0x5C); buffer.append(0x72)
            case 0x3A: buffer.append(0x5C); buffer.append(0x63)
            default: buffer.append(b)
            }
        }
    }

    static func appendDecimal(_ value: Int, into buffer: inout [UInt8]) {
        if value == 0 { buffer.append(0x30); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = value, count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            while n > 0 { d[count] = UInt8(0x30 + n % 10); n /= 10; count += 1 }
            while count > 0 { count -= 1; buffer.append(d[count]) }
        }
    }
}
