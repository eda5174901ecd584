import LoadKitTransport

/// The credentials in what a script hands to ``HTTPClient`` besides headers: the values of
/// credential-named query parameters (``Endpoint``) and of credential-named fields in request
/// bodies — JSON at any depth and `application/x-www-form-urlencoded` forms — registered with
/// ``Secrets`` before the request is sent, so a server echoing one (a 401 body quoting the
/// refused password in free text) never gets it into an error, a report or the console.
///
/// One name rule for query parameters and body fields (``isCredentialName(_:)``), stricter than
/// the settings' markers (``Secrets/isSecret(_:)``): `author`, `ticketType` or `page_token` are
/// ordinary fields whose values stay readable.
enum RequestSecrets {
    /// Names whose values are credentials, exactly (normalised: ASCII lower-case, `_` and `-`
    /// removed). Names ending in one of ``credentialSuffixes`` are credentials too.
    static let credentialNames: [[UInt8]] = [
        "token", "accesstoken", "refreshtoken", "idtoken", "apikey", "key", "pwd", "ticket", "auth", "sig",
        "signature", "xamzsecuritytoken", "xamzsignature", "jwt", "sessionid",
    ].map { Array($0.utf8) }

    /// Exact names that are credentials in a URL's query only (`?key=…`, `?auth=…`, an API key by
    /// convention; `?ticket=…`, a one-time pass) and ordinary words in a body: `{"key": "orders",
    /// "value": 3}` or a ticketing API's `{"ticket": "A-17"}` must not mask the value in every
    /// later output.
    static let queryOnlyNames: [[UInt8]] = ["key", "auth", "ticket"].map { Array($0.utf8) }

    /// Endings that make a (normalised) name a credential's: `password`, `new_password`,
    /// `currentPassword`, `passwd`, `passcode`, `secret`, `client_secret`.
    static let credentialSuffixes: [[UInt8]] = ["password", "passwd", "passcode", "secret"].map { Array($0.utf8) }

    /// Longest name looked at (normalised); longer ones are not credentials.
    private static let longestName = 64

    /// Whether a query parameter or body field named `name` holds a credential: its name,
    /// ASCII lower-cased with `_` and `-` removed, is one of ``credentialNames`` or ends with one
    /// of ``credentialSuffixes``. `api_key`, `X-Amz-Security-Token`, `new_password`,
    /// `currentPassword` and `client_secret` are; `author`, `ticketType`, `page_token` and
    /// `password_hint` are not.
    /// In a body (`inBody`), ``queryOnlyNames`` are not.
    static func isCredentialName(_ name: some StringProtocol, inBody: Bool = false) -> Bool {
        var bytes = Array(name.utf8)
        return bytes.withUnsafeMutableBufferPointer { isCredentialName(UnsafeBufferPointer($0), inBody: inBody) }
    }

    /// ``isCredentialName(_:inBody:)`` over a name's UTF-8 bytes, without allocating.
    static func isCredentialName(_ name: UnsafeBufferPointer<UInt8>, inBody: Bool = false) -> Bool {
        guard !name.isEmpty, name.count <= longestName * 2 else { return false }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: longestName) { n in
            var count = 0
            for b in name where b != UInt8(ascii: "_") && b != UInt8(ascii: "-") {
                guard count < longestName else { return false }
                n[count] = b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b | 0x20 : b
                count += 1
            }
            let normalised = UnsafeBufferPointer(rebasing: n[..<count])
            for c in credentialNames where c.count == count && c.elementsEqual(normalised) {
                return !(inBody && queryOnlyNames.contains(c))
            }
            for s in credentialSuffixes where s.count <= count && s.elementsEqual(normalised[(count - s.count)...]) {
                return true
            }
            return false
        }
    }

    // MARK: Registration

    /// Registers the credentials in a request body the client is about to send, when its
    /// `Content-Type` says JSON (any type containing `json`: `application/json`,
    /// `application/vnd.api+json; charset=utf-8`) or a form (`application/x-www-form-urlencoded`).
    /// A request without a body costs one comparison; other content types a header lookup.
    @inline(__always)
    static func registerBody(_ body: [UInt8], headers: HTTPHeaders) {
        guard !body.isEmpty else { return }
        registerNonEmptyBody(body, headers: headers)
    }

    @inline(never)
    private static func registerNonEmptyBody(_ body: [UInt8], headers: HTTPHeaders) {
        guard let type = headers["Content-Type"] else { return }
        let values: [String]
        if containsIgnoringASCIICase(type, "json") {
            values = body.withUnsafeBufferPointer { credentialValues(inJSON: $0) }
        } else if containsIgnoringASCIICase(type, "x-www-form-urlencoded") {
            values = credentialValues(inForm: String(decoding: body, as: UTF8.self), inBody: true)
        } else {
            return
        }
        for v in values { Secrets.registerValue(v) }
    }

    /// Registers the values of a query's credential-named parameters (see ``Endpoint``).
    static func registerQuery(_ query: String) {
        for v in credentialValues(inForm: query) { Secrets.registerValue(v) }
    }

    // MARK: Forms and queries

    /// The values of the credential-named parameters of a query or form
    /// (`a=1&password=s%21cr+t`): each as written and, when it differs, `%`- and `+`-decoded
    /// (`s%21cr+t`, `s!cr t`) — a server may echo either. Names are decoded before they are judged.
    static func credentialValues(inForm text: String, inBody: Bool = false) -> [String] {
        var out: [String] = []
        for pair in text.split(separator: "&") {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else { continue }
            let rawName = pair[..<eq]
            let name = rawName.contains(where: { $0 == "%" || $0 == "+" }) ? percentDecode(rawName) : String(rawName)
            guard isCredentialName(name, inBody: inBody) else { continue }
            let raw = pair[pair.index(after: eq)...]
            out.append(String(raw))
            let decoded = percentDecode(raw)
            if decoded != raw { out.append(decoded) }
        }
        return out
    }

    // MARK: JSON

    /// The string values of the credential-named members of a JSON text, at any depth (objects
    /// in arrays in objects): each as written between its quotes and, when it holds escapes,
    /// decoded (`a\"b` and `a"b`) — a server may echo either. Keys are decoded before they are
    /// judged (`"pass\u0077ord"`). A byte scan, no parse: strings are skipped whole (escapes
    /// included), so a key-like text inside a string is not a key; a member whose value is not a
    /// string (a number, an object) is passed by. Text that is not JSON yields what it yields,
    /// never a crash.
    static func credentialValues(inJSON b: UnsafeBufferPointer<UInt8>) -> [String] {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), colon = UInt8(ascii: ":")
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
        var out: [String] = []
        var i = 0
        var valueWanted = false   // the string starting at `i` is a credential member's value
        while i < b.count {
            guard b[i] == quote else { i += 1; continue }
            // A string: from after its opening quote to its closing one.
            let start = i + 1
            var j = start, escaped = false
            while j < b.count && b[j] != quote {
                if b[j] == backslash { escaped = true; j += 2 } else { j += 1 }
            }
            guard j < b.count else { break }   // unterminated
            let text = UnsafeBufferPointer(rebasing: b[start..<j])
            i = j + 1
            if valueWanted {
                valueWanted = false
                out.append(String(decoding: text, as: UTF8.self))
                if escaped { out.append(unescape(text)) }
                continue
            }
            // A key when a colon follows.
            var k = i
            while k < b.count && isSpace(b[k]) { k += 1 }
            guard k < b.count && b[k] == colon else { continue }
            k += 1
            let credential: Bool
            if escaped {
                var key = Array(unescape(text).utf8)
                credential = key.withUnsafeMutableBufferPointer { isCredentialName(UnsafeBufferPointer($0), inBody: true) }
            } else {
                credential = isCredentialName(text, inBody: true)
            }
            while k < b.count && isSpace(b[k]) { k += 1 }
            i = k
            valueWanted = credential && k < b.count && b[k] == quote
        }
        return out
    }

    /// A JSON string's contents (between its quotes) with its escapes decoded: `\"`, `\\`, `\/`,
    /// `\b`, `\f`, `\n`, `\r`, `\t` and `\uXXXX` (surrogate pairs joined; a lone or invalid one
    /// becomes U+FFFD).
    static func unescape(_ s: UnsafeBufferPointer<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = 0
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= s.count else { return nil }
            var v: UInt32 = 0
            for c in s[at..<(at + 4)] {
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: return nil
                }
                v = v << 4 | d
            }
            return v
        }
        func append(_ scalar: UInt32) {
            let u = Unicode.Scalar(scalar) ?? "\u{FFFD}"
            out.append(contentsOf: String(Character(u)).utf8)
        }
        while i < s.count {
            let c = s[i]
            guard c == UInt8(ascii: "\\"), i + 1 < s.count else { out.append(c); i += 1; continue }
            let e = s[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard let high = hex4(i) else { out.append(contentsOf: "\\u".utf8); continue }
                i += 4
                if (0xD800...0xDBFF).contains(high), i + 6 <= s.count, s[i] == UInt8(ascii: "\\"), s[i + 1] == UInt8(ascii: "u"),
                   let low = hex4(i + 2), (0xDC00...0xDFFF).contains(low) {
                    i += 6
                    append(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
                } else {
                    append(high)   // a lone surrogate is no scalar: U+FFFD
                }
            default: out.append(e)   // `\"`, `\\`, `\/`, and anything else as itself
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `text` contains `word` (ASCII lower-case letters), ASCII case ignored.
    private static func containsIgnoringASCIICase(_ text: String, _ word: StaticString) -> Bool {
        let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        var text = text
        return text.withUTF8 { t in
            guard t.count >= w.count else { return false }
            for start in 0...(t.count - w.count) {
                var k = 0
                while k < w.count {
                    let c = t[start + k]
                    guard (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c | 0x20 : c) == w[k] else { break }
                    k += 1
                }
                if k == w.count { return true }
            }
            return false
        }
    }
}
