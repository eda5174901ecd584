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
    public private(set) var fields: [(name: String, value: String)] = []

    /// An empty header list.
    public init() {}

    /// Headers from name/value pairs, in order.
    public init(_ pairs: [(String, String)]) {
        fields.reserveCapacity(pairs.count)
        for (n, v) in pairs {
            Secrets.registerHeader(n, v)
            fields.append((n, v))
        }
    }

    /// Headers from a dictionary literal, in literal order.
    public init(dictionaryLiteral elements: (String, String)...) { self.init(elements) }

    /// Reserves room for `n` fields (parsers that know how many lines follow).
    mutating func reserveCapacity(_ n: Int) { fields.reserveCapacity(n) }

    /// Number of fields.
    public var count: Int { fields.count }
    /// True when there are no fields.
    public var isEmpty: Bool { fields.isEmpty }

    /// The first value of `name`, or nil.
    public subscript(name: String) -> String? {
        for f in fields where asciiCaseInsensitiveEquals(f.name, name) { return f.value }
        return nil
    }

    /// Every value of `name`, in order.
    public func values(for name: String) -> [String] {
        fields.compactMap { asciiCaseInsensitiveEquals($0.name, name) ? $0.value : nil }
    }

    /// True when a field named `name` exists.
    public func contains(_ name: String) -> Bool { self[name] != nil }

    /// True when some value of `name`, split at commas, equals `token` ignoring case
    /// (e.g. `Connection: keep-alive, Upgrade` contains `upgrade`).
    public func containsToken(_ token: String, in name: String) -> Bool {
        for f in fields where asciiCaseInsensitiveEquals(f.name, name) {
            // Scan the comma-separated list without building substrings (hot on every response).
            let v = f.value.utf8
            var start = v.startIndex
            while start <= v.endIndex {
                let end = v[start...].firstIndex(of: UInt8(ascii: ",")) ?? v.endIndex
                var lo = start, hi = end
                while lo < hi && (v[lo] == 0x20 || v[lo] == 0x09) { lo = v.index(after: lo) }
                while hi > lo && (v[v.index(before: hi)] == 0x20 || v[v.index(before: hi)] == 0x09) { hi = v.index(before: hi) }
                if asciiCaseInsensitiveEquals(f.value[lo..<hi], token) { return true }
                if end == v.endIndex { break }
                start = v.index(after: end)
            }
        }
        return false
    }

    /// Appends a field (keeping any existing ones with the same name).
    public mutating func add(_ name: String, _ value: String) {
        Secrets.registerHeader(name, value)
        fields.append((name, value))
    }

    /// Appends a field without looking at its name: for headers parsed from the wire, ones
    /// LoadKit adds itself (`Content-Type`) and ones already registered when they were built.
    mutating func append(_ name: String, _ value: String) { fields.append((name, value)) }

    /// Replaces every field named `name` with one field.
    public mutating func set(_ name: String, _ value: String) {
        Secrets.registerHeader(name, value)
        remove(name)
        fields.append((name, value))
    }

    /// Removes every field named `name`.
    public mutating func remove(_ name: String) {
        fields.removeAll { asciiCaseInsensitiveEquals($0.name, name) }
    }

    /// Iterates the fields in order.
    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }

    public static func == (a: HTTPHeaders, b: HTTPHeaders) -> Bool {
        a.fields.count == b.fields.count && zip(a.fields, b.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into h: inout Hasher) {
        for f in fields { h.combine(f.name); h.combine(f.value) }
    }

    /// Names only: values may hold secrets (Authorization, cookies).
    public var description: String { "HTTPHeaders(" + fields.map(\.name).joined(separator: ", ") + ")" }
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

extension HTTPHeaders {
    /// Replaces the value of the last field (header continuation lines).
    mutating func replaceLastValue(_ value: String) {
        guard !fields.isEmpty else { return }
        fields[fields.count - 1].value = value
    }
}
