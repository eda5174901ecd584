import CLoadKit
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
        guard let base = bytes.baseAddress, bytes.count > 0 else { return true }
        // The byte loop is C (`lk_utf8_validate`): at -Onone the Swift loop it replaced took
        // hundreds of milliseconds of a shared loop for a megabyte of non-ASCII text.
        var state: (UInt8, UInt8, UInt8) = (needed, lower, upper)
        let ok = withUnsafeMutableBytes(of: &state) { s in
            lk_utf8_validate(base.assumingMemoryBound(to: UInt8.self), bytes.count,
                             s.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        (needed, lower, upper) = state
        return ok != 0
    }

    /// Back to a code point boundary.
    public mutating func reset() { needed = 0; lower = 0x80; upper = 0xBF }
}
