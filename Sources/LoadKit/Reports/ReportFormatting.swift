import Foundation

/// Hides secrets before anything is printed or written.
public enum Secrets {
    /// Key fragments that mark a secret (case-insensitive): TOKEN, PASSWORD, SECRET, KEY, AUTH.
    public static let markers = ["TOKEN", "PASSWORD", "SECRET", "KEY", "AUTH"]
    /// What a masked value is replaced with.
    public static let mask = "****"

    /// Whether `key` names a secret (`TOKEN`, `DB_PASSWORD`, `api_key`, `Authorization`).
    public static func isSecret(_ key: String) -> Bool {
        let k = key.uppercased()
        return markers.contains { k.contains($0) }
    }

    /// `environment` with every secret's value replaced by ``mask``.
    public static func masked(_ environment: [String: String]) -> [String: String] {
        var out = environment
        for (k, v) in environment where isSecret(k) && !v.isEmpty { out[k] = mask }
        return out
    }

    // Credential shapes that must never reach a report, whatever key they came under: bearer
    // tokens, JWTs, credentials in query strings, JSON fields and STOMP headers.
    nonisolated(unsafe) private static let credentialPatterns: [(NSRegularExpression, String)] = [
        (#"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"#, "$1 \(mask)"),
        (#"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"#, mask),
        (#"(?i)\b(ticket|token|access_token|accesstoken|password|passcode|api_?key|secret)=[^&\s"']+"#, "$1=\(mask)"),
        (#"(?i)"(ticket|token|accessToken|refreshToken|password|passcode|secret)"\s*:\s*"[^"]*""#, "\"$1\":\"\(mask)\""),
        (#"(?im)^(passcode|authorization|login):[^\n]*"#, "$1:\(mask)"),
    ].compactMap { pattern, template in
        (try? NSRegularExpression(pattern: pattern)).map { ($0, template) }
    }

    /// `text` with credential-shaped parts (bearer tokens, JWTs, `ticket=…`/`token=…` query
    /// values, JSON `"password":"…"` fields, STOMP `passcode:` headers) replaced by ``mask``.
    /// Applied to every error example as it is recorded, so server text echoing a credential
    /// cannot leak into a report.
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
    /// (values shorter than 4 characters are left alone to avoid masking noise).
    public static func scrub(_ text: String, environment: [String: String]) -> String {
        var t = text
        for (k, v) in environment where isSecret(k) && v.count >= 4 {
            t = t.replacingOccurrences(of: v, with: mask)
        }
        return t
    }
}

/// The usual statistics of one trend, in milliseconds (trends hold microseconds).
public struct TrendSummary: Sendable, Hashable, Codable {
    /// Samples.
    public var count: Int64
    /// Mean, ms.
    public var avg: Double
    /// Smallest, ms.
    public var min: Double
    /// Largest, ms.
    public var max: Double
    /// Median, ms.
    public var med: Double
    /// 90th percentile, ms.
    public var p90: Double
    /// 95th percentile, ms.
    public var p95: Double
    /// 99th percentile, ms.
    public var p99: Double

    /// Summarizes a histogram of microseconds.
    public init(_ h: Histogram) {
        count = h.count
        avg = h.mean / 1000
        min = Double(h.min) / 1000
        max = Double(h.max) / 1000
        med = Double(h.median) / 1000
        p90 = Double(h.value(atPercentile: 90)) / 1000
        p95 = Double(h.value(atPercentile: 95)) / 1000
        p99 = Double(h.value(atPercentile: 99)) / 1000
    }
}

enum Fmt {
    /// Fixed decimals, "." separator, no grouping.
    static func num(_ v: Double, _ decimals: Int = 2) -> String {
        guard v.isFinite else { return "0" }
        return String(format: "%.\(decimals)f", v)
    }

    /// 3 significant-ish decimals trimmed ("12", "12.5", "0.123").
    static func short(_ v: Double) -> String { Threshold.trim(v) }

    /// A duration in ms shown like k6 (`812.5µs`, `45.23ms`, `1.23s`).
    static func k6Duration(_ ms: Double) -> String {
        if ms < 1 { return num(ms * 1000, 2) + "µs" }
        if ms < 1000 { return num(ms, 2) + "ms" }
        if ms < 60_000 { return num(ms / 1000, 2) + "s" }
        return num(ms / 60_000, 2) + "m"
    }

    /// Seconds as `45.234s` or `12m03.5s`.
    static func duration(_ s: Double) -> String {
        if s < 60 { return num(s, 3) + "s" }
        let m = Int(s / 60)
        return "\(m)m" + String(format: "%04.1f", s - Double(m * 60)) + "s"
    }

    static func bytes(_ b: Int64) -> String {
        let mb = Double(b) / 1_048_576
        return mb >= 1024 ? num(mb / 1024, 2) + " GB" : num(mb, 1) + " MB"
    }
}

extension RunResult {
    /// Planned users, or the peak active users when nothing was planned.
    var workers: Int { plannedPeakUsers > 0 ? plannedPeakUsers : peakActiveUsers }

    /// successful operations ÷ (successful operations + errors), 0…1; nil when both are zero.
    public var successRate: Double? { metrics.errorRate.map { 1 - $0 } }
}
