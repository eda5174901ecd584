import LoadKitTransport
import LoadKitProtocols

/// Load runs in one process take turns. Swift Testing runs suites in parallel, and two load tests
/// sharing two cores would each measure the other's load instead of the server; a queue of runs
/// keeps every result honest. Set `LOADKIT_EXCLUSIVE_RUNS=0` to let runs overlap.
actor RunGate {
    /// The process-wide gate.
    static let shared = RunGate()

    /// The run holding the gate, nil when free.
    private var holder: String?
    private var waiters: [(name: String, resume: CheckedContinuation<Void, Never>)] = []

    /// Waits until no other run is in progress, then holds the gate (FIFO). When it must wait,
    /// `waiting` is called first with the name of the run holding the gate.
    func acquire(_ name: String, waiting: @Sendable (String) -> Void = { _ in }) async {
        guard let current = holder else {
            holder = name
            return
        }
        waiting(current)
        await withCheckedContinuation { waiters.append((name, $0)) }
    }

    /// Hands the gate to the next waiting run, or frees it.
    func release() {
        if waiters.isEmpty {
            holder = nil
        } else {
            let next = waiters.removeFirst()
            holder = next.name
            next.resume.resume()
        }
    }
}
