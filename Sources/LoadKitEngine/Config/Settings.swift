import Foundation
import LoadKitTransport
import LoadKitProtocols

/// Configuration from the process environment and a `.env` file (the environment wins), with typed
/// getters whose errors name the variable and the bad value. The seeds' own names (`SERVER_URL`,
/// `TOKEN`, `MESSAGE_INTERVAL_MS`, …) and LoadKit's `LOADKIT_*` names are read the same way.
public struct Settings: Sendable, Equatable {
    /// Every variable, `.env` values overlaid by the environment.
    public let values: [String: String]
    /// Where the `.env` values came from, if a file was read.
    public let envFile: String?
    /// Why the `.env` file could not be used, for settings that fell back to the environment
    /// alone (``current``); ``LoadTest``, ``Scale`` and `StompChatConfiguration` throw it.
    public private(set) var loadError: ConfigError?

    /// Settings from explicit values (tests, embedding code).
    /// Secret values (``Secrets/isSecret(_:)`` keys, credential headers) are registered with
    /// ``Secrets`` so no output ever shows them, even echoed by a server.
    public init(_ values: [String: String], envFile: String? = nil) {
        self.values = values; self.envFile = envFile
        Secrets.register(settings: values)
    }

    /// Settings from an environment and the text of a `.env` file (environment wins). A
    /// malformed line is an error naming `envFile` (or `.env`) and the line's number.
    public init(environment: [String: String], dotEnv: String?, envFile: String? = nil) throws {
        var merged: [String: String] = [:]
        if let dotEnv {
            let parsed = DotEnv.parse(dotEnv)
            guard parsed.problems.isEmpty else { throw ConfigError(envFile: envFile ?? ".env", problems: parsed.problems) }
            merged = parsed.values
        }
        merged.merge(environment) { _, env in env }
        self.init(merged, envFile: envFile)
    }

    /// A copy carrying `error` as its ``loadError``.
    func carrying(_ error: ConfigError) -> Settings {
        var s = self; s.loadError = error; return s
    }

    /// Throws ``loadError`` when these settings fell back to the environment alone.
    public func checkLoaded() throws {
        if let loadError { throw loadError }
    }

    /// Reads the process environment and the `.env` file named by `LOADKIT_ENV_FILE`, else
    /// `./.env` when it exists. A named file that cannot be read, and a malformed line in either
    /// file, are errors naming the file (and the line).
    public static func load(environment: [String: String] = ProcessInfo.processInfo.environment,
                            currentDirectory: String = FileManager.default.currentDirectoryPath) throws -> Settings {
        if let named = environment["LOADKIT_ENV_FILE"], !named.isEmpty {
            guard let text = try? String(contentsOfFile: named, encoding: .utf8) else {
                throw ConfigError(variable: "LOADKIT_ENV_FILE", value: named, expected: "a readable .env file")
            }
            return try Settings(environment: environment, dotEnv: text, envFile: named)
        }
        let path = currentDirectory + "/.env"
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            return try Settings(environment: environment, dotEnv: text, envFile: path)
        }
        return try Settings(environment: environment, dotEnv: nil)
    }

    private static let cached: Settings = {
        do { return try load() } catch {
            // Not silent: the error travels with the settings and fails the first run, scale or
            // configuration that uses them (``checkLoaded()``).
            return Settings(ProcessInfo.processInfo.environment)
                .carrying((error as? ConfigError) ?? ConfigError(variable: "LOADKIT_ENV_FILE", value: "", expected: "\(error)"))
        }
    }()

    /// The process's settings (environment + `.env`), read once. When the `.env` file is
    /// unreadable or malformed, they hold the environment alone and ``loadError``, which the
    /// first ``LoadTest`` run, ``Scale`` or `StompChatConfiguration` using them throws;
    /// ``load(environment:currentDirectory:)`` throws it at once.
    public static var current: Settings { cached }

    /// The process's settings (same as ``current``): reads well as `.scaled(by: .environment)`.
    public static var environment: Settings { cached }

    /// A copy with some values replaced (handy in tests).
    public func with(_ overrides: [String: String]) -> Settings {
        let s = Settings(values.merging(overrides) { _, new in new }, envFile: envFile)
        return loadError.map { s.carrying($0) } ?? s
    }

    // MARK: Typed getters

    /// The raw value, nil when unset or empty.
    public func string(_ key: String) -> String? {
        guard let v = values[key], !v.isEmpty else { return nil }
        return v
    }

    /// The raw value or a default.
    public func string(_ key: String, default d: String) -> String { string(key) ?? d }

    /// `LOADKIT_SUMMARY=full`: the console shows the full summary instead of the short one.
    var wantsFullSummary: Bool { string("LOADKIT_SUMMARY")?.lkTrimmed(" ").lowercased() == "full" }

    /// Checks the run-wide settings read during or after a run (reports, progress, `/metrics`,
    /// run queueing), so a bad value fails the run before it starts, naming the variable —
    /// not a warning after the run, or a default taken in silence.
    func checkRunSettings() throws {
        _ = try keepRuns()
        if let v = string("LOADKIT_SUMMARY"), !["full", "short", ""].contains(v.lkTrimmed(" ").lowercased()) {
            throw ConfigError(variable: "LOADKIT_SUMMARY", value: v, expected: "full or short")
        }
        _ = try bool("LOADKIT_PROGRESS")
        _ = try bool("LOADKIT_EXCLUSIVE_RUNS")
        _ = try prometheusPort()
        if let base = string(PrometheusPush.variable) {
            // The push's own check, then the URL's (credentials, port); shown redacted (a
            // gateway's password would print otherwise).
            var why = PrometheusPush.problem(base)
            if why == nil { do { _ = try Endpoint(PrometheusPush.gateway(base)) } catch { why = "\(error)" } }
            if let why {
                throw ConfigError(variable: PrometheusPush.variable, value: Endpoint.redact(base),
                                  expected: "a Pushgateway address such as http://pushgateway:9091 — \(why)")
            }
        }
    }

    /// `LOADKIT_KEEP_RUNS`: runs kept per test (nil: all), as ``RunHistory/keepRuns(_:)`` reads it.
    func keepRuns() throws -> Int? {
        try RunHistory.keepRuns(string("LOADKIT_KEEP_RUNS").map { ["LOADKIT_KEEP_RUNS": $0] } ?? [:])
    }

    /// An integer (`_` separators allowed), nil when unset.
    public func int(_ key: String) throws -> Int? {
        guard let v = string(key) else { return nil }
        guard let n = Int(v.replacingOccurrences(of: "_", with: "").lkTrimmed(" ")) else {
            throw ConfigError(variable: key, value: v, expected: "an integer")
        }
        return n
    }

    /// An integer or a default.
    public func int(_ key: String, default d: Int) throws -> Int { try int(key) ?? d }

    /// An integer within `range` (nil when unset); outside it, an error naming the range.
    public func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let n = try int(key) else { return nil }
        guard range.contains(n) else {
            throw ConfigError(variable: key, value: string(key) ?? "", expected: "an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    /// A number, nil when unset.
    public func double(_ key: String) throws -> Double? {
        guard let v = string(key) else { return nil }
        guard let n = Double(v.lkTrimmed(" ")), n.isFinite else {
            throw ConfigError(variable: key, value: v, expected: "a number")
        }
        return n
    }

    /// A number or a default.
    public func double(_ key: String, default d: Double) throws -> Double { try double(key) ?? d }

    /// A number within `range` (nil when unset); outside it, an error naming the range.
    public func double(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let n = try double(key) else { return nil }
        guard range.contains(n) else {
            throw ConfigError(variable: key, value: string(key) ?? "",
                              expected: "a number in \(Threshold.trim(range.lowerBound))...\(Threshold.trim(range.upperBound))")
        }
        return n
    }

    /// A boolean: true/false, 1/0, yes/no, on/off (any case); nil when unset.
    public func bool(_ key: String) throws -> Bool? {
        guard let v = string(key) else { return nil }
        switch v.lkTrimmed(" ").lowercased() {
        case "true", "1", "yes", "on", "y": return true
        case "false", "0", "no", "off", "n": return false
        default: throw ConfigError(variable: key, value: v, expected: "true or false")
        }
    }

    /// A boolean or a default.
    public func bool(_ key: String, default d: Bool) throws -> Bool { try bool(key) ?? d }

    /// A duration that must be positive (`MESSAGE_INTERVAL_MS=0` is a mistake, not "as fast as
    /// possible"); `d` when unset.
    public func positiveDuration(_ key: String, default d: Duration) throws -> Duration {
        guard let v = try duration(key) else { return d }
        guard v > .zero else { throw ConfigError(variable: key, value: string(key) ?? "", expected: "a positive duration (1500, 250ms, 30s), at most 365 days") }
        return v
    }

    /// Header pairs written `Name: value; Other: value` (or `name=value`). A malformed entry's
    /// value is never echoed in the error: header values often hold credentials.
    public func headers(_ key: String) throws -> [(String, String)] {
        guard let raw = string(key) else { return [] }
        var out: [(String, String)] = []
        for item in raw.split(whereSeparator: { $0 == ";" || $0 == "\n" }) {
            let t = item.lkTrimmed(" \t\r")
            if t.isEmpty { continue }
            guard let sep = t.firstIndex(where: { $0 == ":" || $0 == "=" }), sep != t.startIndex else {
                throw ConfigError(variable: key, value: "<hidden>", expected: "`Name: value` pairs separated by `;`")
            }
            out.append((t[..<sep].lkTrimmed(" \t"), t[t.index(after: sep)...].lkTrimmed(" \t")))
        }
        return out
    }

    /// The longest duration a setting may hold: 365 days. Longer values (`1e30`, `inf`) are
    /// mistakes, and the cap keeps every time computation far from overflowing.
    public static let maxDuration: Duration = .seconds(365 * 86_400)

    /// What ``duration(_:)`` accepts, for error messages.
    public static let durationForms = "a duration such as 1500 (ms), 250ms, 30s, 5m or 1h, from 0 to 365 days"

    /// A duration: a plain number is milliseconds (as in the seeds' `*_MS` names); otherwise
    /// number-unit pairs such as `250ms`, `30s`, `5m`, `1h`, `1m30s`, `1.5s`; nil when unset.
    /// Negative, non-finite and longer than ``maxDuration`` values are errors naming the variable.
    public func duration(_ key: String) throws -> Duration? {
        guard let v = string(key) else { return nil }
        guard let d = Settings.parseDuration(v) else {
            throw ConfigError(variable: key, value: v, expected: Settings.durationForms)
        }
        return d
    }

    /// A duration or a default.
    public func duration(_ key: String, default d: Duration) throws -> Duration { try duration(key) ?? d }

    /// A comma-separated list (items trimmed, empty items dropped); empty when unset.
    public func list(_ key: String) -> [String] {
        guard let v = string(key) else { return [] }
        return v.split(separator: ",").map { $0.lkTrimmed(" \t") }.filter { !$0.isEmpty }
    }

    /// A comma-separated list of integers (`MEMBER_IDS=1,2,3`).
    public func intList(_ key: String) throws -> [Int] {
        try list(key).map { item in
            guard let n = Int(item) else { throw ConfigError(variable: key, value: string(key) ?? "", expected: "comma-separated integers") }
            return n
        }
    }

    /// A URL with a scheme and host (`http://127.0.0.1:8080`), nil when unset.
    public func url(_ key: String) throws -> URL? {
        guard let v = string(key) else { return nil }
        guard let u = URL(string: v.lkTrimmed(" ")), u.scheme != nil, let h = u.host, !h.isEmpty else {
            throw ConfigError(variable: key, value: v, expected: "a URL such as http://host:port/path")
        }
        return u
    }

    /// Parses `1500` (ms), `250ms`, `30s`, `5m`, `1h`, `2m30s`, `1.5s`, `100us`; nil for anything
    /// else, including negative, non-finite and over-``maxDuration`` values.
    public static func parseDuration(_ text: String) -> Duration? {
        let s = text.lkTrimmed(" ").lowercased()
        guard !s.isEmpty else { return nil }
        let limit = maxDuration.seconds
        if let ms = Double(s) { return ms >= 0 && ms / 1000 <= limit ? .nanoseconds(Int64(ms * 1e6)) : nil }
        var total = 0.0
        var i = s.startIndex
        while i < s.endIndex {
            let numStart = i
            while i < s.endIndex, s[i].isNumber || s[i] == "." { i = s.index(after: i) }
            guard let n = Double(s[numStart..<i]) else { return nil }
            let unitStart = i
            while i < s.endIndex, s[i].isLetter || s[i] == "µ" { i = s.index(after: i) }
            let scale: Double
            switch s[unitStart..<i] {
            case "ns": scale = 1e-9
            case "us", "µs": scale = 1e-6
            case "ms": scale = 1e-3
            case "s", "sec": scale = 1
            case "m", "min": scale = 60
            case "h": scale = 3600
            default: return nil
            }
            total += n * scale
        }
        guard total.isFinite, total <= limit else { return nil }
        return .nanoseconds(Int64(total * 1e9))
    }

    // MARK: Secrets

    /// Whether a key names a secret whose value must never be printed (see ``Secrets/isSecret(_:)``).
    public static func isSecret(_ key: String) -> Bool { Secrets.isSecret(key) }

    /// `KEY=value` for logs and reports, with secret values replaced by `<hidden>`.
    public func describe(_ key: String) -> String {
        guard let v = values[key] else { return "\(key) unset" }
        return Secrets.isSecret(key) ? "\(key)=<hidden>" : "\(key)=\(Secrets.redact(v))"
    }

    // MARK: LoadKit's own settings

    /// `LOADKIT_REPORT_DIR`, default `./loadkit-reports`.
    public var reportDirectory: String { string("LOADKIT_REPORT_DIR") ?? "./loadkit-reports" }

    /// `LOADKIT_MAX_DURATION`: a hard cap on any run's length (nil when unset; must be positive).
    public func maxDuration() throws -> Duration? {
        string("LOADKIT_MAX_DURATION") == nil ? nil : try positiveDuration("LOADKIT_MAX_DURATION", default: .zero)
    }

    /// `LOADKIT_PROMETHEUS_PORT`: serve `/metrics` on this port during runs (nil: off).
    public func prometheusPort() throws -> Int? {
        guard let p = try int("LOADKIT_PROMETHEUS_PORT") else { return nil }
        guard (0...65535).contains(p) else {
            throw ConfigError(variable: "LOADKIT_PROMETHEUS_PORT", value: String(p), expected: "a port 0...65535")
        }
        return p
    }

    /// `LOADKIT_PROGRESS`: force the live progress line on (1) or off (0); default: only on a terminal.
    public func progressForced() -> Bool? { try? bool("LOADKIT_PROGRESS") }
}
