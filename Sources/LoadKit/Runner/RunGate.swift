/// Load runs in one process take turns. Swift Testing runs suites in parallel, and two load tests
/// sharing two cores would each measure the other's load instead of the server; a queue of runs
/// keeps every result honest. Set `LOADKIT_EXCLUSIVE_RUNS=0` to let runs overlap.
actor RunGate {
    /// The process-wide gate.
    static let shared = RunGate()

    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Waits until no other run is in progress, then holds the gate (FIFO).
    func acquire() async {
        if !busy {
            busy = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    /// Hands the gate to the next waiting run, or frees it.
    func release() {
        if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }
}
