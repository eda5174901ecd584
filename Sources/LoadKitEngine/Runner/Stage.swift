import LoadKitTransport
import LoadKitProtocols

/// One step of a closed-model plan: "ramp to 300 users over 10 s". Targets are cumulative, as in
/// the seeds (seed 000: 300 over 10 s, then to 600 over 10 s, then to 900 over 10 s).
public struct Stage: Sendable, Equatable, Codable {
    /// How a stage sets its user target.
    public enum Target: Sendable, Equatable, Codable {
        /// Ramp to this many users.
        case absolute(Int)
        /// Ramp to the previous target plus this many users (negative to shed users).
        case relative(Int)
        /// Keep the previous target.
        case hold
    }

    /// The stage's name, shown in the progress line and reports (`initial`, `peak`, `hold`).
    public var name: String
    /// The user target this stage ramps to.
    public var target: Target
    /// How long the ramp (or hold) lasts.
    public var duration: Duration

    /// Ramps linearly from the previous target to `users` over `duration`.
    public init(_ name: String, to users: Int, over duration: Duration) {
        self.name = name; self.target = .absolute(max(0, users)); self.duration = duration
    }

    /// Ramps linearly from the previous target to the previous target plus `users` over `duration`.
    public init(_ name: String, adding users: Int, over duration: Duration) {
        self.name = name; self.target = .relative(users); self.duration = duration
    }

    init(name: String, target: Target, duration: Duration) {
        self.name = name; self.target = target; self.duration = duration
    }
}

/// Keeps the current number of users for a while (a soak or hold stage).
public struct Hold: Sendable, Equatable {
    /// The stage produced.
    public let stage: Stage
    /// Holds the previous target for `duration`.
    public init(_ duration: Duration, name: String = "hold") {
        stage = Stage(name: name, target: .hold, duration: duration)
    }
}

/// Sheds every user gracefully over `duration` (each gets its stop flag, then a grace period).
public struct RampDown: Sendable, Equatable {
    /// The stage produced.
    public let stage: Stage
    /// Ramps down to zero users over `duration`.
    public init(over duration: Duration, name: String = "ramp-down") {
        stage = Stage(name, to: 0, over: duration)
    }
}

/// Builds a list of stages from `Stage`, `Hold` and `RampDown` lines (with `if` and `for`).
@resultBuilder
public enum StageBuilder {
    /// A stage line.
    public static func buildExpression(_ s: Stage) -> [Stage] { [s] }
    /// A hold line.
    public static func buildExpression(_ h: Hold) -> [Stage] { [h.stage] }
    /// A ramp-down line.
    public static func buildExpression(_ r: RampDown) -> [Stage] { [r.stage] }
    /// Several stages at once.
    public static func buildExpression(_ s: [Stage]) -> [Stage] { s }
    /// Joins the lines.
    public static func buildBlock(_ parts: [Stage]...) -> [Stage] { parts.flatMap { $0 } }
    /// `if` without `else`.
    public static func buildOptional(_ part: [Stage]?) -> [Stage] { part ?? [] }
    /// `if`/`else`, first branch.
    public static func buildEither(first part: [Stage]) -> [Stage] { part }
    /// `if`/`else`, second branch.
    public static func buildEither(second part: [Stage]) -> [Stage] { part }
    /// `for` loops.
    public static func buildArray(_ parts: [[Stage]]) -> [Stage] { parts.flatMap { $0 } }
}

/// A resolved closed-model plan: absolute targets and start offsets. Pure: "how many users should
/// be running at time t" is a function of t alone, tested with synthetic clocks.
package struct StagePlan: Sendable, Equatable {
    /// One stage with its absolute start, end target and timing.
    package struct Segment: Sendable, Equatable {
        /// Stage name.
        public var name: String
        /// Target at the stage's start.
        public var from: Int
        /// Target at the stage's end.
        public var to: Int
        /// Offset of the stage's start from the run's start, in nanoseconds.
        public var startNanos: UInt64
        /// Length of the stage in nanoseconds.
        public var durationNanos: UInt64
        /// Offset of the stage's end.
        public var endNanos: UInt64 { startNanos + durationNanos }
    }

    /// The stages in order.
    public let segments: [Segment]

    /// Resolves cumulative/relative targets (the plan starts from `initialUsers`, normally 0).
    public init(_ stages: [Stage], initialUsers: Int = 0) {
        var current = max(0, initialUsers)
        var at: UInt64 = 0
        var out: [Segment] = []
        for s in stages {
            let to: Int
            switch s.target {
            case .absolute(let n): to = max(0, n)
            case .relative(let d): to = max(0, current + d)
            case .hold: to = current
            }
            let d = s.duration.nanoseconds
            out.append(Segment(name: s.name, from: current, to: to, startNanos: at, durationNanos: d))
            current = to
            at += d
        }
        segments = out
    }

    /// Total length of the plan, nanoseconds.
    public var totalNanos: UInt64 { segments.last?.endNanos ?? 0 }
    /// Total length of the plan.
    public var totalDuration: Duration { .nanoseconds(Int64(totalNanos)) }
    /// The largest target anywhere in the plan.
    public var peakUsers: Int { segments.reduce(0) { max($0, $1.from, $1.to) } }

    /// The user target at `t` nanoseconds after the start: linear within a ramp, truncated toward
    /// the stage's starting value (ramping up adds a user only once a whole one is due; ramping
    /// down keeps a user until it is wholly due to leave). After the plan: the last target.
    public func target(atNanos t: UInt64) -> Int {
        guard let seg = segment(atNanos: t) else { return segments.last?.to ?? 0 }
        if seg.durationNanos == 0 { return seg.to }
        let elapsed = Double(t - seg.startNanos) / Double(seg.durationNanos)
        let exact = Double(seg.from) + Double(seg.to - seg.from) * elapsed
        // Truncation toward `from`; a tiny epsilon keeps 299.9999999 from losing a user at exact times.
        return seg.to >= seg.from ? Int((exact + 1e-9).rounded(.down)) : Int((exact - 1e-9).rounded(.up))
    }

    /// The stage running at `t` (nil once the plan is over).
    public func segment(atNanos t: UInt64) -> Segment? {
        segments.first { t >= $0.startNanos && t < $0.endNanos }
    }

    /// When "connections held" is measured: the end of the last stage that ends at the plan's peak
    /// (the last hold or peak stage, before any ramp-down). Nil for an empty plan.
    public var heldSampleNanos: UInt64? {
        let peak = peakUsers
        guard peak > 0 else { return nil }
        return segments.last { $0.to == peak }?.endNanos
    }

    /// The plan with targets multiplied by `users` (positive targets stay ≥ 1) and durations by `duration`.
    public func scaled(users: Double, duration: Double) -> [Stage] {
        segments.map { seg in
            Stage(name: seg.name, target: .absolute(scaleCount(seg.to, users)),
                  duration: scaleDuration(.nanoseconds(Int64(seg.durationNanos)), duration))
        }
    }
}

/// A count scaled by a factor; a positive count never scales to 0. Saturates at
/// ``Scale/maxUsers`` × 10 instead of trapping (`LoadTest.scaled(by:suite:)` names the variables
/// of a plan that large).
func scaleCount(_ n: Int, _ factor: Double) -> Int {
    guard n > 0 else { return n }
    return max(1, saturatingInt(Double(n) * factor, limit: Scale.maxUsers * 10))
}

/// A duration scaled by a factor, in whole milliseconds; saturates at 10 × ``Settings/maxDuration``.
func scaleDuration(_ d: Duration, _ factor: Double) -> Duration {
    let limitMillis = Settings.maxDuration.seconds * 10_000
    return .milliseconds(Int64(saturatingInt(d.seconds * factor * 1000, limit: Int(limitMillis))))
}

/// `x` rounded, within `0...limit` (NaN → 0): never traps on a huge or non-finite value.
func saturatingInt(_ x: Double, limit: Int) -> Int {
    guard x.isFinite else { return x.isNaN || x < 0 ? 0 : limit }
    let r = x.rounded()
    return r <= 0 ? 0 : r >= Double(limit) ? limit : Int(r)
}
