import LoadKitTransport

/// Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF)
/// for text messages that arrive in fragments: a code point may be split across frames.
/// ASCII runs are checked 8 bytes at a time.
package struct UTF8Validator: Sendable {
    // Continuation bytes still expected for the current code point, and the allowed range of the
    // next one (narrowed after E0, ED, F0, F4 leads).
    private var needed: UInt8 = 0
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    /// A validator at a code point boundary.
    public init() {}

    /// True when the bytes so far end at a code point boundary.
    public var isComplete: Bool { needed == 0 }

    /// Feeds bytes; false as soon as they cannot be part of valid UTF-8 (the validator is then
    /// in an unspecified state and must be reset).
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let n = bytes.count
        var i = 0
        while i < n {
            if needed == 0 {
                // Fast path: skip ASCII 8 bytes at a time.
                while i + 8 <= n && (base + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 { i += 8 }
                if i >= n { break }
                let b = base.load(fromByteOffset: i, as: UInt8.self)
                i += 1
                switch b {
                case 0x00...0x7F: continue
                case 0xC2...0xDF: needed = 1; lower = 0x80; upper = 0xBF
                case 0xE0: needed = 2; lower = 0xA0; upper = 0xBF
                case 0xE1...0xEC, 0xEE...0xEF: needed = 2; lower = 0x80; upper = 0xBF
                case 0xED: needed = 2; lower = 0x80; upper = 0x9F
                case 0xF0: needed = 3; lower = 0x90; upper = 0xBF
                case 0xF1...0xF3: needed = 3; lower = 0x80; upper = 0xBF
                case 0xF4: needed = 3; lower = 0x80; upper = 0x8F
                default: return false
                }
            } else {
                let b = base.load(fromByteOffset: i, as: UInt8.self)
                i += 1
                guard b >= lower && b <= upper else { return false }
                needed -= 1
                lower = 0x80
                upper = 0xBF
            }
        }
        return true
    }

    /// Back to a code point boundary.
    public mutating func reset() { needed = 0; lower = 0x80; upper = 0xBF }
}
