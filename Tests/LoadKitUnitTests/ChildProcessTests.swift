import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Behaviour that only a whole test process shows, proven by running this test bundle again as a
/// child with one selected test: Ctrl-C ends the process after the live run's reports (later load
/// tests do not start), and an SLA breach in an XCTest test fails it at the caller's line.
@Suite(.serialized) struct ChildProcessTests {
    /// This test bundle's executable (Linux: `/proc/self/exe`).
    static var selfExecutable: String? {
        #if os(Linux)
        return try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        #else
        return nil
        #endif
    }

    @Test(.enabled(if: selfExecutable != nil))
    func anXCTestBreachFailsThatTestAtTheCallersLine() async throws {
        let bin = try #require(Self.selfExecutable)
        let o = try await ShardProcessTests.run(bin, ["LoadKitUnitTests.XCTestBreachDemo/testBreachFailsAtTheCallersLine"],
                                                environment: [XCTestBreachDemo.variable: "xctest-breach"], timeout: .seconds(60))
        let output = o.stdout + o.stderr
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("XCTestPathTests.swift").path
        let lines = try String(contentsOfFile: source, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        let line = try #require(lines.firstIndex { $0.contains("// BREACH-LINE") }) + 1
        #expect(o.status != 0, "the breach must fail the XCTest run: \(output)")
        #expect(output.contains("XCTestPathTests.swift:\(line): error"), "failure at the caller's line \(line): \(output)")
        #expect(output.contains("SLA breached in 'xctest-breach': step p(95) ="), "\(output)")
        #expect(output.contains("limit < 0.001 ms"), "actual vs limit: \(output)")
        #expect(output.contains("Executed 1 test, with 1 failure"), "\(output)")
    }

    /// Load runs take turns; the next one's turn must not wait for Swift's shared pool, which
    /// tests that never yield can hold for seconds (a held-out user's queued runs started 25 s
    /// late): with every pool thread spinning, the second run starts when the first ends.
    @Test(.enabled(if: selfExecutable != nil))
    func theNextQueuedRunStartsWhileThePoolIsBusy() async throws {
        let bin = try #require(Self.selfExecutable)
        let o = try await ShardProcessTests.run(bin, ["LoadKitUnitTests.QueuedRunDemo/testTheNextRunStartsWhenThePoolIsBusy"],
                                                environment: [XCTestBreachDemo.variable: QueuedRunDemo.value], timeout: .seconds(60))
        let output = o.stdout + o.stderr
        let line = try #require(output.split(separator: "\n").first { $0.hasPrefix("QUEUED-GAP-MS ") }, "\(output)")
        let gap = try #require(Int(line.dropFirst("QUEUED-GAP-MS ".count)))
        let held = try #require(output.split(separator: "\n").first { $0.hasPrefix("POOL-HELD-MS ") }
            .flatMap { Int($0.dropFirst("POOL-HELD-MS ".count)) }, "\(output)")
        // The pool spins for 2 s from 0.5 s (else this test proves nothing); the first run ends near 0.9 s.
        #expect(held >= 1_000, "the pool was not held: a task on it started after \(held) ms")
        #expect(gap < 500, "the second run started \(gap) ms after the first ended: \(output)")
        #expect(o.status == 0, "\(output)")
    }

    @Test(.enabled(if: selfExecutable != nil))
    func ctrlCEndsTheTestProcessAfterTheLiveRunsReports() async throws {
        let bin = try #require(Self.selfExecutable)
        let dir = NSTemporaryDirectory() + "loadkit-sigint-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Interrupt the child once its first load test has run for a moment.
        let interrupter = Task {
            let deadline = monotonicNanos() + 60_000_000_000
            while !FileManager.default.fileExists(atPath: dir + "/first.started"), monotonicNanos() < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            try await Task.sleep(for: .milliseconds(1200))
            let pid = try String(contentsOfFile: dir + "/pid", encoding: .utf8)
            let sentAt = monotonicNanos()
            kill(pid_t(pid)!, SIGINT)
            return sentAt
        }
        let o = try await ShardProcessTests.run(bin, ["--testing-library", "swift-testing", "--filter", "SignalChildDemo"],
                                                environment: [XCTestBreachDemo.variable: dir], timeout: .seconds(90))
        let exitedAt = monotonicNanos()
        let sentAt = try await interrupter.value
        let fm = FileManager.default
        #expect(o.status == 128 + SIGINT, "exit status \(o.status): \(o.stderr)")
        #expect(Double(exitedAt - sentAt) / 1e9 < 8, "the process ended promptly after Ctrl-C")
        let reports = ReportWriter(root: dir + "/reports").directory(for: "first")   // the run's folder (`latest`)
        #expect(fm.fileExists(atPath: reports + "/summary.txt"), "the live run's reports were written")
        #expect(!fm.fileExists(atPath: dir + "/second.started"), "the next load test did not start")
        #expect(o.stderr.contains("ending the test process after SIGINT"), "\(o.stderr)")
    }
}

private var signalDemoFolder: String? {
    ProcessInfo.processInfo.environment[XCTestBreachDemo.variable].flatMap { $0.hasPrefix("/") ? $0 : nil }
}

/// Run only as a child process by `ChildProcessTests` (`LOADKIT_CHILD_DEMO` names a folder): three
/// 20-second load tests in a row; the parent interrupts the first.
@Suite(.serialized, .enabled(if: signalDemoFolder != nil)) struct SignalChildDemo {
    func run(_ name: String) async throws {
        let dir = try #require(signalDemoFolder)
        FileManager.default.createFile(atPath: dir + "/pid", contents: Data(String(getpid()).utf8))
        let result = try await LoadTest(name) { Stage("all", to: 2, over: .zero); Hold(.seconds(20)) }
            .progress(false).reports(true, root: dir + "/reports").settings(Settings([:]))
            .run { user in
                if user.iteration == 0 && user.index == 0 {
                    FileManager.default.createFile(atPath: dir + "/\(name).started", contents: nil)
                }
                _ = await user.sleep(for: .milliseconds(50))
            }
        #expect(result.interruption == nil)
    }

    @Test func first() async throws { try await run("first") }
    @Test func second() async throws { try await run("second") }
    @Test func third() async throws { try await run("third") }
}
