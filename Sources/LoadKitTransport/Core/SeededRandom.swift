/// A small, fast, seedable pseudo-random generator (SplitMix64): reproducible jitter, data and
/// fault decisions. Each owner (a connection, a loop, a test) keeps its own, so drawing takes no lock.
package struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    /// Creates a generator from a seed; the same seed gives the same sequence.
    public init(seed: UInt64) { state = seed }
    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1).
    public mutating func unit() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// True with probability `p` (0 never, 1 always).
    public mutating func chance(_ p: Double) -> Bool {
        if p <= 0 { return false }
        if p >= 1 { return true }
        return unit() < p
    }
}
