import LoadKitTransport

/// The handshake's key material (RFC 6455 §4): a fresh random `Sec-WebSocket-Key` per
/// connection and the `Sec-WebSocket-Accept` answer derived from it with SHA-1 and base64.
package enum WebSocketHandshakeKeys {
    /// The GUID appended to the key before hashing (RFC 6455 §1.3).
    public static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64-encoded (24 characters).
    public static func makeKey() -> String {
        var g = SystemRandomNumberGenerator()
        let a: UInt64 = g.next(), b: UInt64 = g.next()
        var bytes = [UInt8]()
        bytes.reserveCapacity(16)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: a >> UInt64(8 * i))) }
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: b >> UInt64(8 * i))) }
        return Base64.encode(bytes)
    }

    /// The `Sec-WebSocket-Accept` value for a key: base64(SHA-1(key + GUID)).
    public static func accept(forKey key: String) -> String {
        Base64.encode(SHA1.hash(Array((key + guid).utf8)))
    }

    /// True when `key` is base64 of exactly 16 bytes, as a server must check.
    public static func isValidKey(_ key: String) -> Bool {
        Base64.decode(key)?.count == 16
    }
}
