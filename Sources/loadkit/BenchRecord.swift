import LoadKit

/// `loadkit bench record`: the cost of recording on the hot path, in nanoseconds per call.
///
/// - `histogram_record_ns`: `Histogram.record(_:)` on a local histogram (what a per-loop recorder
///   does inside its lock), values spread like latencies (1 µs … ~1 s, log-uniform).
/// - `recorder_record_ns`: `MetricsRecorder.record(_:micros:)` through a trend handle (lock included).
/// - `counter_increment_ns`: `MetricsRecorder.increment(_:)` through a counter handle (lock, coarse
///   clock and per-second series included).
enum BenchRecord {
    static func run(_ o: BenchOptions) throws {
        let seconds = try o.double("seconds", 1)
        // Latency-like values, precomputed so the generator's cost is not measured.
        var values = [Int64](repeating: 0, count: 1 << 16)
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in values.indices {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            let magnitude = Int(x % 20)            // 2^0 … 2^19 µs
            values[i] = Int64(1 << magnitude) + Int64((x >> 8) % UInt64(1 << magnitude))
        }

        var h = Histogram()
        let histNs = timed(seconds: seconds) { n in
            values.withUnsafeBufferPointer { v in
                for i in 0..<n { h.record(v[i & 0xFFFF]) }
            }
        }
        let recorder = MetricsRecorder()
        let trend = recorder.trend("latency")
        let recNs = timed(seconds: seconds) { n in
            values.withUnsafeBufferPointer { v in
                for i in 0..<n { recorder.record(trend, micros: v[i & 0xFFFF]) }
            }
        }
        let counter = recorder.counter("requests")
        let incNs = timed(seconds: seconds) { n in
            for _ in 0..<n { recorder.increment(counter) }
        }
        // Keep the results observable so the loops are not optimised away.
        err("record: histogram count \(h.count) p50 \(h.value(atPercentile: 50)) µs; recorder \(recorder.snapshot().counters["requests"] ?? 0) increments")
        emit("histogram_record_ns", histNs, digits: 2)
        emit("recorder_record_ns", recNs, digits: 2)
        emit("counter_increment_ns", incNs, digits: 2)
    }

    /// Runs `body(n)` with growing `n` until a round takes ~`seconds`; returns ns per iteration of
    /// the best of three such rounds.
    static func timed(seconds: Double, _ body: (Int) -> Void) -> Double {
        var n = 1 << 16
        while true {
            let t0 = monotonicNanos()
            body(n)
            let dt = Double(monotonicNanos() - t0)
            if dt >= seconds * 1e9 / 3 || n >= 1 << 34 { break }
            n *= 2
        }
        var best = Double.infinity
        for _ in 0..<3 {
            let t0 = monotonicNanos()
            body(n)
            best = min(best, Double(monotonicNanos() - t0) / Double(n))
        }
        return best
    }
}
