import LoadKitTransport

/// What failed, said beside a breached threshold that failures explain — a test failure is often
/// all a CI log shows, and `http_req_failed rate = 50 %` alone does not say whether the server
/// answered 500 or refused, or the script had a wrong URL. The most frequent error kinds with
/// their side and count, and the first example of the most frequent one.
struct FailureCause {
    /// `failures: http_500 [server] 7,070, refused [server] 12 — first: GET http://…/fail answered HTTP 500 …`.
    let text: String

    /// Kinds named (the rest counted as "+ N more kinds").
    static let kindsShown = 3

    /// Nil when the run counted no error.
    init?(_ m: MetricsSnapshot) {
        guard let kinds = Self.kinds(m), let top = m.errorsByCount.first(where: { $0.value.count > 0 }) else { return nil }
        var text = "failures: " + kinds
        if let example = top.value.examples.first { text += " — first: " + example }
        self.text = text
    }

    /// The most frequent error kinds with their side and count, `timeout [server] 60, refused
    /// [server] 2` (beyond ``kindsShown``, `+ N more kinds`); nil when the run counted no error.
    static func kinds(_ m: MetricsSnapshot) -> String? {
        let kinds = m.errorsByCount.filter { $0.value.count > 0 }
        guard !kinds.isEmpty else { return nil }
        var parts = kinds.prefix(kindsShown).map { "\($0.key) [\($0.value.source.rawValue)] \(Fmt.int($0.value.count))" }
        if kinds.count > kindsShown { parts.append("+ \(kinds.count - kindsShown) more kinds") }
        return parts.joined(separator: ", ")
    }

    /// Whether failures speak to this breach: a threshold on the failures themselves (`errors`,
    /// `http_req_failed` and its tagged variants, `iterations_failed`), or one without samples —
    /// the work it measures may never have happened because every attempt failed first.
    static func explains(_ o: ThresholdOutcome) -> Bool {
        guard !o.passed, !o.skipped, o != .noWork else { return false }
        if o.actual == nil { return true }
        let base = o.metric.split(separator: "{", maxSplits: 1).first.map(String.init) ?? o.metric
        return [Threshold.errorsMetric, BuiltInMetrics.httpReqFailed, RunnerMetrics.iterationsFailed].contains(base)
    }
}
