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

    /// The duration as a person writes it, in the largest unit it reaches (ns, µs, ms, s) with at
    /// most three decimals and none trailing: `300 ms`, `1.5 s`, `250 µs` — for messages, where
    /// `seconds` printed `0.30000000000000004 s` for 300 ms.
    package var readable: String {
        let c = components
        // Whole nanoseconds, rounded (a Double-built duration carries noise in its attoseconds).
        let nanos = c.seconds &* 1_000_000_000 &+ (c.attoseconds + (c.attoseconds >= 0 ? 500_000_000 : -500_000_000)) / 1_000_000_000
        let size = nanos.magnitude
        if size == 0 { return "0 s" }
        let (unit, scale): (String, UInt64) = size < 1_000 ? ("ns", 1) : size < 1_000_000 ? ("µs", 1_000)
            : size < 1_000_000_000 ? ("ms", 1_000_000) : ("s", 1_000_000_000)
        // Thousandths of the unit, rounded, then the decimals that are not zero.
        let milli = (size * 1_000 + scale / 2) / scale
        var text = String(milli / 1_000)
        var fraction = milli % 1_000
        if fraction > 0 {
            var digits = 3
            while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
            let f = String(fraction)
            text += "." + String(repeating: "0", count: digits - f.count) + f
        }
        return (nanos < 0 ? "-" : "") + text + " " + unit
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
