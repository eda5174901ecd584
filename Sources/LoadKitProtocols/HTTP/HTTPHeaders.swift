import LoadKitTransport

/// HTTP header fields in wire order. Lookup ignores ASCII case; a name may occur several times.
///
/// Values are kept as sent; a small linear array beats a dictionary for the handful of
/// headers a typical message carries.
///
/// Credential headers (`Authorization`, `Cookie`, `X-Api-Key`, …: ``Secrets/isSecret(_:)``)
/// register their values with ``Secrets`` where the headers are built — the initialisers, ``add(_:_:)``
/// and ``set(_:_:)`` — so a server echoing them is masked in every output. Sending the same
/// headers again costs nothing more: a request reuses what was registered when it was built.
public struct HTTPHeaders: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// The fields, in order.
    public var fields: [(name: String, value: String)] { parsed?.fields ?? list }

    // Fields built by code, or decoded from `parsed` before a change.
    private var list: [(name: String, value: String)] = []
    // A parsed head's fields, kept as its bytes and decoded only when asked: a response's `Date`,
    // `Server`, … were Strings built on every response, read or not (header splitting was ≈ 10 %
    // of a request's CPU in `loadkit bench http`). When set, `list` is empty.
    private var parsed: ParsedHeaderFields?

    /// An empty header list.
    public init() {}

    /// Headers from name/value pairs, in order.
    public init(_ pairs: [(String, String)]) {
        list.reserveCapacity(pairs.count)
        for (n, v) in pairs {
            Secrets.registerHeader(n, v)
            list.append((n, v))
        }
    }

    /// Headers from a dictionary literal, in literal order.
    public init(dictionaryLiteral elements: (String, String)...) { self.init(elements) }

    /// The fields of a parsed head (from the wire: nothing to register).
    init(parsed: ParsedHeaderFields) {
        if parsed.count > 0 { self.parsed = parsed }
    }

    /// Decodes parsed fields into the list before a change.
    private mutating func own() {
        guard let p = parsed else { return }
        list = p.fields
        parsed = nil
    }

    /// Number of fields.
    public var count: Int { parsed?.count ?? list.count }
    /// True when there are no fields.
    public var isEmpty: Bool { count == 0 }

    /// The first value of `name`, or nil.
    public subscript(name: String) -> String? {
        if let p = parsed { return p.firstValue(named: name) }
        for f in list where asciiCaseInsensitiveEquals(f.name, name) { return f.value }
        return nil
    }

    /// Every value of `name`, in order.
    public func values(for name: String) -> [String] {
        if let p = parsed { return p.values(named: name) }
        return list.compactMap { asciiCaseInsensitiveEquals($0.name, name) ? $0.value : nil }
    }

    /// True when a field named `name` exists.
    public func contains(_ name: String) -> Bool {
        if let p = parsed { return p.index(named: name, from: 0) != nil }
        return list.contains { asciiCaseInsensitiveEquals($0.name, name) }
    }

    /// True when some value of `name`, split at commas, equals `token` ignoring case
    /// (e.g. `Connection: keep-alive, Upgrade` contains `upgrade`).
    public func containsToken(_ token: String, in name: String) -> Bool {
        if let p = parsed {
            var from = 0
            while from < p.count, let i = p.index(named: name, from: from) {
                if Self.listContains(token, p.value(at: i)) { return true }
                from = i + 1
            }
            return false
        }
        return list.contains { asciiCaseInsensitiveEquals($0.name, name) && Self.listContains(token, $0.value) }
    }

    /// Whether the comma-separated `value` holds `token` (ASCII case ignored), scanned without
    /// building substrings.
    private static func listContains(_ token: String, _ value: String) -> Bool {
        let v = value.utf8
        var start = v.startIndex
        while start <= v.endIndex {
            let end = v[start...].firstIndex(of: UInt8(ascii: ",")) ?? v.endIndex
            var lo = start, hi = end
            while lo < hi && (v[lo] == 0x20 || v[lo] == 0x09) { lo = v.index(after: lo) }
            while hi > lo && (v[v.index(before: hi)] == 0x20 || v[v.index(before: hi)] == 0x09) { hi = v.index(before: hi) }
            if asciiCaseInsensitiveEquals(value[lo..<hi], token) { return true }
            if end == v.endIndex { break }
            start = v.index(after: end)
        }
        return false
    }

    /// Appends a field (keeping any existing ones with the same name).
    public mutating func add(_ name: String, _ value: String) {
        Secrets.registerHeader(name, value)
        append(name, value)
    }

    /// Appends a field without looking at its name: for headers LoadKit adds itself
    /// (`Content-Type`) and ones already registered when they were built.
    mutating func append(_ name: String, _ value: String) {
        own()
        list.append((name, value))
    }

    /// Replaces every field named `name` with one field.
    public mutating func set(_ name: String, _ value: String) {
        Secrets.registerHeader(name, value)
        remove(name)
        list.append((name, value))
    }

    /// Removes every field named `name`.
    public mutating func remove(_ name: String) {
        own()
        list.removeAll { asciiCaseInsensitiveEquals($0.name, name) }
    }

    /// Iterates the fields in order.
    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }

    public static func == (a: HTTPHeaders, b: HTTPHeaders) -> Bool {
        let x = a.fields, y = b.fields
        return x.count == y.count && zip(x, y).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into h: inout Hasher) {
        for f in fields { h.combine(f.name); h.combine(f.value) }
    }

    /// Names only: values may hold secrets (Authorization, cookies).
    public var description: String { "HTTPHeaders(" + fields.map(\.name).joined(separator: ", ") + ")" }
}

/// The bytes behind ``ParsedHeaderFields`` (their count in the header), immutable once filled. Not
/// a `[UInt8]`: allocating one looked up `_ContiguousArrayStorage<UInt8>`'s metadata in the
/// runtime's cache on every response (≈ 1 % of a scenario's user time); this class's is static.
private final class HeadBytes: ManagedBuffer<Int, UInt8> {
    static func make(count: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) -> HeadBytes {
        let b = unsafeDowncast(HeadBytes.create(minimumCapacity: count) { _ in count }, to: HeadBytes.self)
        b.withUnsafeMutablePointerToElements { fill(UnsafeMutableRawBufferPointer(start: $0, count: count)) }
        return b
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeMutablePointers { count, bytes in body(UnsafeRawBufferPointer(start: bytes, count: count.pointee)) }
    }
}

/// The header fields of a parsed head, undecoded: the head's bytes followed by four `UInt32` per
/// field (name start and end, value start and end), in one buffer — one allocation, where the
/// decoded fields took an array and a String per long name or value. Sendable: its bytes are
/// written once, before the value exists, and only read afterwards.
struct ParsedHeaderFields: @unchecked Sendable {
    private let storage: HeadBytes
    private let spansOffset: Int
    /// Number of fields.
    let count: Int

    /// Copies `head` and the first `count` fields' spans (offsets into `head`). A value span may
    /// run over obs-fold continuation lines: decoding replaces each line break and the blanks
    /// around it with one space (RFC 9112 §5.2).
    init(head: UnsafeRawBufferPointer, spans: UnsafeBufferPointer<UInt32>, count: Int) {
        let n = head.count
        let offset = (n + 3) & ~3
        let total = offset + count * 16
        storage = HeadBytes.make(count: total) { raw in
            if n > 0 { raw.baseAddress!.copyMemory(from: head.baseAddress!, byteCount: n) }
            for i in n..<offset { raw[i] = 0 }
            if count > 0 { (raw.baseAddress! + offset).copyMemory(from: spans.baseAddress!, byteCount: count * 16) }
        }
        spansOffset = offset
        self.count = count
    }

    @inline(__always)
    private func span(_ b: UnsafeRawBufferPointer, _ i: Int, _ k: Int) -> Int {
        Int(b.loadUnaligned(fromByteOffset: spansOffset + i * 16 + k * 4, as: UInt32.self))
    }

    private func decodeName(_ b: UnsafeRawBufferPointer, _ i: Int) -> String {
        let r = UnsafeRawBufferPointer(rebasing: b[span(b, i, 0)..<span(b, i, 1)])
        return commonHeaderName(r) ?? String(decoding: r, as: UTF8.self)
    }

    private func decodeValue(_ b: UnsafeRawBufferPointer, _ i: Int) -> String {
        let lo = span(b, i, 2), hi = span(b, i, 3)
        let r = UnsafeRawBufferPointer(rebasing: b[lo..<hi])
        guard r.contains(10) else { return String(decoding: r, as: UTF8.self) }
        // Folded: each line trimmed, joined with a space.
        return r.split(separator: 10, omittingEmptySubsequences: false).map { line -> String in
            var l = line.startIndex, h = line.endIndex
            while l < h && (line[l] == 0x20 || line[l] == 0x09) { l += 1 }
            while h > l && (line[h - 1] == 0x20 || line[h - 1] == 0x09 || line[h - 1] == 13) { h -= 1 }
            return String(decoding: UnsafeRawBufferPointer(rebasing: line[l..<h]), as: UTF8.self)
        }.joined(separator: " ")
    }

    /// Every field, decoded.
    var fields: [(name: String, value: String)] {
        storage.withUnsafeBytes { b in (0..<count).map { (decodeName(b, $0), decodeValue(b, $0)) } }
    }

    /// The index of the first field at or after `start` named `name` (ASCII case ignored).
    func index(named name: String, from start: Int) -> Int? {
        storage.withUnsafeBytes { b in
            var name = name
            return name.withUTF8 { q in
                for i in start..<count {
                    let lo = span(b, i, 0), hi = span(b, i, 1)
                    guard hi - lo == q.count else { continue }
                    var same = true
                    for j in 0..<q.count {
                        let x = b[lo + j], y = q[j]
                        if x != y && ((x | 0x20) != (y | 0x20) || !((x | 0x20) >= 0x61 && (x | 0x20) <= 0x7a)) { same = false; break }
                    }
                    if same { return i }
                }
                return nil
            }
        }
    }

    /// The value of field `i`, decoded.
    func value(at i: Int) -> String { storage.withUnsafeBytes { decodeValue($0, i) } }

    /// The value of the first field named `name`.
    func firstValue(named name: String) -> String? {
        index(named: name, from: 0).map(value(at:))
    }

    /// The values of every field named `name`, in order.
    func values(named name: String) -> [String] {
        var out: [String] = []
        var from = 0
        while from < count, let i = index(named: name, from: from) {
            out.append(value(at: i))
            from = i + 1
        }
        return out
    }
}

/// ASCII case-insensitive comparison without allocating.
@inline(__always)
func asciiCaseInsensitiveEquals<A: StringProtocol, B: StringProtocol>(_ a: A, _ b: B) -> Bool {
    let au = a.utf8, bu = b.utf8
    guard au.count == bu.count else { return false }
    var i = au.startIndex, j = bu.startIndex
    while i != au.endIndex {
        let x = au[i], y = bu[j]
        if x != y && (x | 0x20) != (y | 0x20) { return false }
        if x != y && !((x | 0x20) >= 0x61 && (x | 0x20) <= 0x7a) { return false }
        au.formIndex(after: &i)
        bu.formIndex(after: &j)
    }
    return true
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    func trimmingASCIISpaces() -> Substring {
        let s = Substring(self)
        var lo = s.startIndex, hi = s.endIndex
        while lo < hi, s[lo] == " " || s[lo] == "\t" { lo = s.index(after: lo) }
        while hi > lo, s[s.index(before: hi)] == " " || s[s.index(before: hi)] == "\t" { hi = s.index(before: hi) }
        return s[lo..<hi]
    }
}
