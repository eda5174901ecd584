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

    /// Key fragments that mark a secret setting (case-insensitive). Not `SESSION`: the process
    /// environment's `DESKTOP_SESSION`, `XDG_SESSION_*` would mask ordinary words everywhere.
    public static let markers = ["TOKEN", "PASSWORD", "PASSWD", "PASSCODE", "SECRET", "KEY", "AUTH", "CREDENTIAL",
                                 "COOKIE", "PRIVATE", "TICKET"]

    /// Whether `key` names a secret whose value is never shown (`TOKEN`, `DB_PASSWORD`, `api_key`,
    /// `Authorization`, `CONCERT_AUTH_HEADER`). Keys that only *configure* a credential are not
    /// secrets: paths and JSON paths (`TOKEN_JSON_PATH`, `CONCERT_PATH_QUEUE_TOKEN`), parameter
    /// names (`RUNNITY_TICKET_PARAM`), placements and schemes (`STOMP_AUTH_IN`, `STOMP_AUTH_SCHEME`),
    /// the header name `STOMP_AUTH_HEADER`, `*_MS` numbers, and the report fact `auth` (LoadKit's
    /// description of the credential *kind* in use: `none`, `token in connect`, `login/passcode`).
    public static func isSecret(_ key: String) -> Bool {
        if key == "auth" { return false }
        let k = key.uppercased()
        guard markers.contains(where: { k.contains($0) }) else { return false }
        if k.contains("PATH") || k == "STOMP_AUTH_HEADER" { return false }
        return !["_PARAM", "_IN", "_SCHEME", "_MS"].contains(where: { k.hasSuffix($0) })
    }

    /// Environment facts for a report: secret values replaced by ``mask``, the others passed
    /// through ``redact(_:)``.
    public static func masked(_ environment: [String: String]) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in environment { out[k] = isSecret(k) && !v.isEmpty ? mask : redact(v) }
        return out
    }

    // MARK: The one redaction

    /// `text` with every registered secret value and every credential shape replaced by ``mask``.
    /// Idempotent; cheap when nothing matches. See the type's documentation.
    public static func redact(_ text: String) -> String {
        redactCredentials(scrubRegistered(text))
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
        guard v.utf8.count >= minimumLength, Double(v) == nil,
              !["true", "false", "none", "null", "undefined"].contains(v.lowercased()) else { return }
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
                forgetRecentHeaders()
            }
        }
    }

    /// Registers the secrets in a set of settings: the value of every secret key (``isSecret(_:)``),
    /// the credential part of `Name: value` and `Bearer …` values, and in `*_HEADERS` settings
    /// the values of secret-named headers (`Authorization`, `Cookie`, `X-Api-Key`).
    public static func register(settings values: [String: String]) {
        for (k, v) in values where !v.isEmpty {
            if isSecret(k) {
                registerCredential(v)
            } else if k.uppercased().hasSuffix("HEADERS") {
                for item in v.split(whereSeparator: { $0 == ";" || $0 == "\n" }) {
                    guard let sep = item.firstIndex(where: { $0 == ":" || $0 == "=" }) else { continue }
                    if isSecret(String(item[..<sep]).lkTrimmed(" \t")) { registerCredential(String(item[item.index(after: sep)...])) }
                }
            }
        }
    }

    /// A credential and the parts of it an echo may show alone.
    private static func registerCredential(_ value: String) {
        register(value)
        var v = Substring(value)
        if let colon = v.firstIndex(of: ":") { v = v[v.index(after: colon)...]; register(String(v)) }  // `Name: value`
        if let last = v.split(separator: " ").last, last.count < v.count { register(String(last)) }   // `Bearer x`
    }

    // MARK: Credential headers

    /// Fragments that mark a credential header (matched in the name, ASCII case-insensitively):
    /// `Authorization`, `Proxy-Authorization`, `X-Auth-Token`, `X-Api-Key`, `Api-Key`, `apikey`,
    /// `Client-Secret`, `X-Password`, STOMP `passcode`. A header named exactly `Cookie` is one too.
    /// Not `Set-Cookie` (a response header), `Sec-WebSocket-Key` (a nonce), `Idempotency-Key`, or
    /// STOMP `login` (a user name; `login:` lines are still masked as a credential shape).
    package static let credentialHeaderFragments = ["auth", "token", "secret", "apikey", "api-key", "api_key",
                                                   "password", "passwd", "passcode", "credential", "ticket"]
    private static let fragmentBytes: [[UInt8]] = credentialHeaderFragments.map { Array($0.utf8) }
    private static let cookieBytes: [UInt8] = Array("cookie".utf8)
    private static let credentialCookieNames: Set<String> = ["session", "sessionid", "session_id", "sid", "jwt", "jsessionid", "phpsessid", "connect.sid"]
    private static let authSchemes: Set<String> = ["bearer", "basic", "token", "digest", "negotiate", "jwt", "apikey", "hmac"]

    /// Whether a header named `name` carries a credential (see ``credentialHeaderFragments``).
    /// No allocation: a scan of the name's bytes.
    package static func isCredentialHeader(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { isCredentialHeader(bytes: $0) }
    }

    private static func isCredentialHeader(bytes n: UnsafeBufferPointer<UInt8>) -> Bool {
        @inline(__always) func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
        if n.count == cookieBytes.count, zip(n, cookieBytes).allSatisfy({ lower($0) == $1 }) { return true }
        guard n.count >= 4 else { return false }
        for i in 0...(n.count - 4) {
            let c = lower(n[i])
            // Every fragment starts with a, c, p, s or t.
            guard c == 0x61 || c == 0x63 || c == 0x70 || c == 0x73 || c == 0x74 else { continue }
            for f in fragmentBytes where f[0] == c && i + f.count <= n.count {
                var j = 1
                while j < f.count && lower(n[i + j]) == f[j] { j += 1 }
                if j == f.count { return true }
            }
        }
        return false
    }

    /// Registers the credential in a header a script hands to a client (HTTP request headers,
    /// WebSocket handshake headers, STOMP CONNECT headers), when `name` is a credential header
    /// (``isCredentialHeader(_:)``): the whole value; for `Scheme credential` values (`Bearer …`,
    /// `Basic …`, `Token …`) the credential alone, and for `Basic` the decoded `user:password`
    /// and the password; for `Cookie` each cookie's value. Other headers cost a scan of the name.
    ///
    /// Cheap to repeat: a value already registered is recognised by its fingerprint (a 64-bit
    /// hash, randomly seeded per process) in one of 1,024 atomic slots — no lock, no allocation —
    /// so a script that rebuilds its headers for every request pays a hash, not a registration,
    /// even with a token per user. A slot another value took over means registering again
    /// (harmless: registration is idempotent). Two values sharing a fingerprint, about 2⁻⁶³ per
    /// pair, would leave the second unregistered.
    package static func registerHeader(_ name: String, _ value: String) {
        guard value.utf8.count >= minimumLength, isCredentialHeader(name) else { return }
        let isCookie = name.utf8.count == cookieBytes.count && name.lowercased() == "cookie"
        var h = Hasher()
        h.combine(isCookie)
        h.combine(value)
        let print = h.finalize() | 1   // never 0, the empty slot
        let slot = (print >> 1) & (seenSlots - 1)
        if seen[slot].load(ordering: .acquiring) == print { return }
        registerHeaderValue(value, isCookie: isCookie)
        seen[slot].store(print, ordering: .releasing)
    }

    // Fingerprints of header values registered, by their low bits (0: empty).
    private static let seenSlots = 1024
    nonisolated(unsafe) private static let seen: UnsafeMutablePointer<Atomic<Int>> = {
        let p = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: seenSlots)
        for i in 0..<seenSlots { (p + i).initialize(to: Atomic(0)) }
        return p
    }()

    /// The registry forgot its oldest values: header values must be registered again when seen.
    private static func forgetRecentHeaders() {
        for i in 0..<seenSlots { seen[i].store(0, ordering: .releasing) }
    }

    private static func registerHeaderValue(_ value: String, isCookie: Bool) {
        register(value)
        if isCookie {
            // A browser's cookies are mostly preferences (`theme=light; lang=en-US`): only a
            // credential-named cookie (`session`, `sid`, `jwt`, `auth_token`, …) or a token-shaped
            // value (16 characters or more) is registered, so ordinary words stay readable.
            for pair in value.split(separator: ";") {
                guard let eq = pair.firstIndex(of: "=") else { continue }
                let cookieName = String(pair[..<eq]).lkTrimmed(" \t"), cookie = String(pair[pair.index(after: eq)...])
                if cookie.utf8.count >= 16 || isCredentialHeader(cookieName) || credentialCookieNames.contains(cookieName.lowercased()) {
                    register(cookie)
                }
            }
            return
        }
        // `Scheme credential`, for the authentication schemes only (`Bearer`, `Basic`, `Token`,
        // `Digest`, …): a two-word value of another header is registered whole, not split.
        let v = value.lkTrimmed(" \t")
        guard let space = v.firstIndex(of: " ") else { return }
        let scheme = v[..<space]
        guard authSchemes.contains(scheme.lowercased()) else { return }
        let credential = String(v[space...]).lkTrimmed(" \t")
        register(credential)
        if scheme.lowercased() == "basic", let data = Data(base64Encoded: credential),
           let plain = String(data: data, encoding: .utf8) {
            register(plain)
            if let colon = plain.firstIndex(of: ":") { register(String(plain[plain.index(after: colon)...])) }
        }
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
        (#"(?i)"(ticket|token|accessToken|refreshToken|password|passcode|secret)"\s*:\s*"[^"]*""#, "\"$1\":\"\(mask)\""),
        (#"(?im)^(passcode|authorization|login):[^\n]*"#, "$1:\(mask)"),
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
        values.filter { isSecret($0.key) && $0.value.count >= 4 }
    }

    /// `text` with every occurrence of a secret value from `environment` replaced by ``mask``
    /// (values shorter than 4 characters are left alone). For results read from other processes
    /// (shards), whose secrets were never registered here.
    public static func scrub(_ text: String, environment: [String: String]) -> String {
        var t = text
        for (k, v) in environment where isSecret(k) && v.count >= 4 {
            t = t.replacingOccurrences(of: v, with: mask)
        }
        return t
    }
}
