import LoadKitTransport
import LoadKitProtocols

extension ErrorTally {
    /// How many example messages an ``ErrorTally`` keeps per kind.
    public static let maxExamples = 5

    /// Failures of one kind (in one recorder: a run has a few per loop) whose text is looked at
    /// for a new example: past them, a kind whose failures all read alike costs no text.
    static let failuresSought: Int64 = 20

    /// Adds `other`'s count and fills up the examples (the first ``maxExamples`` distinct ones kept).
    public mutating func merge(_ other: ErrorTally) {
        count &+= other.count
        for e in other.examples where examples.count < ErrorTally.maxExamples { keep(e) }
    }

    /// Keeps `example` unless it is one already kept or the examples are full: five copies of
    /// one message tell less than one.
    mutating func keep(_ example: String) {
        if examples.count < ErrorTally.maxExamples && !examples.contains(example) { examples.append(example) }
    }

    /// Whether the next failure's text is worth making (room left, and within the first
    /// ``failuresSought`` failures counted).
    var seeksExamples: Bool { examples.count < ErrorTally.maxExamples && count <= ErrorTally.failuresSought }
}

extension RateTally {
    /// Adds `other`'s hits and total.
    public mutating func merge(_ other: RateTally) {
        hits &+= other.hits
        total &+= other.total
    }
}

extension MetricsSnapshot {
    /// Merges `other` into this snapshot, exactly and order-independently:
    /// - `trends`: histograms merged bucket by bucket (exact for equal configurations);
    /// - `counters`, `rates`, `errors`: added (error examples: the first ``ErrorTally/maxExamples`` kept);
    /// - `series`: added element-wise (the shorter one is padded with zeros), same time origin assumed;
    /// - `gauges`: **summed** — recorders and shards each hold their share (e.g. each recorder's
    ///   `active_connections`), so the sum is the whole. A gauge that is not a share (a ratio,
    ///   an average) must be set on one recorder only or derived from trends at report time;
    /// - `trendSeries`, `errorSeries`: merged second by second like `trends` and `series`.
    public mutating func merge(_ other: MetricsSnapshot) {
        for (name, h) in other.trends {
            if trends[name] == nil { trends[name] = h } else { trends[name]!.merge(h) }
        }
        for (name, v) in other.counters { counters[name, default: 0] &+= v }
        for (name, v) in other.gauges { gauges[name, default: 0] += v }
        for (name, r) in other.rates { rates[name, default: RateTally()].merge(r) }
        for (kind, e) in other.errors {
            if errors[kind] == nil { errors[kind] = e } else { errors[kind]!.merge(e) }
        }
        Self.add(other.series, to: &series)
        Self.add(other.errorSeries, to: &errorSeries)
        for (name, t) in other.trendSeries {
            if trendSeries[name] == nil { trendSeries[name] = t } else { trendSeries[name]!.merge(t) }
        }
    }

    /// Adds per-second series element-wise (the shorter one padded with zeros).
    private static func add(_ other: [String: [Int64]], to all: inout [String: [Int64]]) {
        for (name, s) in other {
            var mine = all[name] ?? []
            if mine.count < s.count { mine.append(contentsOf: repeatElement(0, count: s.count - mine.count)) }
            for i in s.indices { mine[i] &+= s[i] }
            all[name] = mine
        }
    }

    /// This snapshot's per-second data (series, per-second trends, error kinds) moved `seconds`
    /// later, for aligning shards that started at different wall-clock seconds.
    public func shiftedSeries(by seconds: Int) -> MetricsSnapshot {
        guard seconds > 0 else { return self }
        var m = self
        let pad = [Int64](repeating: 0, count: seconds)
        for (name, s) in series { m.series[name] = pad + s }
        for (name, s) in errorSeries { m.errorSeries[name] = pad + s }
        for (name, t) in trendSeries { m.trendSeries[name] = t.shifted(by: seconds) }
        return m
    }

    /// Returns the merge of this snapshot and `other` (see ``merge(_:)``).
    public func merging(_ other: MetricsSnapshot) -> MetricsSnapshot {
        var s = self
        s.merge(other)
        return s
    }

    /// Merges many snapshots (empty snapshot for an empty list).
    public static func merged(_ snapshots: [MetricsSnapshot]) -> MetricsSnapshot {
        var s = MetricsSnapshot()
        for x in snapshots { s.merge(x) }
        return s
    }

    /// A counter's total (0 when never incremented). `errors` — the SLAs' and k6 summary's name
    /// for every classified error — is ``totalErrors``, as the SLAs read it.
    public func counter(_ name: String) -> Int64 {
        name == Threshold.errorsMetric ? totalErrors : counters[name] ?? 0
    }

    /// Error kinds, most frequent first (ties by name): the order every report lists them in.
    var errorsByCount: [(key: String, value: ErrorTally)] {
        errors.sorted { $0.value.count > $1.value.count || ($0.value.count == $1.value.count && $0.key < $1.key) }
    }

    /// Total number of errors of every kind.
    public var totalErrors: Int64 { errors.values.reduce(0) { $0 &+ $1.count } }

    /// Total samples across all trends.
    public var totalSamples: Int64 { trends.values.reduce(0) { $0 &+ $1.count } }
}

extension RunResult {
    /// Merges shard results into one: metrics merged (see ``MetricsSnapshot/merge(_:)``), the
    /// earliest start, the longest duration, peaks summed (shards run side by side), the first
    /// interruption, generator samples concatenated, their CPU time summed, environments merged
    /// (first value wins).
    /// Returns nil for an empty list.
    public static func merged(_ results: [RunResult], name: String? = nil) -> RunResult? {
        guard var out = results.first else { return nil }
        if let name { out.name = name }
        for r in results.dropFirst() {
            out.metrics.merge(r.metrics)
            out.startedAtMillis = Swift.min(out.startedAtMillis, r.startedAtMillis)
            out.durationSeconds = Swift.max(out.durationSeconds, r.durationSeconds)
            out.plannedPeakUsers += r.plannedPeakUsers
            out.peakActiveUsers += r.peakActiveUsers
            if out.interruptedBy == nil { out.interruptedBy = r.interruptedBy }
            out.generator += r.generator
            out.environment.merge(r.environment) { first, _ in first }
        }
        // The generators' samples are concatenated, so their CPU is only comparable to one core
        // count when every shard had the same (else no summary judges it against one).
        if Set(results.map { $0.environment["generator_cpus"] }).count > 1 { out.environment["generator_cpus"] = nil }
        // The shards' generators ran side by side: their CPU adds up (unknown if one did not say).
        let cpu = results.map(\.generatorCPUSeconds)
        out.generatorCPUSeconds = cpu.contains(nil) ? nil : cpu.reduce(0) { $0 + ($1 ?? 0) }
        return out
    }
}
