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
    /// `seconds` printed `0.30000000000000004 s` for 300 ms. Whole seconds are never multiplied
    /// out, so any duration prints (`9223372036854775807 s`).
    package var readable: String {
        let c = components  // both parts carry the duration's sign
        let sign = c.seconds < 0 || c.attoseconds < 0 ? "-" : ""
        let seconds = c.seconds.magnitude, attos = c.attoseconds.magnitude
        func text(_ whole: UInt64, _ thousandths: UInt64, _ unit: String) -> String {
            var out = sign + String(whole)
            if thousandths > 0 {
                var fraction = thousandths, digits = 3
                while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
                let f = String(fraction)
                out += "." + String(repeating: "0", count: digits - f.count) + f
            }
            return out + " " + unit
        }
        if seconds > 0 {
            // Milliseconds rounded; a carry into the next second stays in range (|seconds| ≤ 2⁶³).
            let ms = (attos + 500_000_000_000_000) / 1_000_000_000_000_000
            return text(seconds + ms / 1_000, ms % 1_000, "s")
        }
        let nanos = (attos + 500_000_000) / 1_000_000_000      // ≤ 10⁹, rounded
        if nanos == 0 { return "0 s" }
        if nanos < 1_000 { return sign + String(nanos) + " ns" }
        if nanos < 1_000_000 { return text(nanos / 1_000, nanos % 1_000, "µs") }  // thousandths of a µs are ns
        let micros = (nanos + 500) / 1_000                                        // thousandths of a ms
        return micros < 1_000_000 ? text(micros / 1_000, micros % 1_000, "ms") : text(1, 0, "s")
    }

    /// The duration in whole nanoseconds, saturating at zero for negative durations and at
    /// 2⁶² ns (146 years) for longer ones: a deadline computed as a clock reading plus this never
    /// wraps into the past (a time-out of `.seconds(Int64.max)` fired at once before).
    public var nanoseconds: UInt64 {
        let c = components
        if c.seconds < 0 || c.attoseconds < 0 { return 0 }
        let cap: UInt64 = 1 << 62
        if c.seconds >= Int64(cap / 1_000_000_000) { return cap }
        return UInt64(c.seconds) * 1_000_000_000 + UInt64(c.attoseconds / 1_000_000_000)
    }
}

/// Writes `text` to standard error at once, unbuffered (the runner's notices; the loop's warnings).
package func writeStderr(_ text: String) {
    var t = text
    t.withUTF8 { buf in _ = write(2, buf.baseAddress, buf.count) }
}
