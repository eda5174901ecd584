import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LoadKitTransport
import LoadKitProtocols

/// All recorders of one run. Hands out recorders (a dedicated one, or one of a fixed set of
/// stripes shared by virtual users) and merges them into a snapshot at any time — for the live
/// progress line, the Prometheus endpoint and the final ``RunResult``.
package final class MetricsRegistry: Sendable {
    /// The run's start on the monotonic clock (series index 0).
    public let startNanos: UInt64
    /// The run's start on the wall clock, milliseconds since 1970.
    public let startedAtMillis: Int64
    /// Striped recorders: virtual user `n` records into `stripes[n % stripes.count]`.
    public let stripes: [MetricsRecorder]
    private let histogram: Histogram
    private let extra = Mutex<[MetricsRecorder]>([])

    /// Creates a registry starting now. `stripeCount` defaults to 4 × active processors (at
    /// least 4): enough that a lock is rarely contended, few enough that memory stays small.
    public init(stripeCount: Int? = nil, histogram: Histogram = Histogram(),
                startNanos: UInt64 = monotonicNanos(), startedAtMillis: Int64 = wallClockMillis()) {
        self.startNanos = startNanos
        self.startedAtMillis = startedAtMillis
        self.histogram = histogram
        let n = Swift.max(1, stripeCount ?? Swift.max(4, 4 * ProcessInfoShim.activeProcessors))
        self.stripes = (0..<n).map { _ in MetricsRecorder(startNanos: startNanos, histogram: histogram) }
    }

    /// The shared recorder for virtual user (or connection, or loop) number `index`.
    public func recorder(forUser index: Int) -> MetricsRecorder {
        stripes[Int(UInt(bitPattern: index) % UInt(stripes.count))]
    }

    /// A new recorder of its own, included in every snapshot from now on.
    public func makeRecorder() -> MetricsRecorder {
        let r = MetricsRecorder(startNanos: startNanos, histogram: histogram)
        extra.withLock { $0.append(r) }
        return r
    }

    /// Every recorder, stripes first.
    public var allRecorders: [MetricsRecorder] { stripes + extra.withLock { $0 } }

    /// The merge of every recorder so far (see ``MetricsSnapshot/merge(_:)``). With
    /// `includeTrends: false` histograms are skipped, which makes it cheap enough to call every
    /// second for a progress line; `perSecond: false` skips only the per-second trend histograms
    /// (their merge grows with the run's length: take them at the end, not every second).
    public func snapshot(includeTrends: Bool = true, perSecond: Bool = true) -> MetricsSnapshot {
        var out = MetricsSnapshot()
        for r in allRecorders { out.merge(r.snapshot(includeTrends: includeTrends, perSecond: perSecond)) }
        return out
    }

    /// One trend merged across every recorder (nil when nobody recorded it): cheaper than a
    /// whole snapshot with trends, for a live figure such as the progress line's P95.
    public func trend(_ name: String) -> Histogram? {
        var out: Histogram?
        for r in allRecorders {
            guard let h = r.histogram(name) else { continue }
            if out == nil { out = h } else { out!.merge(h) }
        }
        return out
    }

    /// Seconds since the run started.
    public var elapsedSeconds: Double {
        let now = monotonicNanos()
        return now > startNanos ? Double(now - startNanos) / 1e9 : 0
    }
}

/// Processor count without Foundation in this file.
enum ProcessInfoShim {
    static var activeProcessors: Int {
        #if canImport(Glibc)
        return Swift.max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return Swift.max(1, Int(sysconf(_SC_NPROCESSORS_ONLN)))
        #endif
    }
}
