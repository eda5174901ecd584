import LoadKitTransport
import LoadKitProtocols

/// What one run (or one shard, or a merge of shards) produced: the measurements plus the context
/// a report needs. Produced by the runner, consumed by SLA evaluation and the report writers.
///
/// INTERFACE FILE shared by the runner (Runner/) and the reports/SLA (Reports/, SLA/) work.
public struct RunResult: Sendable, Codable {
    /// The test's name (`stomp-chat`), used for report file names.
    public var name: String
    /// Wall-clock start, milliseconds since 1970.
    public var startedAtMillis: Int64
    /// How long the run took, in seconds.
    public var durationSeconds: Double
    /// Everything measured.
    public var metrics: MetricsSnapshot
    /// Most virtual users / connections planned at once.
    public var plannedPeakUsers: Int
    /// Most virtual users that were active at once.
    public var peakActiveUsers: Int
    /// Why the run ended early, if it did (`deadline: …`, `SIGINT`, `abort on threshold: …`), as
    /// the reports print it. Set by hand, it is a cut with no more known: `expect()` fails the run.
    public var interruption: String? {
        get { interruptedBy?.text }
        set { interruptedBy = newValue.map { .other(text: $0) } }
    }
    /// Why the run ended early, typed: what `expect()` decides on (see ``Interruption``).
    package var interruptedBy: Interruption?
    /// The load generator's own samples over time (CPU %, RSS bytes, open descriptors), one per second.
    public var generator: [GeneratorSample]
    /// Free-form facts about the run (build mode, shard index, target URL without secrets).
    public var environment: [String: String]
    /// The CPU time (user + system) this process spent from the run's start to its end, its
    /// shutdown included, in seconds: the load generator's cost, the figure `/usr/bin/time`
    /// gives a reference tool (the summary divides it by the requests, or the iterations). The
    /// whole process's: a fixture server or other tests running in it count too. Summed over
    /// the shards of a merged run; nil when not measured (results from older versions).
    public var generatorCPUSeconds: Double?
    /// The SLA the run was declared with (``LoadTest/sla(_:)``), `LOADKIT_SLA` applied; nil when
    /// none was declared. ``expect(reporter:fileID:filePath:line:column:)`` judges it.
    public var sla: [Threshold]?
    /// The thresholds `LOADKIT_SLA` set for this run; applied to every SLA this result is judged
    /// against, so a nightly job can change limits without a code change.
    public var slaOverrides: [Threshold]?
    /// The report root the run's files were written under (nil: none written); judging the result
    /// against an SLA it was not declared with rewrites them, so the files carry the verdict.
    public var reportRoot: String?

    /// Creates a result.
    public init(name: String, startedAtMillis: Int64, durationSeconds: Double, metrics: MetricsSnapshot,
                plannedPeakUsers: Int = 0, peakActiveUsers: Int = 0, interruption: String? = nil,
                generator: [GeneratorSample] = [], environment: [String: String] = [:]) {
        self.name = name
        self.startedAtMillis = startedAtMillis
        self.durationSeconds = durationSeconds
        self.metrics = metrics
        self.plannedPeakUsers = plannedPeakUsers
        self.peakActiveUsers = peakActiveUsers
        self.interruptedBy = interruption.map { .other(text: $0) }
        self.generator = generator
        self.environment = environment
    }
}

/// Why a run ended before its plan did. The case decides what `expect()` makes of it (an abort
/// threshold that fails when judged fails as itself; every other cut fails the run on its own);
/// ``text`` is what the reports, the console and `summary.json` print.
package enum Interruption: Sendable, Hashable, Codable {
    /// A threshold declared with `abortOnFail` was breached; `message` is its outcome then.
    case abortOnThreshold(threshold: Threshold, message: String)
    /// The `.abort(when:)` check gave this reason.
    case abortCheck(reason: String)
    /// The run reached its cap (`.maxDuration`, `LOADKIT_MAX_DURATION`), in seconds.
    case deadline(capSeconds: Double)
    /// The task running the load test was cancelled.
    case cancelled
    /// `SIGINT` or `SIGTERM`, by name.
    case signal(name: String)
    /// Given as text (``RunResult/interruption`` set by hand): a cut, with nothing more known.
    case other(text: String)

    /// The human text every report prints.
    package var text: String {
        switch self {
        case .abortOnThreshold(_, let message): "abort on threshold: \(message)"
        case .abortCheck(let reason): "abort check: \(reason)"
        case .deadline(let cap): "deadline: the run reached its cap of \(Fmt.upTo3(cap)) s"  // not 0.30000000000000004
        case .cancelled: "cancelled"
        case .signal(let name): name
        case .other(let text): text
        }
    }
}

/// One sample of the load generator's own resource use.
public struct GeneratorSample: Sendable, Codable, Equatable {
    /// Seconds since the run started.
    public var second: Double
    /// CPU used by this process over the last interval, in percent of one core.
    public var cpuPercent: Double
    /// Resident memory in bytes.
    public var rssBytes: Int64
    /// Open file descriptors.
    public var openDescriptors: Int
    /// The busiest of the run's event loops over the last interval: the percent of the time it
    /// was not waiting for events — running users' code and their I/O, or blocked in a call that
    /// does not suspend (a `sleep`, a synchronous read). Near 100, work for that loop's users
    /// waited on the generator, whatever ``cpuPercent`` says. Nil when not measured (older runs).
    public var busiestLoopPercent: Double?
    /// Creates a sample.
    public init(second: Double, cpuPercent: Double, rssBytes: Int64, openDescriptors: Int, busiestLoopPercent: Double? = nil) {
        self.second = second; self.cpuPercent = cpuPercent; self.rssBytes = rssBytes; self.openDescriptors = openDescriptors
        self.busiestLoopPercent = busiestLoopPercent
    }
}
