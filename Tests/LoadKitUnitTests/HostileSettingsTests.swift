import Synchronization
import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Issue 13: every numeric and duration setting, given a hostile value (non-finite, 1e30,
/// negative, overflowing), fails with a ``ConfigError`` naming the variable and the accepted
/// forms — never a trap (`MESSAGE_INTERVAL_MS=inf`, `LOADKIT_SCALE=1e300` used to kill the process).
@Suite struct HostileSettingsTests {
    static let hostile = ["inf", "-inf", "nan", "1e30", "1e300", "-1", "99999999999999999999", "-99999999999999999999"]

    /// Settings each key needs to be read at all.
    static let context: [String: [String: String]] = [
        "MAX_RECONNECT_ATTEMPTS": ["ENABLE_RECONNECT": "true"], "INITIAL_BACKOFF_MS": ["ENABLE_RECONNECT": "true"],
        "MAX_BACKOFF_MS": ["ENABLE_RECONNECT": "true"], "RECONNECT_JITTER": ["ENABLE_RECONNECT": "true"],
        "LOADKIT_SHARD_INDEX": ["LOADKIT_SHARD_COUNT": "2"], "JOB_COMPLETION_INDEX": ["LOADKIT_SHARD_COUNT": "2"],
        "CI_NODE_INDEX": ["CI_NODE_TOTAL": "2"], "CI_NODE_TOTAL": ["CI_NODE_INDEX": "1"],
        "LOADKIT_START_TOLERANCE": ["LOADKIT_START_AT": "\(wallClockMillis())"],
        "LOADKIT_START_MAX_WAIT": ["LOADKIT_START_AT": "\(wallClockMillis())"],
    ]

    static let keys = [
        // durations
        "MESSAGE_INTERVAL_MS", "MESSAGE_TIMEOUT_MS", "CONNECT_TIMEOUT_MS", "STOMP_DRAIN_MS", "INITIAL_BACKOFF_MS",
        "MAX_BACKOFF_MS", "LOADKIT_MAX_DURATION", "LOADKIT_STOMP_DURATION", "LOADKIT_START_TOLERANCE", "LOADKIT_START_MAX_WAIT",
        // integers
        "STOMP_ROOMS", "MAX_RECONNECT_ATTEMPTS", "LOADKIT_STOMP_USERS", "LOADKIT_SHARD_COUNT", "LOADKIT_SHARD_INDEX",
        "JOB_COMPLETION_INDEX", "CI_NODE_INDEX", "CI_NODE_TOTAL", "LOADKIT_PROMETHEUS_PORT",
        // numbers
        "RECONNECT_JITTER", "LOADKIT_SCALE", "LOADKIT_STOMP_SCALE", "LOADKIT_USERS_SCALE", "LOADKIT_DURATION_SCALE",
    ]

    /// Reads `s` the way a suite does: the chat configuration, the three load models scaled and
    /// sharded, the start time, the caps; and touches every derived figure of the plans.
    static func readAll(_ s: Settings) throws {
        _ = try StompChatConfiguration(settings: s)
        let plans = [
            try LoadTest("hostile") { Stage("ramp", to: 900, over: .seconds(10)); Hold(.seconds(10)) }.scaled(by: s, suite: "STOMP"),
            try LoadTest("hostile", rate: .ramping(from: 1, .to(200, over: .seconds(10))), maxUsers: 100).scaled(by: s, suite: "STOMP"),
            try LoadTest("hostile", burst: 100, over: .seconds(1)).scaled(by: s, suite: "STOMP"),
        ]
        for p in plans { _ = (p.deadline, p.peakUsers, p.plannedPeakUsers, p.plannedDuration) }
        _ = try ShardStart(settings: s)
        _ = try s.prometheusPort()
        _ = try s.maxDuration()
    }

    @Test(arguments: keys)
    func hostileValuesAreConfigErrorsNamingTheVariable(key: String) {
        for value in Self.hostile {
            let s = Settings(["SERVER_URL": "127.0.0.1:1", key: value].merging(Self.context[key] ?? [:]) { a, _ in a })
            do {
                try Self.readAll(s)
                Issue.record("\(key)=\(value) was accepted")
            } catch let e as ConfigError {
                #expect(e.variable == key, "\(key)=\(value): \(e)")
                #expect(e.description.contains("expected"), "\(e)")
            } catch {
                Issue.record("\(key)=\(value): not a ConfigError: \(error)")
            }
        }
    }

    /// Settings read during or after a run fail it before it starts: a held-out user's
    /// `LOADKIT_KEEP_RUNS=many` printed a line after the run and the test passed; a bad
    /// `LOADKIT_PROGRESS`, `LOADKIT_SUMMARY`, `LOADKIT_EXCLUSIVE_RUNS` or `LOADKIT_PROMETHEUS_PORT`
    /// fell back to a default in silence.
    @Test(arguments: [("LOADKIT_KEEP_RUNS", "many", "expected a whole number of runs"),
                      ("LOADKIT_SUMMARY", "fulll", "expected full or short"),
                      ("LOADKIT_PROGRESS", "maybe", "expected true or false"),
                      ("LOADKIT_EXCLUSIVE_RUNS", "sometimes", "expected true or false"),
                      ("LOADKIT_PROMETHEUS_PORT", "ninety", "expected an integer"),
                      ("LOADKIT_PUSH_URL", "htp://gateway:9091", "expected a Pushgateway address"),
                      // What the push itself refuses: no scheme, a path (a review found both passed).
                      ("LOADKIT_PUSH_URL", "gateway:9091", "expected a Pushgateway address"),
                      ("LOADKIT_PUSH_URL", "http://gateway:9091/metrics", "expected a Pushgateway address")])
    func aBadRunSettingFailsTheRunBeforeItStarts(_ key: String, _ value: String, _ expected: String) async {
        let started = Atomic<Int>(0)
        do {
            _ = try await LoadTest("bad-setting", burst: 1).progress(false).reports(false)
                .settings(Settings([key: value])).run { _ in started.add(1, ordering: .relaxed) }
            Issue.record("\(key)=\(value) was accepted")
        } catch {
            #expect("\(error)".hasPrefix("\(key)=\"\(value)\" is not valid: \(expected)"), "\(error)")
        }
        #expect(started.load(ordering: .relaxed) == 0, "no user ran")
        // Good values still run.
        let good = try? await LoadTest("good-setting", burst: 1).progress(false).reports(false)
            .settings(Settings(["LOADKIT_KEEP_RUNS": "all", "LOADKIT_SUMMARY": "Full", "LOADKIT_PROGRESS": "0"])).run { _ in }
        #expect(good?.metrics.counters["iterations"] == 1)
    }

    /// A gateway URL with a password in it: the error names the variable, never the password.
    @Test func aBadPushURLNeverPrintsItsPassword() async {
        // A password with `/` and `#` in it (the user-info cannot be bounded by the authority).
        for url in ["http://admin:hunter2pw@gateway:9091/metrics", "http://admin:hu/nt#er2pw@gateway:9091"] {
            do {
                _ = try await LoadTest("bad-push", burst: 1).progress(false).reports(false)
                    .settings(Settings(["LOADKIT_PUSH_URL": url])).run { _ in }
                Issue.record("accepted \(url)")
            } catch {
                #expect("\(error)".hasPrefix("LOADKIT_PUSH_URL=\"http://…@gateway:9091"), "\(error)")
                #expect(!"\(error)".contains("hunter2pw") && !"\(error)".contains("er2pw") && !"\(error)".contains("hu/nt"), "\(error)")
            }
        }
        // What is wrong is said: credentials are not supported; a path is LoadKit's to add.
        for (url, why) in [("http://admin:pw12345@gateway:9091", "credentials in the URL are not supported"),
                           ("http://gateway:9091/metrics", "name the Pushgateway only")] {
            do {
                _ = try await LoadTest("bad-push", burst: 1).progress(false).reports(false)
                    .settings(Settings(["LOADKIT_PUSH_URL": url])).run { _ in }
                Issue.record("\(url) was accepted")
            } catch {
                #expect("\(error)".contains(why), "\(error)")
            }
        }
    }

    /// A gateway whose host name begins with "metrics" is a gateway, not a path (a review found
    /// the check refusing it — and with it every run).
    @Test func aPushGatewayNamedMetricsIsAccepted() throws {
        // The check a run makes before it starts (a run would push to it afterwards).
        try Settings(["LOADKIT_PUSH_URL": "http://metrics-pushgateway.monitoring:9091"]).checkRunSettings()
        #expect(try PrometheusPush.url(base: "http://metrics.example.com:9091", test: "t", runID: "r")
                == "http://metrics.example.com:9091/metrics/job/loadkit/test/t/run_id/r")
    }

    @Test func heartBeatPairsOutOfRange() {
        for value in ["inf,0", "1e30,0", "-1,0", "0,99999999999999999999", "0,86400001"] {
            let e = #expect(throws: ConfigError.self) { try StompChatConfiguration(settings: Settings(["SERVER_URL": "a:1", "STOMP_HEARTBEAT_MS": value])) }
            #expect(e?.variable == "STOMP_HEARTBEAT_MS")
        }
    }

    /// Factors each within range whose product makes an absurd plan: the error names them.
    @Test func scaleProductsBeyondThePlanLimitsNameTheirVariables() {
        let users = #expect(throws: ConfigError.self) {
            try LoadTest("x") { Stage("s", to: 900, over: .seconds(10)) }
                .scaled(by: Settings(["LOADKIT_SCALE": "10000", "LOADKIT_USERS_SCALE": "10000"]), suite: "STOMP")
        }
        #expect(users?.variable == "LOADKIT_SCALE × LOADKIT_USERS_SCALE", "\(String(describing: users))")
        let days = #expect(throws: ConfigError.self) {
            try LoadTest("x") { Stage("s", to: 9, over: .seconds(600)) }
                .scaled(by: Settings(["LOADKIT_STOMP_SCALE": "10000", "LOADKIT_DURATION_SCALE": "10000"]), suite: "STOMP")
        }
        #expect(days?.variable == "LOADKIT_STOMP_SCALE × LOADKIT_DURATION_SCALE", "\(String(describing: days))")
        #expect(days?.description.contains("365 days") == true)
        // An explicit Scale (no settings to blame) saturates instead of trapping.
        let t = LoadTest("x") { Stage("s", to: 900, over: .seconds(10)) }.scaled(Scale(profile: .factor(1e300)))
        #expect(t.peakUsers == Scale.maxUsers * 10)
    }

    @Test func durationLimits() {
        #expect(Settings.parseDuration("365d") == nil)
        #expect(Settings.parseDuration("8760h") == .seconds(365 * 86_400))
        #expect(Settings.parseDuration("8761h") == nil)
        #expect(Settings.parseDuration("1e30") == nil && Settings.parseDuration("inf") == nil && Settings.parseDuration("nan") == nil)
        #expect(Settings.parseDuration("-5s") == nil && Settings.parseDuration("-1") == nil)
        #expect(Settings.parseDuration("1e3") == .seconds(1))
    }
}
