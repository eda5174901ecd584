import LoadKitTransport
import LoadKitProtocols

/// How big a run is. A scenario is written at its full size (the users, rates and durations of
/// the real test); the **smoke** profile shrinks it to at most ``smokeUsers`` users and
/// ``smokeDuration`` (or what the scenario declares with `LoadTest.smoke(users:duration:)`), so
/// plain `swift test` stays short; `full` runs it as written; a number multiplies it.
///
/// A test that calls `LoadTest.scaled(by:suite:)` defaults to smoke; any other run is scaled only
/// when a variable below is set (then the default is `full`).
///
/// Variables, read by ``init(settings:suite:)`` (the suite's own prefix wins over the global one):
/// - `LOADKIT_SCALE` / `LOADKIT_<SUITE>_SCALE`: `smoke`, `full` (also `nightly`, `as-written`,
///   and the older `seed`), or a factor.
/// - `LOADKIT_USERS_SCALE`, `LOADKIT_DURATION_SCALE`: extra factors on users/rates and on durations.
/// - `LOADKIT_<SUITE>_USERS`: the peak users (or peak rate, or burst size) outright.
/// - `LOADKIT_<SUITE>_DURATION`: the total duration outright.
public struct Scale: Sendable, Equatable {
    /// The size profile.
    public enum Profile: Sendable, Equatable {
        /// Small local run (default).
        case smoke
        /// The scenario as written, at full size (`full`, `nightly`, `as-written` or `seed`).
        case full
        /// The scenario as written times a factor.
        case factor(Double)
    }

    /// Default smoke cap on users when a scenario declares none.
    public static let smokeUsers = 50
    /// Default smoke cap on duration when a scenario declares none.
    public static let smokeDuration: Duration = .seconds(20)
    /// Largest factor `LOADKIT_SCALE`, `LOADKIT_USERS_SCALE` and `LOADKIT_DURATION_SCALE` accept.
    public static let maxFactor = 10_000.0
    /// Most users (or per-second rate, or burst size) a scaled plan may reach.
    public static let maxUsers = 10_000_000

    /// The profile.
    public var profile: Profile
    /// Extra factor on users and rates.
    public var usersFactor: Double
    /// Extra factor on durations.
    public var durationFactor: Double
    /// Peak users outright (per-suite override).
    public var peakUsers: Int?
    /// Total duration outright (per-suite override).
    public var totalDuration: Duration?

    /// A scale with explicit values (`.full` runs the scenario as written).
    public init(profile: Profile = .smoke, usersFactor: Double = 1, durationFactor: Double = 1,
                peakUsers: Int? = nil, totalDuration: Duration? = nil) {
        self.profile = profile; self.usersFactor = usersFactor; self.durationFactor = durationFactor
        self.peakUsers = peakUsers; self.totalDuration = totalDuration
    }

    /// The scenario exactly as written.
    public static let asWritten = Scale(profile: .full)

    /// The variables that scale a run (global names; each also exists per suite).
    static let variables = ["SCALE", "USERS_SCALE", "DURATION_SCALE", "USERS", "DURATION"]

    /// Whether any scale variable is set for `suite` (or globally).
    static func isSet(in settings: Settings, suite: String) -> Bool {
        let p = "LOADKIT_" + suiteKey(suite) + "_"
        return variables.contains { settings.string("LOADKIT_" + $0) != nil || settings.string(p + $0) != nil }
    }

    /// Reads the scale variables; `suite` is the per-suite prefix (`STOMP` reads `LOADKIT_STOMP_USERS`).
    /// `defaultProfile` applies when `LOADKIT_SCALE` is unset.
    public init(settings: Settings, suite: String? = nil, defaultProfile: Profile = .smoke) throws {
        try settings.checkLoaded()
        let prefix = suite.map { "LOADKIT_" + Scale.suiteKey($0) + "_" }
        func key(_ name: String) -> String {
            if let p = prefix, settings.string(p + name) != nil { return p + name }
            return "LOADKIT_" + name
        }
        let scaleKey = key("SCALE")
        switch settings.string(scaleKey)?.lowercased() {
        case nil: profile = defaultProfile
        case "smoke": profile = .smoke
        case "full", "nightly", "as-written", "seed": profile = .full
        case let other?:
            guard let f = Double(other), f > 0, f <= Scale.maxFactor else {
                throw ConfigError(variable: scaleKey, value: other,
                                  expected: "smoke, full (or nightly) or a factor above 0 and at most \(Int(Scale.maxFactor))")
            }
            profile = .factor(f)
        }
        usersFactor = try Scale.positive(settings, "LOADKIT_USERS_SCALE")
        durationFactor = try Scale.positive(settings, "LOADKIT_DURATION_SCALE")
        if let p = prefix {
            peakUsers = try settings.int(p + "USERS", in: 1...Scale.maxUsers)
            totalDuration = try settings.duration(p + "DURATION")
        } else {
            peakUsers = nil; totalDuration = nil
        }
    }

    private static func positive(_ s: Settings, _ k: String) throws -> Double {
        guard let f = try s.double(k) else { return 1 }
        guard f > 0, f <= maxFactor else {
            throw ConfigError(variable: k, value: s.string(k) ?? "", expected: "a factor above 0 and at most \(Int(maxFactor))")
        }
        return f
    }

    /// `stomp-chat` → `STOMP_CHAT`.
    public static func suiteKey(_ name: String) -> String {
        String(name.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    /// The (users, duration) factors for a plan of `peak` users lasting `total`, given the
    /// scenario's smoke size. Pure.
    public func factors(peak: Double, total: Duration, smokeUsers: Int?, smokeDuration: Duration?) -> (users: Double, duration: Double) {
        var u = 1.0, d = 1.0
        switch profile {
        case .full: break
        case .factor(let f): u = f; d = f
        case .smoke:
            let su = Double(smokeUsers ?? Scale.smokeUsers)
            let sd = (smokeDuration ?? Scale.smokeDuration).seconds
            if peak > 0 { u = min(1, su / peak) }
            if total.seconds > 0 { d = min(1, sd / total.seconds) }
        }
        u *= usersFactor; d *= durationFactor
        if let p = peakUsers, peak > 0 { u = Double(p) / peak }
        if let t = totalDuration, total.seconds > 0 { d = t.seconds / total.seconds }
        return (u, d)
    }

    /// A short description for reports (`smoke ×0.056 users ×0.67 duration`).
    public var profileName: String {
        switch profile {
        case .smoke: return "smoke"
        case .full: return "full"
        case .factor(let f): return "×\(f)"
        }
    }
}
