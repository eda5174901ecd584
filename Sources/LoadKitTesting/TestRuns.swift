import Foundation
import LoadKit
import LoadKitFixtures

/// Helpers a load-test target needs besides the scenario: short shaped runs for failure tests, a
/// temporary report folder, and the choice between an embedded fixture in this process or in a
/// child process. Shared by this repository's three suites; usable from a user's own test target.
public enum TestRuns {
    /// A small plan for tests that inject a failure: `users` ramped in 0.5 s, held `hold`, reports
    /// (and only reports) under `reports`, no progress line, a 3 s graceful stop.
    public static func shortRun(_ name: String, users: Int, hold: Duration, reports: String) -> LoadTest {
        LoadTest(name) {
            Stage("ramp", to: users, over: .milliseconds(500))
            Hold(hold)
        }
        .gracefulStop(.seconds(3))
        .reports(true, root: reports)
        .progress(false)
    }

    /// A fresh folder path under the temporary directory (not created): `loadkit-<label>-<random>`.
    public static func temporaryReportRoot(_ label: String) -> String {
        NSTemporaryDirectory() + "loadkit-\(label)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Whether an embedded fixture for `connections` client connections should run as a child
    /// process: `variable` (`auto`, `inprocess` or `process`, default `auto`) decides, and `auto`
    /// picks a child process when client and server ends together (two descriptors a connection,
    /// plus `extraDescriptors`) would take more than 80 % of this process's open-file limit.
    public static func fixtureInChildProcess(_ settings: Settings, variable: String, connections: Int,
                                             extraDescriptors: Int = 256) throws -> Bool {
        let mode = settings.string(variable)?.lowercased() ?? "auto"
        guard ["auto", "inprocess", "process"].contains(mode) else {
            throw ConfigError(variable: variable, value: mode, expected: "auto, inprocess or process")
        }
        let limit = ResourceLimits.raiseOpenFileLimit()
        let need = connections * 2 + extraDescriptors
        return mode == "process" || (mode == "auto" && Double(need) > Double(limit) * 0.8)
    }
}
