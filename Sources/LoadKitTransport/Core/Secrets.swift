import Foundation
import Synchronization

/// Keeps credentials out of every output: test failures, thrown errors' descriptions, reports,
/// logs, the console summary and Prometheus.
///
/// One function, ``redact(_:)``, is what every error and diagnostic text passes through before it
/// can reach an output. It replaces with ``mask``:
/// - every **registered secret value**: the values of secret settings (registered when a
///   ``Settings`` is created, header values of `*_HEADERS` settings included), the values of
///   credential headers a script hands to a client (`Authorization`, `Cookie`, `X-Api-Key`, STOMP
///   `passcode`, …: the clients call ``registerHeader(_:_:)``) and credentials obtained at run
///   time (tokens from login responses, tickets: ``register(_:)``);
/// - **credential shapes**, whatever their origin: `Bearer …`/`Basic …`, JWTs, `ticket=`/`token=`
///   query values, JSON `"password":"…"`-like fields, `passcode:`/`Authorization:` header lines.
///
/// Where it applies: the `description` of LoadKit's errors (``ScriptFailure``, ``ConfigError``,
/// ``HTTPError``, ``WebSocketError``, ``StompError``), every error example a ``MetricsRecorder``
/// keeps (the reports, the summary and the log read those), and server text quoted in errors,
/// which enters through ``excerpt(_:limit:)`` (redacted *before* it is cut, so a cut cannot leave
/// half a token behind). Error types of your own that quote server text should render their
/// `description` through ``redact(_:)`` as well.
public enum Secrets {
    /// What a masked value is replaced with.
    public static let mask = "****"

    /// Fragments that mark a credential name wherever they occur in it (ASCII case-insensitive):
    /// `DB_PASSWORD`, `Authorization`, `X-Auth-Token`, `apikey`, `Client-Secret`, STOMP `passcode`,
    /// `Cookie`. Besides these, the word `KEY` (see ``isSecret(_:)``). Not `SESSION`: the process
    /// environment's `DESKTOP_SESSION`, `XDG_SESSION_*` would mask ordinary words everywhere.
    public static let markers = ["TOKEN", "PASSWORD", "PASSWD", "PASSCODE", "SECRET", "AUTH", "CREDENTIAL",
                                 "COOKIE", "PRIVATE", "TICKET", "APIKEY"]

    /// Whether `name` names a credential, whose value is never shown and is registered
    /// (``register(settings:)``, and the clients for the headers a script hands them). One rule
    /// for every kind of name: settings and environment variables (`TOKEN`, `DB_PASSWORD`,
    /// `MY_API_KEY`, `CONCERT_AUTH_HEADER`), HTTP, WebSocket-handshake and STOMP CONNECT headers
    /// (`Authorization`, `Cookie`, `X-Api-Key`, `X-Auth-Token`, `passcode`, `auth`) and cookies.
    ///
    /// ASCII case is ignored, and `-`, `_`, `.` and spaces separate words (so `X-Api-Key`,
    /// `X_API_KEY` and `apiKey` — a lower-to-upper case change also starts a word — read alike).
    /// A name is a credential when it contains one of the ``markers``, or has the word `KEY`
    /// (`SIGNING_KEY`, `AWS_ACCESS_KEY_ID`, `X-Api-Key`; not `KEYCLOAK_URL`, `MONKEY_COUNT`),
    /// except names that only *configure* a credential or are not one:
    /// - paths and JSON paths (`TOKEN_JSON_PATH`, `CONCERT_PATH_QUEUE_TOKEN`), and names whose
    ///   last word is `PARAM`, `IN`, `SCHEME` or `MS` (`RUNNITY_TICKET_PARAM`, `STOMP_AUTH_IN`,
    ///   `STOMP_AUTH_SCHEME`, `*_TICKET_TTL_MS`), and `STOMP_AUTH_HEADER` (a header *name*);
    /// - the per-connection and per-request nonces `Sec-WebSocket-Key` and `Idempotency-Key`, and
    ///   the response header `Set-Cookie`.
    ///
    /// The report's environment fact `auth` (LoadKit's description of the credential *kind* in use:
    /// `none`, `token in connect`) is not masked by ``masked(_:)`` and ``scrub(_:environment:)``,
    /// though a header named `auth` is a credential. No allocation: a scan of the name's bytes.
    public static func isSecret(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { isSecret(bytes: $0) }
    }

    /// The keys of a report's environment that LoadKit writes itself to *describe* a credential
    /// (``isSecret(_:)`` would mask them).
    static let describingFacts: Set<String> = ["auth"]

    /// Whether an environment fact's value is masked and scrubbed: ``isSecret(_:)``, save
    /// LoadKit's own ``describingFacts``.
    private static func isSecretFact(_ key: String) -> Bool { !describingFacts.contains(key) && isSecret(key) }

    private static let markerBytes: [[UInt8]] = markers.map { Array($0.lowercased().utf8) }
    private static let notSecretNames: [[UInt8]] = ["sec-websocket-key", "idempotency-key", "stomp-auth-header", "set-cookie", "set-cookie2"].map { Array($0.utf8) }
    private static let configuringLastWords: [[UInt8]] = ["param", "in", "scheme", "ms"].map { Array($0.utf8) }

    @inline(__always) private static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
    @inline(__always) private static func isSeparator(_ b: UInt8) -> Bool { b == 0x2D || b == 0x5F || b == 0x2E || b == 0x20 }
    /// `-` and `_` compare alike (`SEC_WEBSOCKET_KEY` is `Sec-WebSocket-Key`).
    @inline(__always) private static func fold(_ b: UInt8) -> UInt8 { b == 0x5F ? 0x2D : lower(b) }

    /// Whether a word starts at `i` (the start, after a separator, or a lower-to-upper change).
    @inline(__always) private static func startsWord(_ n: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
        i == 0 || isSeparator(n[i - 1]) || (n[i - 1] >= 0x61 && n[i - 1] <= 0x7A && n[i] >= 0x41 && n[i] <= 0x5A)
    }

    /// Whether a word ends before `j` (the end, a separator, or a lower-to-upper change).
    @inline(__always) private static func endsWord(_ n: UnsafeBufferPointer<UInt8>, _ j: Int) -> Bool {
        j == n.count || isSeparator(n[j]) || (n[j - 1] >= 0x61 && n[j - 1] <= 0x7A && n[j] >= 0x41 && n[j] <= 0x5A)
    }

    /// Whether `f` (lower case) occurs at `i`, ignoring case and folding `_` into `-`.
    @inline(__always) private static func matches(_ n: UnsafeBufferPointer<UInt8>, _ i: Int, _ f: [UInt8]) -> Bool {
        guard i + f.count <= n.count else { return false }
        var j = 0
        while j < f.count && fold(n[i + j]) == f[j] { j += 1 }
        return j == f.count
    }

    private static func isSecret(bytes n: UnsafeBufferPointer<UInt8>) -> Bool {
        // The exceptions: whole names, then paths and configuring last words.
        for x in notSecretNames where x.count == n.count && matches(n, 0, x) { return false }
        guard n.count >= 3 else { return false }
        var lastWord = 0, found = false
        for i in 0..<n.count {
            if startsWord(n, i) && !isSeparator(n[i]) { lastWord = i }
            if matches(n, i, pathBytes) { return false }
            if found { continue }
            let c = lower(n[i])
            // Every marker starts with a, c, p, s or t; the word `key` with k.
            if c == 0x6B {
                found = startsWord(n, i) && matches(n, i, keyBytes) && endsWord(n, i + 3)
            } else if c == 0x61 || c == 0x63 || c == 0x70 || c == 0x73 || c == 0x74 {
                for f in markerBytes where f[0] == c && matches(n, i, f) { found = true; break }
            }
        }
        guard found else { return false }
        if lastWord > 0 {
            for w in configuringLastWords where w.count == n.count - lastWord && matches(n, lastWord, w) { return false }
        }
        return true
    }
    private static let pathBytes: [UInt8] = Array("path".utf8)
    private static let keyBytes: [UInt8] = Array("key".utf8)

    /// Environment facts for a report: secret values replaced by ``mask``, the others passed
    /// through ``redact(_:)``.
    public static func masked(_ environment: [String: String]) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in environment { out[k] = isSecretFact(k) && !v.isEmpty ? mask : redact(v) }
        return out
    }

    // MARK: The one redaction

    /// `text` with every registered secret value and every credential shape replaced by ``mask``.
    /// Idempotent; cheap when nothing matches. See the type's documentation.
    public static func redact(_ text: String) -> String {
        // Shapes first: a registered value that is the start of a longer credential (`Bearer t`
        // registered, `Bearer tok-0123…` echoed) would otherwise mask only its own part and
        // leave the rest of the other credential visible (`****ok-0123…`), no shape matching it.
        scrubRegistered(redactCredentials(text))
    }

    /// Server-originated text (an HTTP body, a STOMP ERROR body, a close reason, a JSON field)
    /// for an error message: redacted, then cut to `limit` characters (`…` marks a cut), on one
    /// line. `(empty body)` for empty text.
    public static func excerpt(_ text: String, limit: Int = 200) -> String {
        let flat = redact(text).split(whereSeparator: { $0 == "\n" || $0 == "\r" }).joined(separator: " ")
        if flat.isEmpty { return "(empty body)" }
        guard flat.count > limit else { return flat }
        var cut = flat.index(flat.startIndex, offsetBy: max(0, limit))
        // Never cut through a mask: `x-api-key: **…` would read as a partial value.
        if let m = flat.range(of: mask, range: flat.index(cut, offsetBy: -(mask.count - 1), limitedBy: flat.startIndex).map { $0..<flat.endIndex } ?? flat.startIndex..<flat.endIndex),
           m.lowerBound < cut { cut = m.upperBound }
        return cut == flat.endIndex ? flat : String(flat[..<cut]) + "…"
    }

    // MARK: Registered values

    /// Values shorter than this are never registered (they would mask ordinary words).
    public static let minimumLength = 5
    /// Most values kept; beyond it the oldest tenth is forgotten (credential shapes still apply).
    static let capacity = 200_000

    private struct Registry {
        var byPrefix: [UInt32: [[UInt8]]] = [:]
        var known: Set<String> = []
        var order: [String] = []
    }
    private static let registry = Mutex(Registry())

    /// Registers a credential obtained at run time (a token from a login response, a ticket), so
    /// ``redact(_:)`` masks it wherever it appears later. Values shorter than ``minimumLength``,
    /// plain numbers and words such as `true`/`none` are ignored.
    public static func register(_ value: String) {
        let v = value.lkTrimmed(" \t\r\n")
        guard isRegistrable(v) else { return }
        registry.withLock { r in
            guard r.known.insert(v).inserted else { return }
            r.order.append(v)
            let bytes = Array(v.utf8)
            let key = prefixKey(bytes, 0)
            var list = r.byPrefix[key] ?? []
            list.append(bytes)
            list.sort { $0.count > $1.count }   // the longest match wins
            r.byPrefix[key] = list
            if r.order.count > capacity {
                let drop = r.order.prefix(capacity / 10)
                r.order.removeFirst(drop.count)
                for old in drop {
                    r.known.remove(old)
                    let b = Array(old.utf8), k = prefixKey(b, 0)
                    r.byPrefix[k]?.removeAll { $0 == b }
                    if r.byPrefix[k]?.isEmpty == true { r.byPrefix[k] = nil }
                }
                forgetSeenHeaderValues()
            }
        }
    }

    /// Whether `v` (trimmed) may be registered: not shorter than ``minimumLength``, not a plain
    /// number, not a word such as `true`/`none` (they would mask ordinary words).
    private static func isRegistrable(_ v: String) -> Bool {
        v.utf8.count >= minimumLength && Double(v) == nil
            && !["true", "false", "none", "null", "undefined"].contains(v.lowercased())
    }

    /// Registers the secrets in a set of settings: the parts (``credentialParts(of:named:)``) of
    /// the value of every secret key (``isSecret(_:)``), and in `*_HEADERS` settings those of the
    /// value of every credential header (`Authorization`, `Cookie`, `X-Api-Key`).
    public static func register(settings values: [String: String]) {
        for (k, v) in values where !v.isEmpty {
            if isSecret(k) {
                for part in credentialParts(of: v, named: k) { register(part) }
            } else if k.uppercased().hasSuffix("HEADERS") {
                for item in v.split(whereSeparator: { $0 == ";" || $0 == "\n" }) {
                    guard let sep = item.firstIndex(where: { $0 == ":" || $0 == "=" }) else { continue }
                    let name = String(item[..<sep]).lkTrimmed(" \t")
                    guard isSecret(name) else { continue }
                    for part in credentialParts(of: String(item[item.index(after: sep)...]), named: name) { register(part) }
                }
            }
        }
    }

    // MARK: Which parts of a credential are registered

    private static let credentialCookieNames: Set<String> = ["session", "sessionid", "session_id", "sid", "jwt", "jsessionid", "phpsessid", "connect.sid"]
    private static let authSchemes: Set<String> = ["bearer", "basic", "token", "digest", "negotiate", "jwt", "apikey", "hmac"]
    private static let cookieBytes: [UInt8] = Array("cookie".utf8)

    /// Whether values named `name` are cookie lists (`Cookie`, `SESSION_COOKIE`).
    private static func isCookieName(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { n in
            n.count >= cookieBytes.count && (0...(n.count - cookieBytes.count)).contains { matches(n, $0, cookieBytes) }
        }
    }

    /// Which parts of the value of a credential named `name` (``isSecret(_:)``) are registered —
    /// one splitter for settings and headers alike:
    /// - the whole value;
    /// - for a cookie list (a name containing `cookie`: `Cookie`, `SESSION_COOKIE`), the value of
    ///   each `name=value` cookie that is a credential: a credential-named cookie (`session`, `sid`,
    ///   `jwt`, `auth_token`, …) or a token-shaped value (16 characters or more). A browser's
    ///   preference cookies (`theme=light; lang=en-US`) stay readable;
    /// - for `Scheme credential` with an authentication scheme (`Bearer`, `Basic`, `Token`,
    ///   `Digest`, …), the credential alone, and for `Basic` the decoded `user:password` and the
    ///   password. A value of several words without such a scheme is registered whole, never split
    ///   into ordinary words (a password `correct horse battery staple` does not mask `staple`);
    /// - for a value that is a `Name: value` header line (`CONCERT_AUTH_HEADER=Authorization: Bearer …`),
    ///   the parts of `value` as if it were named `Name`.
    ///
    /// Parts shorter than ``minimumLength``, plain numbers and words such as `true`/`none` are left out.
    package static func credentialParts(of value: String, named name: String) -> [String] {
        var out: [String] = []
        collectParts(Substring(value), cookie: isCookieName(name), headerLine: true, into: &out)
        return out
    }

    private static func collectParts(_ value: Substring, cookie: Bool, headerLine: Bool, into out: inout [String]) {
        func add(_ s: some StringProtocol) {
            let v = String(s).lkTrimmed(" \t\r\n")
            if isRegistrable(v) && !out.contains(v) { out.append(v) }
        }
        let v = Substring(String(value).lkTrimmed(" \t\r\n"))
        add(v)
        if cookie {
            for pair in v.split(separator: ";") {
                guard let eq = pair.firstIndex(of: "=") else { continue }
                let cookieName = String(pair[..<eq]).lkTrimmed(" \t"), cookieValue = pair[pair.index(after: eq)...]
                if cookieValue.utf8.count >= 16 || isSecret(cookieName) || credentialCookieNames.contains(cookieName.lowercased()) {
                    add(cookieValue)
                }
            }
            return
        }
        if let space = v.firstIndex(of: " "), authSchemes.contains(v[..<space].lowercased()) {
            let credential = String(v[space...]).lkTrimmed(" \t")
            add(credential)
            if v[..<space].lowercased() == "basic", let data = Data(base64Encoded: credential),
               let plain = String(data: data, encoding: .utf8) {
                add(plain)
                if let colon = plain.firstIndex(of: ":") { add(plain[plain.index(after: colon)...]) }
            }
            return
        }
        // A header line: `Name: value`, the name a header token.
        if headerLine, let colon = v.firstIndex(of: ":"), colon != v.startIndex,
           v[..<colon].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
            collectParts(v[v.index(after: colon)...], cookie: isCookieName(String(v[..<colon])), headerLine: false, into: &out)
        }
    }

    // MARK: Credential headers

    /// Registers the credential in a header a script hands to a client (HTTP request headers,
    /// WebSocket handshake headers, STOMP CONNECT headers) when `name` is a credential
    /// (``isSecret(_:)``): the parts of its value ``credentialParts(of:named:)`` names. Other
    /// headers cost a scan of the name.
    ///
    /// Cheap to repeat: a value already registered is recognised by its fingerprint (a 64-bit
    /// hash, randomly seeded per process) in one of 1,024 atomic slots — no lock, no allocation —
    /// so a script that rebuilds its headers for every request pays a hash, not a registration,
    /// even with a token per user. A slot another value took over means registering again
    /// (harmless: registration is idempotent). Two values sharing a fingerprint, about 2⁻⁶³ per
    /// pair, would leave the second unregistered.
    package static func registerHeader(_ name: String, _ value: String) {
        guard value.utf8.count >= minimumLength, isSecret(name) else { return }
        let isCookie = isCookieName(name)
        registerOnce(value, kind: isCookie ? 1 : 0) {
            var parts: [String] = []
            collectParts(Substring(value), cookie: isCookie, headerLine: true, into: &parts)
            for part in parts { register(part) }
        }
    }

    /// Registers `value` whole — the value of a credential-named field of a request body or of a
    /// query parameter, which the HTTP client finds before sending — as cheaply to repeat as
    /// ``registerHeader(_:_:)``: a script sending the same login body again and again pays a
    /// hash, not a registration (a lock and a set insertion).
    package static func registerValue(_ value: String) {
        guard value.utf8.count >= minimumLength else { return }
        registerOnce(value, kind: 2) { register(value) }
    }

    /// Runs `registration` unless `value` (registered as `kind` of value) was seen before: its
    /// fingerprint is looked up in ``seen`` first and stored there after.
    @inline(__always)
    private static func registerOnce(_ value: String, kind: UInt8, _ registration: () -> Void) {
        var h = Hasher()
        h.combine(kind)
        h.combine(value)
        let print = h.finalize() | 1   // never 0, the empty slot
        let slot = (print >> 1) & (seenSlots - 1)
        if seen[slot].load(ordering: .acquiring) == print { return }
        registration()
        seen[slot].store(print, ordering: .releasing)
    }

    // Fingerprints of header values registered, by their low bits (0: empty).
    private static let seenSlots = 1024
    nonisolated(unsafe) private static let seen: UnsafeMutablePointer<Atomic<Int>> = {
        let p = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: seenSlots)
        for i in 0..<seenSlots { (p + i).initialize(to: Atomic(0)) }
        return p
    }()

    /// The registry forgot its oldest values: a header value seen before must be registered
    /// again when it is seen next, so its fingerprint is forgotten too.
    private static func forgetSeenHeaderValues() {
        for i in 0..<seenSlots { seen[i].store(0, ordering: .releasing) }
    }

    private static func prefixKey(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }

    private static func scrubRegistered(_ text: String) -> String {
        let index = registry.withLock { $0.byPrefix }
        guard !index.isEmpty else { return text }
        let b = Array(text.utf8)
        guard b.count >= minimumLength else { return text }
        var out: [UInt8] = []
        var i = 0, copied = 0
        while i + 4 <= b.count {
            if let candidates = index[prefixKey(b, i)],
               let m = candidates.first(where: { i + $0.count <= b.count && b[i..<(i + $0.count)].elementsEqual($0) }) {
                // UTF-8 is self-synchronising: a valid value matched inside valid text starts and
                // ends on character boundaries.
                out.append(contentsOf: b[copied..<i])
                out.append(contentsOf: mask.utf8)
                i += m.count
                copied = i
            } else {
                i += 1
            }
        }
        guard copied > 0 else { return text }
        out.append(contentsOf: b[copied...])
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: Credential shapes

    // Credential shapes that must never reach an output, whatever key they came under: bearer
    // tokens, JWTs, credentials in query strings, JSON fields and header lines.
    private static let credentialPatterns: [(NSRegularExpression, String)] = [
        (#"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"#, "$1 \(mask)"),
        (#"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"#, mask),
        (#"(?i)\b(ticket|token|access_token|accesstoken|password|passcode|api_?key|secret)=[^&\s"']+"#, "$1=\(mask)"),
        (#"(?i)"(ticket|token|accessToken|refreshToken|access_token|refresh_token|id_token|password|passcode|secret)"\s*:\s*"[^"]*""#, "\"$1\":\"\(mask)\""),
        // Header lines: `Authorization:` in any form; STOMP's `passcode:`/`login:` as STOMP writes
        // them (no space after the colon) — an error example's step prefix (`login: account dave
        // was rejected`) is not a header line, and masking it hid every error of a step so named.
        (#"(?im)^(authorization):[^\n]*"#, "$1:\(mask)"),
        (#"(?im)^(passcode|login):[^\s][^\n]*"#, "$1:\(mask)"),
    ].compactMap { pattern, template in
        (try? NSRegularExpression(pattern: pattern)).map { ($0, template) }
    }

    /// `text` with credential-shaped parts replaced by ``mask`` (part of ``redact(_:)``).
    public static func redactCredentials(_ text: String) -> String {
        var t = text
        for (re, template) in credentialPatterns {
            t = re.stringByReplacingMatches(in: t, range: NSRange(t.startIndex..., in: t), withTemplate: template)
        }
        return t
    }

    /// The values of every secret-looking key in `values` (for ``scrub(_:environment:)``).
    public static func secretValues(_ values: [String: String]) -> [String: String] {
        values.filter { isSecretFact($0.key) && $0.value.count >= 4 }
    }

    /// `text` with every occurrence of a secret value from `environment` replaced by ``mask``
    /// (values shorter than 4 characters are left alone). For results read from other processes
    /// (shards), whose secrets were never registered here.
    public static func scrub(_ text: String, environment: [String: String]) -> String {
        var t = text
        for (k, v) in environment where isSecretFact(k) && v.count >= 4 {
            t = t.replacingOccurrences(of: v, with: mask)
        }
        return t
    }
}
