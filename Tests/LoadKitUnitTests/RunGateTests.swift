import Testing
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Load runs in one process take turns; one that has to wait names the run it waits for (a
/// held-out user saw a 5 s test take 15 s with no word why).
@Suite struct RunGateTests {
    @Test func aWaitingRunNamesTheRunItWaitsForAndGetsTheGateNext() async {
        let gate = RunGate()
        let told = Mutex<[String]>([])
        await gate.acquire("first") { other in told.withLock { $0.append("first waits for \(other)") } }
        let second = Task {
            await gate.acquire("second") { other in told.withLock { $0.append("second waits for \(other)") } }
            told.withLock { $0.append("second runs") }
            await gate.release()
        }
        // The second run is queued (it said so) and does not run while the first holds the gate.
        for _ in 0..<500 where told.withLock({ $0.isEmpty }) { try? await Task.sleep(for: .milliseconds(2)) }
        #expect(told.withLock { $0 } == ["second waits for first"])
        await gate.release()
        await second.value
        #expect(told.withLock { $0 } == ["second waits for first", "second runs"])
        // Free again: the next run does not wait.
        await gate.acquire("third") { other in told.withLock { $0.append("third waits for \(other)") } }
        #expect(told.withLock { $0 }.count == 2)
        await gate.release()
    }
}
