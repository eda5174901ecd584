import Synchronization
import LoadKitTransport
import LoadKitProtocols

/// A set-up step done before the load starts, over many items with bounded concurrency and a
/// progress line — the work seed 002 did by hand (10,000 members log in and join a challenge).
///
/// ```swift
/// let report = await SetupPhase("join", concurrency: 32).run(Array(1...10_000)) { memberId in
///     let token = try await login(memberId)
///     try await join(challengeId, token)
/// }
/// try report.requireSuccess()          // throws SetupError naming the phase and the first errors
/// ```
///
/// At most ``concurrency`` bodies run at once. Every item runs once (no retry); a body that throws
/// counts as failed and its classified error is tallied by kind. After ``maxFailures`` failures the
/// remaining items are skipped (a dead server should not cost 10,000 time-outs). Task
/// cancellation skips the remaining items too.
public struct SetupPhase: Sendable {
    /// Progress so far, handed to the progress callback.
    public struct Progress: Sendable, Equatable {
        /// The phase's name.
        public var name: String
        /// Items finished (succeeded + failed).
        public var done: Int
        /// Items in all.
        public var total: Int
        /// Items whose body threw.
        public var failed: Int
        /// Seconds since the phase started.
        public var elapsedSeconds: Double

        /// `setup 'join': 1200/10000 (12 %), 3 failed, 412/s, 2.9 s`
        public var line: String {
            let pct = total == 0 ? 100 : done * 100 / total
            let rate = elapsedSeconds > 0 ? Int((Double(done) / elapsedSeconds).rounded()) : 0
            let secs = (elapsedSeconds * 10).rounded() / 10
            return "setup '\(name)': \(done)/\(total) (\(pct) %), \(failed) failed, \(rate)/s, \(secs) s"
        }
    }

    /// The phase's name (progress lines and errors).
    public var name: String
    /// Bodies running at once (at least 1).
    public var concurrency: Int
    /// Failures after which the remaining items are skipped (nil: never).
    public var maxFailures: Int?
    /// How often progress is reported while the phase runs.
    public var progressInterval: Duration
    /// Called with progress every ``progressInterval`` and once at the end; default: one line to
    /// stderr each time (nil callback: silent).
    public var onProgress: (@Sendable (Progress) -> Void)?

    /// Creates a phase. The default progress callback writes `loadkit: setup '<name>': …` lines to stderr.
    public init(_ name: String, concurrency: Int = 32, maxFailures: Int? = nil, progressInterval: Duration = .seconds(2),
                onProgress: (@Sendable (Progress) -> Void)? = SetupPhase.stderrProgress) {
        self.name = name
        self.concurrency = max(1, concurrency)
        self.maxFailures = maxFailures
        self.progressInterval = progressInterval
        self.onProgress = onProgress
    }

    /// The default progress callback: one `loadkit: setup '…': …` line to stderr.
    public static let stderrProgress: @Sendable (Progress) -> Void = { writeStderr("loadkit: \($0.line)\n") }

    /// Runs `body` once per item, at most ``concurrency`` at once, and reports what happened.
    public func run<Item: Sendable>(_ items: [Item], _ body: @escaping @Sendable (Item) async throws -> Void) async -> SetupReport {
        let start = monotonicNanos()
        let tally = SetupTally(SetupReport(name: name, total: items.count))
        let name = self.name, onProgress = self.onProgress
        @Sendable func progress() -> Progress {
            let r = tally.value.withLock { $0 }
            return Progress(name: name, done: r.succeeded + r.failed, total: r.total, failed: r.failed,
                            elapsedSeconds: Double(monotonicNanos() &- start) / 1e9)
        }
        // Periodic progress from a side task, so a slow item never delays the line.
        let reporter: Task<Void, Never>? = onProgress.map { report in
            let interval = progressInterval
            return Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    if Task.isCancelled { break }
                    report(progress())
                }
            }
        }
        let maxFailures = self.maxFailures
        await withTaskGroup(of: Void.self) { group in
            var next = 0
            func startNext() -> Bool {
                guard next < items.count, !Task.isCancelled else { return false }
                if let m = maxFailures, tally.value.withLock({ $0.failed }) >= m { return false }
                let item = items[next]
                next += 1
                group.addTask {
                    do {
                        try await body(item)
                        tally.value.withLock { $0.succeeded += 1 }
                    } catch {
                        tally.value.withLock { $0.recordFailure(error) }
                    }
                }
                return true
            }
            var running = 0
            while running < concurrency, startNext() { running += 1 }
            while running > 0 {
                await group.next()
                running -= 1
                if startNext() { running += 1 }
            }
        }
        reporter?.cancel()
        var report = tally.value.withLock { $0 }
        report.skipped = report.total - report.succeeded - report.failed
        report.durationSeconds = Double(monotonicNanos() &- start) / 1e9
        onProgress?(progress())
        return report
    }
}

/// The report under construction, shared by the phase's tasks.
private final class SetupTally: Sendable {
    let value: Mutex<SetupReport>
    init(_ r: SetupReport) { value = Mutex(r) }
}

/// What a ``SetupPhase`` did.
public struct SetupReport: Sendable, Equatable {
    /// The phase's name.
    public var name: String
    /// Items given.
    public var total: Int
    /// Items whose body returned.
    public var succeeded = 0
    /// Items whose body threw.
    public var failed = 0
    /// Items not run (too many failures, or cancelled).
    public var skipped = 0
    /// Failures by kind (`http_503`, `refused`, …) with their source and a few examples.
    public var errors: [String: ErrorTally] = [:]
    /// Wall time of the phase.
    public var durationSeconds: Double = 0

    /// Creates an empty report.
    public init(name: String, total: Int) { self.name = name; self.total = total }

    mutating func recordFailure(_ error: any Error) {
        failed += 1
        var t = errors[error.loadKitKind] ?? ErrorTally(source: error.loadKitSource)
        t.count += 1
        if t.examples.count < 3 { t.examples.append(String(describing: error)) }
        errors[error.loadKitKind] = t
    }

    /// Throws ``SetupError`` unless at least `ratio` of the items succeeded (default: all).
    public func requireSuccess(atLeast ratio: Double = 1) throws {
        let ok = total == 0 || Double(succeeded) >= ratio * Double(total) - 1e-9
        guard !ok else { return }
        let top = errors.max { $0.value.count < $1.value.count }
        throw SetupError(phase: name, succeeded: succeeded, total: total, skipped: skipped,
                         kinds: errors.mapValues(\.count), source: top?.value.source ?? .loadGenerator,
                         firstExample: top?.value.examples.first)
    }
}

/// A set-up phase fell short; names the phase, the counts and the most common failure.
public struct SetupError: ClassifiedError, Sendable, Equatable {
    /// The phase.
    public var phase: String
    /// Items that succeeded.
    public var succeeded: Int
    /// Items in all.
    public var total: Int
    /// Items not run.
    public var skipped: Int
    /// Failure counts by kind.
    public var kinds: [String: Int64]
    /// Source of the most common failure.
    public var source: FailureSource
    /// An example of the most common failure.
    public var firstExample: String?

    /// `setup_failed`.
    public var kind: String { "setup_failed" }

    public var description: String {
        let k = kinds.sorted { $0.value > $1.value }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        return "set-up phase '\(phase)' succeeded for \(succeeded) of \(total) items"
            + (skipped > 0 ? " (\(skipped) skipped)" : "") + (k.isEmpty ? "" : "; failures: \(k)")
            + (firstExample.map { "; e.g. \($0)" } ?? "")
    }
}
