import LoadKitTransport
import LoadKitProtocols

/// Exponential back-off with jitter for reconnects (seed 001 v3.0): delays 1, 2, 4, 8, 16 s capped
/// at `maximum`, each multiplied by a random factor in 1 ± `jitter`, at most `maxAttempts` tries.
/// Pure: the random source is injected, so tests use a seeded generator.
public struct Backoff: Sendable, Equatable, Codable {
    /// Delay before the first retry.
    public var initial: Duration
    /// Cap on the un-jittered delay.
    public var maximum: Duration
    /// Retries allowed; the attempt after the last gets `nil` (give up).
    public var maxAttempts: Int
    /// Relative jitter (0.5 = ±50 %).
    public var jitter: Double
    /// Growth factor per attempt.
    public var multiplier: Double

    /// Creates a policy; defaults are the seed's (`INITIAL_BACKOFF_MS` 1000, `MAX_BACKOFF_MS` 30000,
    /// `MAX_RECONNECT_ATTEMPTS` 5, ±50 %).
    public init(initial: Duration = .seconds(1), maximum: Duration = .seconds(30), maxAttempts: Int = 5,
                jitter: Double = 0.5, multiplier: Double = 2) {
        self.initial = initial; self.maximum = maximum; self.maxAttempts = max(0, maxAttempts)
        self.jitter = min(1, max(0, jitter)); self.multiplier = max(1, multiplier)
    }

    /// The un-jittered delay before retry `attempt` (1-based): initial · multiplier^(attempt−1), capped.
    public func baseDelay(attempt: Int) -> Duration {
        let n = max(1, attempt)
        var s = initial.seconds
        for _ in 1..<n { s *= multiplier; if s >= maximum.seconds { break } }
        return .nanoseconds(Int64(min(s, maximum.seconds) * 1e9))
    }

    /// The jittered delay before retry `attempt` (1-based), or nil when attempts are exhausted.
    /// The result lies in base·(1 − jitter) … base·(1 + jitter); the cap applies before jitter.
    public func delay(attempt: Int, using rng: inout some RandomNumberGenerator) -> Duration? {
        guard attempt >= 1, attempt <= maxAttempts else { return nil }
        let base = baseDelay(attempt: attempt).seconds
        let factor = jitter == 0 ? 1 : Double.random(in: (1 - jitter)...(1 + jitter), using: &rng)
        return .nanoseconds(Int64(base * factor * 1e9))
    }

    /// The jittered delay using the system random generator.
    public func delay(attempt: Int) -> Duration? {
        var g = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &g)
    }
}
