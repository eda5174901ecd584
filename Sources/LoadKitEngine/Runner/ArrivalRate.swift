import Foundation
import LoadKitTransport
import LoadKitProtocols

/// An open-model load: iterations *start* on a schedule whatever the server does (k6's
/// constant/ramping arrival rate, wrk2's constant throughput). Rates are iterations per second.
public struct ArrivalRate: Sendable, Equatable {
    /// One piece of a rate plan.
    public struct Step: Sendable, Equatable {
        /// Rate at the step's end (iterations per second).
        public var rate: Double?
        /// Length of the step.
        public var duration: Duration

        /// Ramps linearly to `rate` iterations per second over `duration`.
        public static func to(_ rate: Double, over duration: Duration) -> Step { Step(rate: max(0, rate), duration: duration) }
        /// Keeps the current rate for `duration`.
        public static func hold(_ duration: Duration) -> Step { Step(rate: nil, duration: duration) }
    }

    /// Rate at the start.
    public var startRate: Double
    /// The steps in order.
    public var steps: [Step]

    /// `perSecond` iterations every second for `duration`.
    public static func constant(_ perSecond: Double, for duration: Duration) -> ArrivalRate {
        ArrivalRate(startRate: max(0, perSecond), steps: [.hold(duration)])
    }

    /// Starts at `start` iterations per second and follows `steps` (ramps and holds).
    public static func ramping(from start: Double = 0, _ steps: Step...) -> ArrivalRate {
        ArrivalRate(startRate: max(0, start), steps: steps)
    }

    /// Starts at `start` iterations per second and follows `steps`.
    public static func ramping(from start: Double = 0, steps: [Step]) -> ArrivalRate {
        ArrivalRate(startRate: max(0, start), steps: steps)
    }

    /// Linear pieces (rate from → to over nanoseconds).
    var pieces: [(from: Double, to: Double, nanos: UInt64)] {
        var r = startRate
        return steps.map { s in
            let to = s.rate ?? r
            defer { r = to }
            return (r, to, s.duration.nanoseconds)
        }
    }

    /// Length of the plan.
    public var totalNanos: UInt64 { steps.reduce(0) { $0 + $1.duration.nanoseconds } }
    /// Highest rate anywhere in the plan.
    public var peakRate: Double { pieces.reduce(startRate) { max($0, $1.from, $1.to) } }
    /// Expected number of iterations over the whole plan (∫ rate dt).
    public var expectedIterations: Double {
        pieces.reduce(0) { $0 + ($1.from + $1.to) / 2 * Double($1.nanos) / 1e9 }
    }

    /// The rate at `t` nanoseconds after the start (0 after the end).
    public func rate(atNanos t: UInt64) -> Double {
        var at: UInt64 = 0
        for p in pieces {
            if t < at + p.nanos { return p.from + (p.to - p.from) * Double(t - at) / Double(p.nanos) }
            at += p.nanos
        }
        return 0
    }

    /// Scheduled start offsets (nanoseconds from the run's start) of every iteration, lazily:
    /// iteration k (from 0) is due when the integral of the rate reaches k.
    package func startTimes() -> ArrivalSchedule { ArrivalSchedule(pieces: pieces) }

    /// The plan with rates multiplied by `rate` and durations by `duration`.
    public func scaled(rate: Double, duration: Double) -> ArrivalRate {
        ArrivalRate(startRate: startRate * rate,
                    steps: steps.map { Step(rate: $0.rate.map { $0 * rate }, duration: scaleDuration($0.duration, duration)) })
    }
}

/// The scheduled start times of an ``ArrivalRate``, in nanoseconds from the run's start.
package struct ArrivalSchedule: Sequence, IteratorProtocol, Sendable {
    private let pieces: [(from: Double, to: Double, nanos: UInt64)]
    private var piece = 0
    private var pieceStart: UInt64 = 0
    private var before: Double = 0     // iterations due before the current piece
    private var k: Double = 0          // the next iteration's number

    init(pieces: [(from: Double, to: Double, nanos: UInt64)]) { self.pieces = pieces }

    /// The next scheduled start offset, nil when the plan is over.
    public mutating func next() -> UInt64? {
        while piece < pieces.count {
            let p = pieces[piece]
            let seconds = Double(p.nanos) / 1e9
            let inPiece = (p.from + p.to) / 2 * seconds
            let want = k - before
            if want < inPiece - 1e-9 {
                // Solve from·t + (to−from)·t²/(2·T) = want for t in [0, T].
                let a = (p.to - p.from) / (2 * seconds)
                let t: Double
                if abs(a) < 1e-12 {
                    t = p.from > 0 ? want / p.from : 0
                } else {
                    let disc = Swift.max(0, p.from * p.from + 4 * a * want)
                    t = (-p.from + disc.squareRoot()) / (2 * a)
                }
                k += 1
                let offset = UInt64(Swift.max(0, Swift.min(seconds, t)) * 1e9)
                return pieceStart + Swift.min(offset, p.nanos)
            }
            before += inPiece
            pieceStart += p.nanos
            piece += 1
        }
        return nil
    }
}

/// A burst: `count` users (or connects) started within `window` (seed 004: 1, 1,000, 5,000 and
/// 10,000 connect-and-send in one second). A zero window starts them all at once.
public struct Burst: Sendable, Equatable {
    /// How many users start.
    public var count: Int
    /// The window the starts are spread evenly over.
    public var window: Duration

    /// `count` starts spread evenly over `window` (all at once when zero).
    public init(_ count: Int, over window: Duration = .zero) {
        self.count = max(0, count); self.window = window
    }

    /// Start offset of user `i` (0-based), nanoseconds: `window · i / count`, always inside the window.
    public func offset(of i: Int) -> UInt64 {
        guard count > 0 else { return 0 }
        let w = window.nanoseconds
        return UInt64((Double(w) * Double(i) / Double(count)).rounded(.down))
    }
}
