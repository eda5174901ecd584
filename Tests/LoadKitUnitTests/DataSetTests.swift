import Foundation
import Synchronization
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

@Suite struct DataSetTests {
    @Test func parsesHeaderRowsAndRecyclesAtEndOfFile() throws {
        let d = try DataSet(text: "memberId,challengeId\r\n1,100\n2,100\n\n3,101\n")
        #expect(d.columns == ["memberId", "challengeId"])
        #expect(d.count == 3)
        #expect(try d.row(forUser: 0).int("memberId") == 1)
        #expect(try d.row(forUser: 2)["challengeId"] == "101")
        #expect(try d.row(forUser: 3).int("memberId") == 1, "recycled at end of file")
        #expect(try d.row(forUser: 7).int("memberId") == 2)
        #expect(try (0..<7).map { _ in try d.next().int("memberId") } == [1, 2, 3, 1, 2, 3, 1])
        #expect(try d.column("challengeId") == ["100", "100", "101"])
    }

    @Test func quotedFieldsAndExplicitColumns() throws {
        let d = try DataSet(text: "\"a, b\",\"say \"\"hi\"\"\"\n x , y \n", columns: ["one", "two"])
        #expect(d.rows == [["a, b", "say \"hi\""], ["x", "y"]])
        #expect(try d.row(at: 1)["two"] == "y")
        #expect(try d.row(at: 0)["three"] == nil)
    }

    @Test func noRecycleStopsAtEndOfFile() throws {
        let d = try DataSet(text: "id\n1\n2", recycle: false)
        #expect(try d.row(at: 1).int("id") == 2)
        let e = try #require(throws: DataSetError.self) { try d.row(at: 2) }
        #expect(e.kind == "dataset_exhausted")
        #expect(e.source == .script, "the test's own data: the script's side")
    }

    /// A credential column's value read as a number by mistake is not quoted in the error (it
    /// reached every report of a held-out user's run); another column's value is.
    @Test func aCredentialColumnsValueIsNeverQuoted() throws {
        let d = try DataSet(text: "user,password,age\nalice,pw-nvb8tgbcqq,old\n", source: "accounts.csv")
        let e = try #require(throws: DataSetError.self) { try d.row(at: 0).int("password") }
        #expect(!e.description.contains("pw-nvb8tgbcqq") && e.description.contains("not shown"), "\(e)")
        let age = try #require(throws: DataSetError.self) { try d.row(at: 0).int("age") }
        #expect(age.description.contains("'old'"), "\(age)")
    }

    @Test func badInputIsAClassifiedErrorNamingTheFile() throws {
        let ragged = try #require(throws: DataSetError.self) { try DataSet(text: "a,b\n1,2\n3\n", source: "m.csv") }
        #expect(ragged.kind == "dataset_invalid")
        #expect(ragged.message.contains("m.csv") && ragged.message.contains("row 2"))
        #expect(throws: DataSetError.self) { try DataSet(text: "") }
        #expect(throws: DataSetError.self) { try DataSet(text: "a,b\n") }
        #expect(throws: DataSetError.self) { try DataSet(text: "a\n\"open\n") }
        let missing = try #require(throws: DataSetError.self) { try DataSet(contentsOf: "/nonexistent/x.csv") }
        #expect(missing.kind == "dataset_unreadable")
        let row = try DataSet(text: "id\nabc").row(at: 0)
        #expect(throws: DataSetError.self) { try row.int("id") }
    }

    @Test func readsAFile() throws {
        let path = NSTemporaryDirectory() + "loadkit-dataset-\(UInt32.random(in: 0...UInt32.max)).csv"
        try "memberId,challengeId\n5,7\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let d = try DataSet(contentsOf: path)
        #expect(try d.row(forUser: 10).int("challengeId") == 7)
        #expect(d.source == path)
    }
}

private struct Refused: ClassifiedError {
    var kind: String { "refused" }
    var source: FailureSource { .server }
    var description: String { "connection refused" }
}

@Suite struct DataSetSetupPhaseTests {
    @Test func boundsConcurrencyRunsEveryItemAndReportsProgress() async throws {
        let inFlight = Atomic<Int>(0), peak = Atomic<Int>(0)
        let seen = Mutex<Set<Int>>([])
        let lines = Mutex<[SetupPhase.Progress]>([])
        let phase = SetupPhase("join", concurrency: 4, progressInterval: .milliseconds(20)) { p in lines.withLock { $0.append(p) } }
        let report = await phase.run(Array(1...40)) { item in
            let now = inFlight.add(1, ordering: .relaxed).newValue
            _ = peak.max(now, ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(5))
            seen.withLock { _ = $0.insert(item) }
            inFlight.subtract(1, ordering: .relaxed)
        }
        #expect(report.succeeded == 40 && report.failed == 0 && report.skipped == 0)
        #expect(seen.withLock { $0 } == Set(1...40))
        #expect(peak.load(ordering: .relaxed) <= 4)
        #expect(peak.load(ordering: .relaxed) >= 2, "items run concurrently")
        let last = try #require(lines.withLock { $0.last })
        #expect(last.done == 40 && last.total == 40)
        #expect(last.line.hasPrefix("setup 'join': 40/40 (100 %), 0 failed"))
        #expect(lines.withLock { $0.count } >= 2, "periodic progress plus the final line")
        try report.requireSuccess()
    }

    @Test func failuresAreClassifiedAndStopTheRestAfterTheLimit() async throws {
        let report = await SetupPhase("login", concurrency: 1, maxFailures: 3, onProgress: nil).run(Array(0..<10)) { i in
            if i >= 2 { throw Refused() }
        }
        #expect(report.succeeded == 2 && report.failed == 3 && report.skipped == 5)
        #expect(report.errors["refused"]?.count == 3)
        #expect(report.errors["refused"]?.source == .server)
        let e = try #require(throws: SetupError.self) { try report.requireSuccess() }
        #expect(e.kind == "setup_failed")
        #expect(e.source == .server)
        #expect(e.description == "set-up phase 'login' succeeded for 2 of 10 items (5 skipped); failures: refused ×3; e.g. connection refused")
        try report.requireSuccess(atLeast: 0.2)
    }

    @Test func emptyInputIsASuccess() async throws {
        let r = await SetupPhase("none", onProgress: nil).run([Int]()) { _ in }
        #expect(r.total == 0 && r.succeeded == 0)
        try r.requireSuccess()
    }
}
