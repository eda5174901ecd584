#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Monotonic time in nanoseconds (`CLOCK_MONOTONIC`): cheap enough for per-message timing.
@inline(__always)
public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Wall-clock time in milliseconds since 1970 (for message timestamps and report headers).
@inline(__always)
public func wallClockMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

extension Duration {
    /// The duration in (fractional) seconds.
    public var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }

    /// The duration in whole nanoseconds (saturating at zero for negative durations).
    public var nanoseconds: UInt64 {
        let c = components
        if c.seconds < 0 { return 0 }
        return UInt64(c.seconds) &* 1_000_000_000 &+ UInt64(c.attoseconds / 1_000_000_000)
    }
}

/// Writes `text` to standard error at once, unbuffered (the runner's notices; the loop's warnings).
package func writeStderr(_ text: String) {
    var t = text
    t.withUTF8 { buf in _ = write(2, buf.baseAddress, buf.count) }
}
