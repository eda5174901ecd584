import Foundation
import LoadKitTransport
import LoadKitProtocols

/// The usual statistics of one trend, in milliseconds (trends hold microseconds).
public struct TrendSummary: Sendable, Hashable, Codable {
    /// Samples.
    public var count: Int64
    /// Mean, ms.
    public var avg: Double
    /// Smallest, ms.
    public var min: Double
    /// Largest, ms.
    public var max: Double
    /// Median, ms.
    public var med: Double
    /// 90th percentile, ms.
    public var p90: Double
    /// 95th percentile, ms.
    public var p95: Double
    /// 99th percentile, ms.
    public var p99: Double

    /// Summarizes a histogram of microseconds.
    public init(_ h: Histogram) {
        count = h.count
        avg = h.mean / 1000
        min = Double(h.min) / 1000
        max = Double(h.max) / 1000
        med = Double(h.median) / 1000
        p90 = Double(h.value(atPercentile: 90)) / 1000
        p95 = Double(h.value(atPercentile: 95)) / 1000
        p99 = Double(h.value(atPercentile: 99)) / 1000
    }
}

enum Fmt {
    /// `1 user planned`, `20 users planned`: a count with its noun in the right number.
    static func usersPlanned(_ n: Int) -> String { "\(int(Int64(n))) user\(n == 1 ? "" : "s") planned" }

    /// A run's users as its header says them: `20 users planned`, or for the open model, whose
    /// plan is a rate, `maxUsers 1,000` — a ceiling, not a plan.
    static func usersPlanned(_ r: RunResult) -> String {
        guard isOpenModel(r) else { return usersPlanned(r.workers) }
        return "maxUsers \(int(Int64(r.workers)))"
    }

    /// Whether `r` ran the open model (its facts' `model` says so).
    static func isOpenModel(_ r: RunResult) -> Bool { r.environment["model"]?.hasPrefix(RunEngine.openModelTag) == true }

    /// Up to three decimals, trailing zeros dropped (`0.4`, `2`, `1.234`): durations and rates in
    /// the runner's messages.
    static func upTo3(_ x: Double) -> String {
        let r = (x * 1000).rounded() / 1000
        guard r.isFinite, abs(r) < 1e15 else { return String(x) }   // Int(r) would trap
        return r == r.rounded() ? String(Int(r)) : String(r)
    }

    /// Fixed decimals, "." separator, no grouping.
    static func num(_ v: Double, _ decimals: Int = 2) -> String {
        guard v.isFinite else { return "0" }
        return String(format: "%.\(decimals)f", v)
    }

    /// About four significant digits for a table cell (`1234`, `95.04`, `1.234`, `0.052`).
    static func short3(_ v: Double) -> String {
        let a = Swift.abs(v)
        return Threshold.trim(v, decimals: a >= 1000 ? 0 : (a >= 100 ? 1 : (a >= 1 ? 2 : 3)))
    }

    /// 3 significant-ish decimals trimmed ("12", "12.5", "0.123").
    static func short(_ v: Double) -> String { Threshold.trim(v) }

    /// A duration in ms shown like k6 (`812.5µs`, `45.23ms`, `1.23s`).
    static func k6Duration(_ ms: Double) -> String {
        if ms < 1 { return num(ms * 1000, 2) + "µs" }
        if ms < 1000 { return num(ms, 2) + "ms" }
        if ms < 60_000 { return num(ms / 1000, 2) + "s" }
        return num(ms / 60_000, 2) + "m"
    }

    /// Seconds as `45.234s` or `12m03.5s`.
    static func duration(_ s: Double) -> String {
        if s < 60 { return num(s, 3) + "s" }
        let m = Int(s / 60)
        return "\(m)m" + String(format: "%04.1f", s - Double(m * 60)) + "s"
    }

    /// An integer with thousands separators (`2,310`).
    static func int(_ v: Int64) -> String {
        let digits = String(v.magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(ch)
        }
        return (v < 0 ? "-" : "") + out
    }

    /// A percentage with as many decimals as make it readable (`0.52 %`, `99.9 %`, `0.0031 %`).
    static func percent(_ ratio: Double) -> String {
        let p = ratio * 100
        if p == 0 || p == 100 { return "\(Int(p)) %" }
        let decimals = p >= 10 ? 1 : (p >= 0.1 ? 2 : 4)
        return Threshold.trim(p, decimals: decimals) + " %"
    }

    /// Seconds for people: `12.1 s`, `4 min 05 s`, `1 h 02 min`.
    static func readableDuration(_ s: Double) -> String {
        guard s.isFinite, s >= 0 else { return "–" }
        if s < 60 { return Threshold.trim(s, decimals: 1) + " s" }
        let t = Int(s.rounded())
        if t < 3600 { return "\(t / 60) min " + String(format2: t % 60) + " s" }
        return "\(t / 3600) h " + String(format2: (t % 3600) / 60) + " min"
    }

    static func bytes(_ b: Int64) -> String {
        let kb = Double(b) / 1024, mb = kb / 1024
        // Compared as printed: 1,048,570 bytes is "1.0 MB", not 1023.99 KB printed "1024.0 KB".
        if (mb * 10).rounded() >= 10_240 { return num(mb / 1024, 2) + " GB" }
        if (kb * 10).rounded() >= 10_240 { return num(mb, 1) + " MB" }
        return kb >= 1 ? num(kb, 1) + " KB" : "\(b) B"
    }
}

extension RunResult {
    /// Planned users, or the peak active users when nothing was planned.
    var workers: Int { plannedPeakUsers > 0 ? plannedPeakUsers : peakActiveUsers }

    /// successful operations ÷ (successful operations + errors), 0…1; nil when both are zero.
    public var successRate: Double? { metrics.errorRate.map { 1 - $0 } }
}

/// The error rate with its denominator in words, from the snapshot's own terms
/// (``MetricsSnapshot/errorRate``, ``MetricsSnapshot/successfulOperations``,
/// ``MetricsSnapshot/totalErrors``): `0.52 % (12 failed, 2,298 succeeded)`. "Succeeded" is the
/// `operations` counter (successful operations); the total is not called "operations" so the two
/// do not read as different counts.
struct ErrorRateText {
    let rate: Double?
    let succeeded: Int64
    let failed: Int64

    init(_ m: MetricsSnapshot) {
        rate = m.errorRate
        succeeded = m.successfulOperations
        failed = m.totalErrors
    }

    /// `0.52 % (12 failed, 2,298 succeeded)`, or why there is no rate.
    var sentence: String {
        guard let rate else { return "no operations counted, no errors" }
        return "\(Fmt.percent(rate)) (\(Fmt.int(failed)) failed, \(Fmt.int(succeeded)) succeeded)"
    }
}

/// The held-connections figure explained: held = users connected at the end of the hold ÷ users
/// planned then; those not connected then are split into late connectors (connected afterwards,
/// or still connecting with no error recorded) and the rest, so a run where nothing failed does
/// not read as a failure.
struct HeldConnections {
    /// Users planned at the end of the hold (the rate's samples).
    let planned: Int64
    /// Users connected then (the rate's hits).
    let held: Int64
    /// Seconds into the run the hold ended, when known.
    let atSecond: Double?
    /// Not connected at the end of the hold but connected afterwards (from the per-second
    /// `connected` series).
    let connectedLater: Int64
    /// Errors of the whole run.
    let errors: Int64
    /// WebSocket sessions the server ended (``BuiltInMetrics/wsSessionsClosedByServer``).
    let closedByServer: Int64

    init?(_ r: RunResult) {
        guard let tally = r.metrics.rates[SLA.connectionsHeldMetric], tally.total > 0 else { return nil }
        planned = tally.total
        held = tally.hits
        errors = r.metrics.totalErrors
        closedByServer = r.metrics.counters[BuiltInMetrics.wsSessionsClosedByServer] ?? 0
        atSecond = r.environment["connections_held_at_second"].flatMap(Double.init)
        // Series entry k was sampled k + 1 seconds into the run (the last at the plan's end).
        if let at = atSecond, let connected = r.metrics.series[RunnerMetrics.connected] {
            let after = connected.dropFirst(Swift.max(0, Int(at)))
            connectedLater = Swift.min(planned - held, Swift.max(0, (after.max() ?? 0) - held))
        } else {
            connectedLater = 0
        }
    }

    var notHeld: Int64 { planned - held }
    var ratio: Double { Double(held) / Double(planned) }

    /// `99.9 % (899 of 900 users planned were connected at the end of the hold, 12 s into the run)`.
    var sentence: String {
        var s = "\(Fmt.percent(ratio)) (\(Fmt.int(held)) of \(Fmt.int(planned)) users planned were connected at the end of the hold"
        if let at = atSecond { s += ", \(Threshold.trim(at, decimals: 1)) s into the run" }
        return s + ")"
    }

    /// What became of the users not connected at the end of the hold; nil when all were.
    var lateNote: String? {
        guard notHeld > 0 else { return nil }
        let head = "\(Fmt.int(notHeld)) not connected then: "
        if connectedLater > 0 {
            let rest = notHeld - connectedLater
            return head + "\(Fmt.int(connectedLater)) connected later (late connectors, not failures)"
                + (rest > 0 ? ", \(Fmt.int(rest)) never connected" + (errors > 0 ? " (see errors)" : " with no error recorded") : "")
        }
        if errors == 0 && closedByServer > 0 {
            return head + "no error was recorded, but the server ended \(Fmt.int(closedByServer)) WebSocket session"
                + (closedByServer == 1 ? "" : "s") + " (ws_sessions_closed_by_server): users it disconnected, or late connectors"
        }
        if errors == 0 { return head + "no error was recorded, so they were still connecting (late connectors, not failures)" }
        return head + "see the errors"
    }
}

/// Escaping for HTML and XML text and attribute values.
enum Markup {
    /// `s` with `& < > " '` as entities and the control characters XML 1.0 cannot carry dropped;
    /// with `newlinesAsEntities`, newline and tab become `&#10;`/`&#9;` (kept in attribute values).
    static func escape(_ s: String, newlinesAsEntities: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\n" where newlinesAsEntities: out += "&#10;"
            case "\t" where newlinesAsEntities: out += "&#9;"
            case "\n", "\t", "\r": out.unicodeScalars.append(u)
            default:
                if u.value < 0x20 || (0xFFFE...0xFFFF).contains(u.value) { continue }
                out.unicodeScalars.append(u)
            }
        }
        return out
    }
}
