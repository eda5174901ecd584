import Foundation
import LoadKitTransport
import LoadKitProtocols

/// A load test: a name, a load model and options. Reads like the plan said aloud:
///
/// ```swift
/// let result = try await LoadTest("stomp-chat") {
///     Stage("initial", to: 300, over: .seconds(10))
///     Stage("peak",    to: 600, over: .seconds(10))
///     Hold(.seconds(20))
/// }
/// .scaled(by: .current, suite: "STOMP")
/// .run { user in
///     try await user.measure("login") { … }
///     user.markConnected()
///     try await user.every(.seconds(1)) { try await user.measure("send") { … } }
/// }
/// result.expect { SLA.p95("send", below: .milliseconds(200)) }
/// ```
public struct LoadTest: Sendable {
    /// What drives the users.
    public enum Model: Sendable, Equatable {
        /// Closed model: ramping virtual users through stages.
        case stages([Stage])
        /// Open model: iterations start on schedule, at most `maxUsers` at once.
        case arrivals(ArrivalRate, maxUsers: Int)
        /// `Burst.count` users started within `Burst.window`, each running the script once, for at most `hold`.
        case burst(Burst, hold: Duration)
    }

    /// Knobs with sensible defaults.
    public struct Options: Sendable {
        /// After the stop flag, how long users get to finish before their tasks are cancelled.
        public var gracefulStop: Duration = .seconds(5)
        /// Hard cap on the whole run. `LOADKIT_MAX_DURATION` caps every run as well (the smaller wins).
        public var maxDuration: Duration?
        /// Thresholds from `LOADKIT_SLA`, already applied to ``thresholds``.
        var slaOverrides: [Threshold] = []
        /// The test chose its scale in code (``LoadTest/scaled(by:suite:)`` or ``LoadTest/scaled(_:)``):
        /// the run does not apply the environment's scale again.
        var scaleChosen = false
        /// Closed model: pause after a script run threw, before it is run again. Default none: the
        /// next iteration starts at once, as in k6, so a failing server gets the same load as a
        /// healthy one. Set it (``LoadTest/pauseAfterError(_:)``) when failures are instant (a
        /// refused port) and a hot error loop would only burn the generator's CPU.
        public var pauseAfterError: Duration = .zero
        /// Open model: an iteration starting more than this after it was due counts in
        /// `iterations_late` (default 1 ms; every iteration's lateness is in `iteration_lateness`).
        public var lateThreshold: Duration = .milliseconds(1)
        /// Connections each user holds (for the pre-run capacity check; 0 skips it).
        public var connectionsPerUser: Int = 1
        /// Descriptors per connection (2 when the fixture server shares this process).
        public var descriptorsPerConnection: Int = 1
        /// Source addresses the users' connections are spread over.
        public var sourceAddresses: Int = 1
        /// Checked once a second on the merged metrics; a non-nil answer stops the run early with
        /// `abort check: <reason>` as `RunResult.interruption` (and `expect()` fails the run).
        public var abortCheck: (@Sendable (MetricsSnapshot) -> String?)?
        /// The loops the users, the run's control loop and its monitor run on (nil: the shared
        /// group). For tests that busy their loops on purpose, so tests running beside them in
        /// the same process keep time on the shared loops.
        package var userLoops: EventLoopGroup?
        /// Smoke-profile size declared by the scenario.
        public var smokeUsers: Int?
        /// Smoke-profile duration declared by the scenario.
        public var smokeDuration: Duration?
        /// Live progress line: nil = on when stderr is a terminal or `LOADKIT_PROGRESS=1`.
        public var progress: Bool?
        /// Wait for other runs in the process first (nil: `LOADKIT_EXCLUSIVE_RUNS`, default true).
        public var exclusive: Bool?
        /// Facts copied into `RunResult.environment`.
        public var environment: [String: String] = [:]
        /// This machine's share of a sharded run (see ``LoadTest/sharded(_:)``).
        public var shard: Shard = .single
        /// Thresholds shown with pass/fail in the reports; those with `abortOnFail` are checked
        /// once a second and stop the run early when breached.
        public var thresholds: [Threshold] = []
        /// Write the report files at the end of every run (also interrupted ones).
        public var writeReports = true
        /// Report folder root (default `LOADKIT_REPORT_DIR`, else `./loadkit-reports`).
        public var reportRoot: String?
        /// Prometheus names/buckets for the `/metrics` endpoint (served when `LOADKIT_PROMETHEUS_PORT` is
        /// set, labelled with `test` and `run_id`) and the push of `LOADKIT_PUSH_URL`.
        package var prometheus = PrometheusExposition.Options()
        /// Creates default options.
        public init() {}
    }

    /// The test's name (report file names, progress line).
    public let name: String
    /// The load model.
    public var model: Model
    /// Options.
    public var options = Options()
    /// Settings the scripts see (`user.settings`).
    public var settings: Settings = .current

    /// Closed model: ramping virtual users through `stages` (cumulative targets).
    public init(_ name: String, @StageBuilder stages: () -> [Stage]) {
        self.name = name; self.model = .stages(stages())
    }

    /// Closed model from a list of stages.
    public init(_ name: String, stages: [Stage]) {
        self.name = name; self.model = .stages(stages)
    }

    /// Open model: iterations start at `rate` whatever the server does, at most `maxUsers` running
    /// at once (further iterations are dropped and counted in `iterations_dropped`).
    public init(_ name: String, rate: ArrivalRate, maxUsers: Int) {
        self.name = name; self.model = .arrivals(rate, maxUsers: max(1, maxUsers))
    }

    /// Burst: `count` users start within `window` (at once by default), each runs the script once;
    /// the run ends when all have finished or after `hold`.
    public init(_ name: String, burst count: Int, over window: Duration = .zero, hold: Duration = .seconds(30)) {
        self.name = name; self.model = .burst(Burst(count, over: window), hold: hold)
    }

    // MARK: Modifiers

    /// Declares the default (smoke) size: at most `users` users (or per-second rate, or burst size)
    /// and `duration` in total. Without it the smoke profile caps at 50 users and 20 s.
    public func smoke(users: Int? = nil, duration: Duration? = nil) -> LoadTest {
        var t = self; t.options.smokeUsers = users; t.options.smokeDuration = duration; return t
    }

    /// Applies the scale from `settings` (`LOADKIT_SCALE`, `LOADKIT_USERS_SCALE`,
    /// `LOADKIT_DURATION_SCALE`, `LOADKIT_<SUITE>_USERS`, `LOADKIT_<SUITE>_DURATION`,
    /// `LOADKIT_MAX_DURATION`) and makes `settings` the scripts' settings. `suite` defaults to the name.
    public func scaled(by settings: Settings, suite: String? = nil) throws -> LoadTest {
        let scale = try Scale(settings: settings, suite: suite ?? name)
        var t = try scaled(scale).checkedScale(settings, suite: suite ?? name).sharded(Shard(settings: settings))
        t.settings = settings
        if let cap = try settings.maxDuration() { t.options.maxDuration = min(t.options.maxDuration ?? cap, cap) }
        return t
    }

    /// What ``run(_:)`` runs: the environment (``settings``) applied where the test did not decide
    /// in code — a run never escapes the nightly job's `LOADKIT_MAX_DURATION`, `LOADKIT_SCALE` (and
    /// the other scale variables) or shard settings. Without a scale variable a test runs as
    /// written; an explicit `.scaled(…)` in code keeps its own scale.
    func applyingEnvironment() throws -> LoadTest {
        var t = self
        if let text = settings.string(SLA.environmentVariable) {
            let overrides = try SLA.parse(text)
            t.options.slaOverrides = overrides
            t.options.thresholds = SLA.applying(overrides, to: t.options.thresholds)
        }
        if !options.scaleChosen, Scale.isSet(in: settings, suite: name) {
            t = try t.scaled(try Scale(settings: settings, suite: name, defaultProfile: .full)).checkedScale(settings, suite: name)
        }
        if options.shard.count == 1 { t = t.sharded(try Shard(settings: settings)) }
        if let cap = try settings.maxDuration() { t.options.maxDuration = min(t.options.maxDuration ?? cap, cap) }
        return t
    }

    /// A scaled plan beyond ``Scale/maxUsers`` or ``Settings/maxDuration`` is an error naming
    /// the variables that made it (each factor alone may be fine; their product is not).
    private func checkedScale(_ settings: Settings, suite: String) throws -> LoadTest {
        let key = "LOADKIT_" + Scale.suiteKey(suite) + "_"
        func named(_ names: [String]) -> String {
            let set = names.flatMap { [key + $0, "LOADKIT_" + $0] }.filter { settings.string($0) != nil }
            return set.isEmpty ? "LOADKIT_SCALE" : set.joined(separator: " × ")
        }
        if plannedPeakUsers > Scale.maxUsers || peakUsers > Scale.maxUsers {
            throw ConfigError(variable: named(["SCALE", "USERS_SCALE", "USERS"]), value: "\(max(plannedPeakUsers, peakUsers)) users",
                              expected: "a scale giving at most \(Scale.maxUsers) users")
        }
        if plannedDuration > Settings.maxDuration {
            throw ConfigError(variable: named(["SCALE", "DURATION_SCALE", "DURATION"]), value: "\(Int(plannedDuration.seconds / 86_400)) days",
                              expected: "a scale giving a plan of at most 365 days")
        }
        return self
    }

    /// Keeps this machine's share of the plan: stage targets and burst sizes become the number of
    /// striped users this shard owns, rates and `maxUsers` are divided; user ids stay run-wide
    /// unique (`id` = local·count + index + 1). Also applied by ``scaled(by:suite:)`` from
    /// `LOADKIT_SHARD_INDEX` / `LOADKIT_SHARD_COUNT`. Apply once, after scaling.
    public func sharded(_ shard: Shard) -> LoadTest {
        guard shard.count > 1 else { return self }
        var t = self
        switch model {
        case .stages(let stages):
            t.model = .stages(StagePlan(stages).segments.map {
                Stage(name: $0.name, target: .absolute(shard.share(of: $0.to)), duration: .nanoseconds(Int64($0.durationNanos)))
            })
        case .arrivals(let rate, let maxUsers):
            t.model = .arrivals(rate.sharded(shard),
                                maxUsers: max(1, shard.share(of: maxUsers)))
        case .burst(let b, let hold):
            t.model = .burst(Burst(shard.share(of: b.count), over: b.window), hold: hold)
        }
        t.options.shard = shard
        t.options.environment["shard"] = "\(shard.index)/\(shard.count)"
        return t
    }

    /// Applies an explicit scale.
    public func scaled(_ scale: Scale) -> LoadTest {
        var t = self
        t.options.scaleChosen = true
        let f = scale.factors(peak: Double(peakUsers), total: plannedDuration,
                              smokeUsers: options.smokeUsers, smokeDuration: options.smokeDuration)
        switch model {
        case .stages(let stages):
            t.model = .stages(StagePlan(stages).scaled(users: f.users, duration: f.duration))
        case .arrivals(let rate, let maxUsers):
            t.model = .arrivals(rate.scaled(rate: f.users, duration: f.duration), maxUsers: scaleCount(maxUsers, f.users))
        case .burst(let b, let hold):
            t.model = .burst(Burst(scaleCount(b.count, f.users), over: scaleDuration(b.window, f.duration)),
                             hold: scaleDuration(hold, f.duration))
        }
        t.options.environment["scale"] = scale.profileName
        t.options.environment["users_factor"] = String(Fmt.upTo3(f.users))
        t.options.environment["duration_factor"] = String(Fmt.upTo3(f.duration))
        return t
    }

    /// Pauses a closed-model user after a failed iteration before it runs the script again
    /// (default: no pause, as in k6).
    public func pauseAfterError(_ d: Duration) -> LoadTest { var t = self; t.options.pauseAfterError = d; return t }
    /// Sets the graceful-stop period (stop flag → task cancellation).
    public func gracefulStop(_ d: Duration) -> LoadTest { var t = self; t.options.gracefulStop = d; return t }
    /// Caps the whole run.
    public func maxDuration(_ d: Duration) -> LoadTest { var t = self; t.options.maxDuration = d; return t }
    /// Sets the settings the scripts see.
    public func settings(_ s: Settings) -> LoadTest { var t = self; t.settings = s; return t }
    /// Stops the run early when `check` returns a reason (evaluated once a second on merged
    /// metrics); `expect()` then fails the run, naming the reason.
    public func abort(when check: @escaping @Sendable (MetricsSnapshot) -> String?) -> LoadTest {
        var t = self; t.options.abortCheck = check; return t
    }
    /// Declares the connections each user holds, for the pre-run capacity check (descriptors:
    /// 2 per connection when the fixture server runs in this process).
    public func connections(perUser: Int = 1, descriptorsEach: Int = 1, sourceAddresses: Int = 1) -> LoadTest {
        var t = self
        t.options.connectionsPerUser = perUser
        t.options.descriptorsPerConnection = descriptorsEach
        t.options.sourceAddresses = sourceAddresses
        return t
    }
    /// Declares the SLA: shown with pass/fail in the reports, and thresholds with `abortOnFail`
    /// stop the run early when breached (checked once a second). Record failures with
    /// `result.expect(sla)` on the test's task afterwards.
    public func sla(_ thresholds: [Threshold]) -> LoadTest { var t = self; t.options.thresholds = thresholds; return t }
    /// Declares the SLA with the builder (see ``sla(_:)-(_:)``).
    public func sla(@SLABuilder _ build: () -> [Threshold]) -> LoadTest { sla(build()) }
    /// Turns report files on or off, optionally into another root folder.
    public func reports(_ on: Bool, root: String? = nil) -> LoadTest {
        var t = self; t.options.writeReports = on; t.options.reportRoot = root; return t
    }
    /// Prometheus exposition options (metric prefix, buckets) for the `/metrics` endpoint.
    package func prometheus(_ options: PrometheusExposition.Options) -> LoadTest {
        var t = self; t.options.prometheus = options; return t
    }
    /// Turns the live progress line on or off (default: only on a terminal or `LOADKIT_PROGRESS=1`).
    public func progress(_ on: Bool) -> LoadTest { var t = self; t.options.progress = on; return t }
    /// Whether this run waits for other runs in the process to finish first (default: yes, unless
    /// `LOADKIT_EXCLUSIVE_RUNS=0`). Load runs sharing cores would measure each other; tiny runs
    /// that test the runner itself may overlap.
    public func exclusive(_ on: Bool) -> LoadTest { var t = self; t.options.exclusive = on; return t }

    // MARK: Plan facts

    /// Most users the plan has running at once (open model: `maxUsers`; burst: the count).
    public var peakUsers: Int {
        switch model {
        case .stages(let s): return StagePlan(s).peakUsers
        case .arrivals(let r, _): return saturatingInt(r.peakRate.rounded(.up), limit: Int(Int32.max))
        case .burst(let b, _): return b.count
        }
    }

    /// Most users (or in-flight iterations) that may exist at once.
    public var plannedPeakUsers: Int {
        switch model {
        case .stages(let s): return StagePlan(s).peakUsers
        case .arrivals(_, let maxUsers): return maxUsers
        case .burst(let b, _): return b.count
        }
    }

    /// The plan's length, without graceful stop.
    public var plannedDuration: Duration {
        switch model {
        case .stages(let s): return StagePlan(s).totalDuration
        case .arrivals(let r, _): return .nanoseconds(Int64(r.totalNanos))
        case .burst(let b, let hold): return b.window + hold
        }
    }

    /// Plan length + graceful stop, capped by `maxDuration`: the run will not last longer (plus
    /// at most a second for cancelled tasks to unwind).
    public var deadline: Duration {
        let d = plannedDuration + options.gracefulStop
        if let cap = options.maxDuration, cap < d { return cap }
        return d
    }

    // MARK: Running

    /// Runs the test: pre-run capacity check, then the users, then the result. Never outlives
    /// ``deadline`` by more than about a second; stops early on cancellation, SIGINT/SIGTERM or an
    /// abort check, with `RunResult.interruption` saying why. Writes the reports (unless turned
    /// off) before returning. Throws only when the run could not start (``CapacityError``, or an unusable
    /// `LOADKIT_START_AT`: ``ShardStart/StartError``, ``ConfigError``); waits for `LOADKIT_START_AT` first.
    ///
    /// The environment governs every run, whether or not the test called ``scaled(by:suite:)``:
    /// `LOADKIT_MAX_DURATION` caps it, the scale variables resize it unless the test chose its
    /// scale in code, and `LOADKIT_SHARD_*` give this machine its share.
    ///
    /// The script may end in any value (a one-line `{ user in try await client.get(url) }`); it is ignored.
    public func run<Ignored>(_ script: nonisolated(nonsending) @escaping @Sendable (VirtualUser) async throws -> Ignored) async throws -> RunResult {
        try settings.checkLoaded()   // a malformed .env behind `Settings.current` fails the run, loudly
        try settings.checkRunSettings()
        return try await applyingEnvironment().runAsGiven { user in _ = try await script(user) }
    }

    /// Runs the test with a script that returns nothing (see ``run(_:)-generic``): the same run,
    /// without the wrapper that drops a result — one frame less in every parked user's task and
    /// one executor check less per iteration.
    public func run(_ script: nonisolated(nonsending) @escaping @Sendable (VirtualUser) async throws -> Void) async throws -> RunResult {
        try settings.checkLoaded()
        try settings.checkRunSettings()
        return try await applyingEnvironment().runAsGiven(script)
    }

    private func runAsGiven(_ script: nonisolated(nonsending) @escaping @Sendable (VirtualUser) async throws -> Void) async throws -> RunResult {
        SignalTrap.shared.runStarting()
        defer { SignalTrap.shared.runReported() }  // after a SIGINT/SIGTERM, the process ends here
        let connections = plannedPeakUsers * options.connectionsPerUser
        var diagnosis: Diagnosis?
        if connections > 0 {
            diagnosis = try Diagnosis.preflight(CapacityPlan(
                peakConnections: connections, descriptorsPerConnection: options.descriptorsPerConnection,
                sourceAddresses: options.sourceAddresses))
            for w in diagnosis?.warnings ?? [] { writeStderr("loadkit: warning: \(w)\n") }
        } else {
            ResourceLimits.raiseOpenFileLimit()
        }
        if let warning = BuildMode.warning(plannedUsers: plannedPeakUsers) { writeStderr(warning) }
        if let cap = options.maxDuration, cap < plannedDuration + options.gracefulStop {
            // A capped plan passes or fails on what ran: say up front that it will not run whole.
            writeStderr("loadkit: \(name): capped at \(Fmt.upTo3(cap.seconds)) s (LOADKIT_MAX_DURATION or .maxDuration); "
                + "the plan lasts \(Fmt.upTo3(plannedDuration.seconds)) s, so the run stops early\n")
        }
        // From the queue for the gate to the reports, on an event loop: a run whose turn comes, or
        // one that has ended and hands the gate on, must not wait for a thread of Swift's shared
        // pool, which tests that never yield can hold for seconds (a held-out user's queued runs
        // started 25 s late). Only the return to the caller needs the caller's executor.
        let loops = options.userLoops ?? EventLoopGroup.shared
        return try await withTaskExecutorPreference(loops.loops[loops.loops.count - 1]) {
            try await takeTurnAndRun(script, diagnosis: diagnosis)
        }
    }

    private func takeTurnAndRun(_ script: nonisolated(nonsending) @escaping @Sendable (VirtualUser) async throws -> Void,
                                diagnosis: Diagnosis?) async throws -> RunResult {
        let exclusive = options.exclusive ?? (try? settings.bool("LOADKIT_EXCLUSIVE_RUNS", default: true)) ?? true
        if exclusive {
            // A test that waits its turn says so, or it looks like a slow test.
            await RunGate.shared.acquire(name) { [name] other in
                writeStderr("loadkit: \(name): waits for '\(other)' to finish (load runs in one process take turns; "
                    + "LOADKIT_EXCLUSIVE_RUNS=0 lets them overlap)\n")
            }
        }
        do {
            if let start = try ShardStart(settings: settings) { try await start.wait() }  // LOADKIT_START_AT
        } catch {
            if exclusive { await RunGate.shared.release() }
            throw error
        }
        let engine = RunEngine(test: self, script: script)
        if let cap = options.maxDuration, cap < plannedDuration + options.gracefulStop {
            engine.note(["max_duration": "\(Fmt.upTo3(cap.seconds)) s of a \(Fmt.upTo3(plannedDuration.seconds)) s plan"])
        }
        if let d = diagnosis { engine.note(d.facts) }
        var result = await engine.run()
        if exclusive { await RunGate.shared.release() }
        if !options.thresholds.isEmpty { result.sla = options.thresholds }
        if !options.slaOverrides.isEmpty { result.slaOverrides = options.slaOverrides }
        if options.shard.count > 1 {
            result = ShardOutput.annotate(result, shard: options.shard, runID: settings.runID)
            if settings.string("LOADKIT_SHARD_JUDGE") == "local" { result.environment["shard_judge"] = "local" }
        }
        if options.writeReports {
            // Encoding and writing the reports is seconds of CPU and file I/O for a long run: done
            // on a thread of its own, not on Swift's shared pool that the caller's tests need.
            let test = self
            let written = result
            result.reportRoot = (try? await offThePool { test.writeReports(written) }) ?? nil
        }
        await PrometheusPush.pushIfConfigured(result, options: options.prometheus,
                                              base: settings.string(PrometheusPush.variable))   // LOADKIT_PUSH_URL, as checked at the start
        return result
    }
}
