import LoadKitTransport
import LoadKitProtocols

extension MetricsSnapshot {
    /// Seconds a per-second value needs to count towards a spread (fewer samples say little).
    static let spreadMinSamplesPerSecond: Int64 = 10
    /// Seconds needed before a spread is estimated at all.
    static let spreadMinSeconds = 5

    /// How much a whole-run statistic would move between two runs of the same load by chance
    /// alone, estimated cheaply from this run: the standard error of the statistic, in its unit.
    ///
    /// - Trend percentiles, median and mean: the spread of that statistic second by second
    ///   (from ``trendSeries``, seconds with at least 10 samples, at least 5 such seconds),
    ///   divided by √seconds — the seconds taken as independent repeats of the same load.
    /// - `per_second`: the spread of the counter's per-second series (its last, partial second left out).
    /// - Rates (and the error rate): binomial, √(p(1−p)/n), or 1.5/n when p is 0 or 1.
    /// - Counts: Poisson, √count.
    /// Nil when there is too little data, and for `min`/`max` (single samples have no cheap spread).
    public func standardError(of statistic: Statistic, metric: String, durationSeconds: Double) -> Double? {
        if metric == Threshold.errorsMetric {
            switch statistic {
            case .rate:
                guard let p = errorRate else { return nil }
                return Self.binomial(p, successfulOperations &+ totalErrors)
            case .count: return Double(totalErrors).squareRoot()
            default: break
            }
        }
        switch statistic {
        case .percentile, .med, .avg:
            guard let t = trendSeries[metric] else { return nil }
            var values: [Double] = []
            for k in 0..<t.seconds where t.count(second: k) >= Self.spreadMinSamplesPerSecond {
                switch statistic {
                case .percentile(let p): values.append(Double(t.value(atPercentile: p, second: k)!))
                case .med: values.append(Double(t.value(atPercentile: 50, second: k)!))
                default: values.append(t.mean(second: k)!)
                }
            }
            return Self.standardError(values)
        case .perSecond:
            guard let s = series[metric], s.count > 1 else { return nil }
            return Self.standardError(s.dropLast().map(Double.init))
        case .rate:
            guard let r = rates[metric], r.total > 0 else { return nil }
            return Self.binomial(r.value, r.total)
        case .count:
            guard let c = counters[metric] else { return nil }
            return Double(c).squareRoot()
        case .min, .max:
            return nil
        }
    }

    static func standardError(_ values: [Double]) -> Double? {
        guard values.count >= spreadMinSeconds else { return nil }
        let n = Double(values.count)
        let mean = values.reduce(0, +) / n
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
        return (variance / n).squareRoot()
    }

    static func binomial(_ p: Double, _ n: Int64) -> Double? {
        guard n > 0 else { return nil }
        let se = (p * (1 - p) / Double(n)).squareRoot()
        return se > 0 ? se : 1.5 / Double(n)
    }
}

extension RunResult {
    /// Whether the difference between `value` here and `other` in `baseline` lies inside the
    /// run-to-run spread (|difference| < 2·√(se₁² + se₂²), see
    /// ``MetricsSnapshot/standardError(of:metric:durationSeconds:)``); nil when either spread is
    /// unknown. Also returns the spread as a fraction of the baseline value.
    public func withinSpread(of statistic: Statistic, metric: String, value: Double,
                             baseline: RunResult, baselineValue: Double) -> (inside: Bool, relative: Double)? {
        guard let a = metrics.standardError(of: statistic, metric: metric, durationSeconds: durationSeconds),
              let b = baseline.metrics.standardError(of: statistic, metric: metric, durationSeconds: baseline.durationSeconds)
        else { return nil }
        let band = 2 * (a * a + b * b).squareRoot()
        let relative = baselineValue != 0 ? band / Swift.abs(baselineValue) : .infinity
        return (Swift.abs(value - baselineValue) < band, relative)
    }
}
