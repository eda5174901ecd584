import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LoadKitTransport
import LoadKitProtocols

/// The monotonic clock at a few milliseconds' resolution (`CLOCK_MONOTONIC_COARSE` on Linux:
/// a few ns instead of ~20–40): enough to place a counter increment in its second.
@inline(__always)
func coarseMonotonicNanos() -> UInt64 {
    var ts = timespec()
    #if os(Linux)
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
    #else
    clock_gettime(CLOCK_MONOTONIC, &ts)
    #endif
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// A pre-resolved trend (distribution) of one ``MetricsRecorder``: recording through it skips
/// the name lookup. Valid only for the recorder that returned it.
package struct TrendHandle: Sendable, Hashable {
    let index: Int
}

/// A pre-resolved counter of one ``MetricsRecorder``.
package struct CounterHandle: Sendable, Hashable {
    let index: Int
}

/// A pre-resolved rate of one ``MetricsRecorder``.
package struct RateHandle: Sendable, Hashable {
    let index: Int
}

/// Records the measurements of one share of a run — one event loop, one stripe of virtual users,
/// or one virtual user — behind its own `Mutex` (uncontended in the common case: protocol
/// callbacks on an event loop and the user's task may both record). No global lock is taken.
///
/// Trends hold durations in **microseconds** by convention (`record(_:micros:)`,
/// `recordNanos(_:_:)` converts). Counters also keep a per-second series indexed from the run's
/// start (`startNanos`, a ``monotonicNanos()`` value), errors one per kind, and trends a compact
/// per-second histogram (``TrendSeries``) beside the exact whole-run one. Each trend costs a
/// fixed-size histogram (≈184 KB once used) plus an ≈8 KB window for the current second, so share
/// recorders between users rather than giving 10,000 users one each.
package final class MetricsRecorder: Sendable {
    /// Longest per-second series kept (7 days); later seconds are added to the last slot.
    static let maxSeriesSeconds = 7 * 24 * 3600

    struct State {
        var trendIndex: [String: Int] = [:]
        var recentTrends: ((name: String, index: Int)?, (name: String, index: Int)?) = (nil, nil)
        var trendNames: [String] = []
        var trends: [Histogram] = []
        var trendWindows: [TrendSecondWindow] = []
        var counterIndex: [String: Int] = [:]
        var counterNames: [String] = []
        var counters: [Int64] = []
        var counterSeries: [[Int64]] = []
        var rateIndex: [String: Int] = [:]
        var rateNames: [String] = []
        var rates: [RateTally] = []
        var gauges: [String: Double] = [:]
        var errors: [String: ErrorTally] = [:]
        var errorSeries: [Int64] = []
        var errorKindSeries: [String: [Int64]] = [:]

        /// The latest instant recorded: see ``instant(_:)``.
        var latestNanos: UInt64 = 0

        /// `now`, or the latest instant already recorded if that is later: a recorder's instants
        /// only move forward, so its counters and trends file a value under the same second
        /// whichever clock read it (the coarse clock lags the precise one by up to a tick, and a
        /// caller may have read its instant before another recorded a later one). Under the lock.
        @inline(__always)
        mutating func instant(_ now: UInt64) -> UInt64 {
            if now > latestNanos { latestNanos = now }
            return latestNanos
        }

        /// The series index of now (the coarse clock, through ``instant(_:)``).
        @inline(__always)
        mutating func second(since startNanos: UInt64) -> Int {
            MetricsRecorder.second(since: startNanos, now: instant(coarseMonotonicNanos()))
        }

        /// Records `v` into trend `i` and into the second of `now` (see ``instant(_:)``).
        @inline(__always)
        mutating func recordTrend(_ i: Int, _ v: Int64, startNanos: UInt64, now: UInt64 = coarseMonotonicNanos()) {
            trends[i].record(v)
            trendWindows[i].record(v, atNanos: instant(now), runStart: startNanos)
        }
    }

    /// The run's start on the monotonic clock; per-second series count from here.
    public let startNanos: UInt64
    private let template: Histogram
    private let state = Mutex(State())

    /// Creates a recorder whose series start at `startNanos` (default: now) and whose trends use
    /// `histogram`'s configuration (default: 1 µs … 1 h, 3 significant digits).
    public init(startNanos: UInt64 = monotonicNanos(), histogram: Histogram = Histogram()) {
        self.startNanos = startNanos
        var h = histogram
        h.reset()
        self.template = h
    }

    // MARK: Handles

    /// Resolves (creating on first use) the trend `name`.
    public func trend(_ name: String) -> TrendHandle {
        state.withLock { s in TrendHandle(index: Self.trendSlot(&s, name, template)) }
    }

    /// Resolves (creating on first use) the counter `name`.
    public func counter(_ name: String) -> CounterHandle {
        state.withLock { s in CounterHandle(index: Self.counterSlot(&s, name)) }
    }

    /// Resolves (creating on first use) the rate `name`.
    public func rateHandle(_ name: String) -> RateHandle {
        state.withLock { s in RateHandle(index: Self.rateSlot(&s, name)) }
    }

    private static func trendSlot(_ s: inout State, _ name: String, _ template: Histogram) -> Int {
        // A script's steps record by name once or twice per iteration: the last two names are
        // compared (usually the same String storage) before the name is hashed.
        if let l = s.recentTrends.0, l.name == name { return l.index }
        if let l = s.recentTrends.1, l.name == name {
            s.recentTrends = (l, s.recentTrends.0)
            return l.index
        }
        let i: Int
        if let known = s.trendIndex[name] {
            i = known
        } else {
            i = s.trends.count
            s.trends.append(template); s.trendNames.append(name); s.trendIndex[name] = i
            s.trendWindows.append(TrendSecondWindow())
        }
        s.recentTrends = ((name, i), s.recentTrends.0)
        return i
    }

    private static func counterSlot(_ s: inout State, _ name: String) -> Int {
        if let i = s.counterIndex[name] { return i }
        let i = s.counters.count
        s.counters.append(0); s.counterSeries.append([]); s.counterNames.append(name); s.counterIndex[name] = i
        return i
    }

    private static func rateSlot(_ s: inout State, _ name: String) -> Int {
        if let i = s.rateIndex[name] { return i }
        let i = s.rates.count
        s.rates.append(RateTally()); s.rateNames.append(name); s.rateIndex[name] = i
        return i
    }

    /// The series index of now for a run started at `startNanos`.
    @inline(__always)
    static func second(since startNanos: UInt64, now: UInt64 = coarseMonotonicNanos()) -> Int {
        guard now > startNanos else { return 0 }
        return Swift.min(Int((now - startNanos) / 1_000_000_000), maxSeriesSeconds - 1)
    }

    @inline(__always)
    fileprivate static func bump(_ series: inout [Int64], _ second: Int, _ by: Int64) {
        if series.count <= second {
            series.append(contentsOf: repeatElement(0, count: second + 1 - series.count))
        }
        series[second] &+= by
    }

    // MARK: Recording through handles (hot path)

    /// Records a duration in microseconds (or a plain value) into a trend.
    @inline(__always)
    public func record(_ trend: TrendHandle, micros: Int64) {
        state.withLock { s in s.recordTrend(trend.index, micros, startNanos: startNanos) }
    }

    /// Records a duration given in nanoseconds (stored in microseconds, rounded to nearest).
    @inline(__always)
    public func recordNanos(_ trend: TrendHandle, _ nanos: UInt64) {
        let micros = Int64(truncatingIfNeeded: (nanos &+ 500) / 1000)
        state.withLock { s in s.recordTrend(trend.index, micros, startNanos: startNanos) }
    }

    /// Records a value with coordinated-omission correction (see ``Histogram/recordCorrected(_:expectedInterval:)``).
    public func recordCorrected(_ trend: TrendHandle, micros: Int64, expectedIntervalMicros: Int64) {
        state.withLock { s in
            s.recordTrend(trend.index, micros, startNanos: startNanos)
            guard expectedIntervalMicros > 0, micros > expectedIntervalMicros else { return }
            var missing = micros - expectedIntervalMicros
            while missing >= expectedIntervalMicros {
                s.recordTrend(trend.index, missing, startNanos: startNanos)
                missing -= expectedIntervalMicros
            }
        }
    }

    /// Adds `by` to a counter and to its per-second series.
    @inline(__always)
    public func increment(_ counter: CounterHandle, by: Int64 = 1) {
        state.withLock { s in
            let second = s.second(since: startNanos)
            s.counters[counter.index] &+= by
            Self.bump(&s.counterSeries[counter.index], second, by)
        }
    }

    /// Counts one sample of a rate: `hit` true counts towards the rate.
    @inline(__always)
    public func rate(_ rate: RateHandle, hit: Bool) {
        state.withLock { s in
            s.rates[rate.index].total &+= 1
            if hit { s.rates[rate.index].hits &+= 1 }
        }
    }

    /// Runs `body` with this recorder's state locked, for hot paths that record several values
    /// at once (an HTTP request's dozen built-ins): one lock instead of one per value.
    @inline(__always)
    func locked<R>(_ body: (inout State, _ at: RecordingInstant) -> R) -> R {
        locked(at: coarseMonotonicNanos(), body)
    }

    /// ``locked(_:)`` for values that happened at `now` (a ``monotonicNanos()`` the caller read
    /// anyway, e.g. the end of what it timed): no clock read here.
    @inline(__always)
    func locked<R>(at now: UInt64, _ body: (inout State, _ at: RecordingInstant) -> R) -> R {
        state.withLock { s in
            let t = s.instant(now)
            return body(&s, RecordingInstant(second: Self.second(since: startNanos, now: t), nanos: t, runStart: startNanos))
        }
    }

    // MARK: Recording by name

    /// Records a duration in microseconds (or a plain value) into the trend `trend`.
    public func record(_ trend: String, micros: Int64) {
        state.withLock { s in
            let i = Self.trendSlot(&s, trend, template)
            s.recordTrend(i, micros, startNanos: startNanos)
        }
    }

    /// Records a duration given in nanoseconds into the trend `trend` (stored in microseconds).
    public func recordNanos(_ trend: String, _ nanos: UInt64) {
        record(trend, micros: Int64(truncatingIfNeeded: (nanos &+ 500) / 1000))
    }

    /// Records a duration that ended at `now` (a ``monotonicNanos()`` value the caller read)
    /// into the trend `trend` and that instant's second.
    func recordNanos(_ trend: String, _ nanos: UInt64, endedAt now: UInt64) {
        let micros = Int64(truncatingIfNeeded: (nanos &+ 500) / 1000)
        state.withLock { s in
            s.recordTrend(Self.trendSlot(&s, trend, template), micros, startNanos: startNanos, now: now)
        }
    }

    /// Records a `Duration` into the trend `trend` (stored in microseconds).
    public func record(_ trend: String, _ duration: Duration) {
        recordNanos(trend, duration.nanoseconds)
    }

    /// Adds `by` to the counter `counter` and its per-second series.
    public func increment(_ counter: String, by: Int64 = 1) {
        state.withLock { s in
            let second = s.second(since: startNanos)
            let i = Self.counterSlot(&s, counter)
            s.counters[i] &+= by
            Self.bump(&s.counterSeries[i], second, by)
        }
    }

    /// Sets the gauge `name` to `value` (last value wins in this recorder; recorders are summed
    /// when merged — see ``MetricsSnapshot/merge(_:)``).
    public func gauge(_ name: String, _ value: Double) {
        state.withLock { s in s.gauges[name] = value }
    }

    /// Adds `delta` to the gauge `name` (e.g. +1 on connect, −1 on close).
    public func adjustGauge(_ name: String, by delta: Double) {
        state.withLock { s in s.gauges[name, default: 0] += delta }
    }

    /// Counts one sample of the rate `name`: `hit` true counts towards the rate.
    public func rate(_ name: String, hit: Bool) {
        state.withLock { s in
            let i = Self.rateSlot(&s, name)
            s.rates[i].total &+= 1
            if hit { s.rates[i].hits &+= 1 }
        }
    }

    /// Counts an error under its kind (``Swift/Error/loadKitKind``) and source
    /// (``Swift/Error/loadKitSource``), keeping the first ``ErrorTally/maxExamples`` distinct messages,
    /// each prefixed with `step` (`"stomp-connect: connection refused"`; no prefix when `step` is
    /// empty). Also counted in the per-second series `errors`.
    public func error(_ error: any Error, step: String) {
        let kind = error.loadKitKind
        let source = error.loadKitSource
        let seeks = state.withLock { s in
            let second = s.second(since: startNanos)
            var tally = s.errors[kind] ?? ErrorTally(source: source)
            tally.count &+= 1
            s.errors[kind] = tally
            Self.bump(&s.errorSeries, second, 1)
            Self.bump(&s.errorKindSeries[kind, default: []], second, 1)
            return tally.seeksExamples
        }
        // The text (a description, redaction) is made outside the lock the loop's other users
        // record under: it is the costly part of a failure, and a server failing is when it runs.
        if seeks {
            let text = Self.example(error, step: step)
            state.withLock { s in s.errors[kind]?.keep(text) }
        }
    }

    /// An error's example text: `step: message`, or the message alone when `step` is empty (the
    /// message names its request already), redacted — step and message apart: a step named like a
    /// credential header (`authorization`, `login`) followed by `: ` is not a header line, and
    /// redacting the joined text masked every error of such a step (`authorization:****`).
    static func example(_ error: any Error, step: String) -> String {
        let message = Secrets.redact(String(describing: error))
        return step.isEmpty ? message : Secrets.redact(step) + ": " + message
    }

    /// Moves one error already counted under `oldKind` to `error`'s kind and source (a script
    /// that caught a failure and threw a more specific classification of it). The total and the
    /// per-second series are unchanged: it is still one failure.
    public func reclassifyError(from oldKind: String, to error: any Error, step: String) {
        let kind = error.loadKitKind
        guard kind != oldKind else { return }
        state.withLock { s in
            guard var old = s.errors[oldKind], old.count > 0 else { return }
            old.count -= 1
            s.errors[oldKind] = old.count == 0 ? nil : old
            var tally = s.errors[kind] ?? ErrorTally(source: error.loadKitSource)
            tally.count &+= 1
            if tally.seeksExamples { tally.keep(Self.example(error, step: step)) }
            s.errors[kind] = tally
        }
    }

    // MARK: Reading

    /// Everything recorded so far. With `includeTrends: false` histograms are left out (cheap,
    /// for a live progress line); with `perSecond: false` the per-second trend histograms are
    /// (cheaper for a check made every second, such as an abort threshold or a scrape).
    public func snapshot(includeTrends: Bool = true, perSecond: Bool = true) -> MetricsSnapshot {
        state.withLock { s in
            var out = MetricsSnapshot()
            if includeTrends {
                for (i, name) in s.trendNames.enumerated() where s.trends[i].count > 0 {
                    // Copy into fresh storage so the recorder's own array stays uniquely
                    // referenced (no 184 KB copy-on-write on the next record).
                    var h = template
                    h.merge(s.trends[i])
                    out.trends[name] = h
                    if perSecond { out.trendSeries[name] = s.trendWindows[i].snapshot }
                }
            }
            for (i, name) in s.counterNames.enumerated() {
                out.counters[name] = s.counters[i]
                if !s.counterSeries[i].isEmpty { out.series[name] = s.counterSeries[i] }
            }
            for (i, name) in s.rateNames.enumerated() where s.rates[i].total > 0 {
                out.rates[name] = s.rates[i]
            }
            out.gauges = s.gauges
            out.errors = s.errors
            if !s.errorSeries.isEmpty { out.series["errors"] = s.errorSeries }
            out.errorSeries = s.errorKindSeries
            return out
        }
    }

    /// A copy of the trend `name`, nil when it has no samples here.
    public func histogram(_ name: String) -> Histogram? {
        state.withLock { s in
            guard let i = s.trendIndex[name], s.trends[i].count > 0 else { return nil }
            var h = template
            h.merge(s.trends[i])
            return h
        }
    }
}

/// When the values recorded under one ``MetricsRecorder/locked(_:)`` call happened: one clock
/// read for all of them.
struct RecordingInstant {
    /// Index into the per-second series.
    let second: Int
    /// The coarse monotonic clock, and the recorder's run start it counts seconds from.
    let nanos: UInt64
    let runStart: UInt64
}

extension MetricsRecorder.State {
    /// Records nanoseconds (as microseconds) into a trend's whole-run histogram; with `perSecond`
    /// also into its current second's (timeseries.csv and the report's charts read those; each
    /// second kept costs ≈ 1 KB per busy trend and recorder, so the HTTP phases go without);
    /// inside ``MetricsRecorder/locked(_:)``.
    @inline(__always)
    mutating func recordNanos(_ trend: TrendHandle, _ nanos: UInt64, at instant: RecordingInstant, perSecond: Bool = false) {
        let v = Int64(truncatingIfNeeded: (nanos &+ 500) / 1000)
        trends[trend.index].record(v)
        if perSecond { trendWindows[trend.index].record(v, atNanos: instant.nanos, runStart: instant.runStart) }
    }

    /// Records nanoseconds (as microseconds) into the whole-run histograms of several trends —
    /// `record(trend, nanos)` for each — checking the trends' storage for uniqueness once, not
    /// once a value (a request's six phases); inside ``MetricsRecorder/locked(_:)``.
    @inline(__always)
    mutating func recordNanosInBatch(_ body: (_ record: (TrendHandle, UInt64) -> Void) -> Void) {
        trends.withUnsafeMutableBufferPointer { t in
            body { trend, nanos in t[trend.index].record(Int64(truncatingIfNeeded: (nanos &+ 500) / 1000)) }
        }
    }

    /// Adds to a counter and its per-second series; inside ``MetricsRecorder/locked(_:)``.
    @inline(__always)
    mutating func increment(_ counter: CounterHandle, by: Int64 = 1, second: Int) {
        counters[counter.index] &+= by
        MetricsRecorder.bump(&counterSeries[counter.index], second, by)
    }

    /// Counts one sample of a rate; inside ``MetricsRecorder/locked(_:)``.
    @inline(__always)
    mutating func rate(_ rate: RateHandle, hit: Bool) {
        rates[rate.index].total &+= 1
        if hit { rates[rate.index].hits &+= 1 }
    }
}
