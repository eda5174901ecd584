#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Synchronization
import LoadKitTransport
import LoadKitProtocols

/// SIGINT/SIGTERM while runs are live: every live run stops (users get their stop flag and grace,
/// reports are still written) with `interruption` = `SIGINT`/`SIGTERM`, and then the whole test
/// process ends (exit status 128 + signal), so the later tests of a suite do not start — Ctrl-C
/// means "stop", not "skip to the next load test". With no run live the signal keeps its default
/// meaning (the process ends at once).
final class SignalTrap: Sendable {
    static let shared = SignalTrap()
    private struct State {
        var runs: [ObjectIdentifier: RunEngine] = [:]
        var sources: [any DispatchSourceSignal] = []
        /// Runs between their start and their reports being written.
        var reporting = 0
        /// The signal that asked the process to end once the live runs wrote their reports.
        var exitSignal: Int32?
    }
    /// How long the live runs get to stop and write their reports before the process ends anyway.
    static let exitDeadline: Duration = .seconds(15)
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "loadkit.signals")

    func register(_ engine: RunEngine) {
        state.withLock { s in
            s.runs[ObjectIdentifier(engine)] = engine
            if s.sources.isEmpty {
                for (sig, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
                    signal(sig, SIG_IGN) // let the dispatch source see it instead of the default action
                    let src = DispatchSource.makeSignalSource(signal: sig, queue: queue)
                    src.setEventHandler { [self] in self.deliver(sig, name) }
                    src.resume()
                    s.sources.append(src)
                }
            }
        }
    }

    func unregister(_ engine: RunEngine) {
        state.withLock { s in _ = s.runs.removeValue(forKey: ObjectIdentifier(engine)) }
    }

    /// A run starts (before its engine): the process will not end on a signal before its reports.
    func runStarting() { state.withLock { $0.reporting += 1 } }

    /// A run has written its reports. After a signal, the last one to finish ends the process.
    func runReported() {
        let exit: Int32? = state.withLock { s in
            s.reporting -= 1
            return s.reporting <= 0 ? s.exitSignal : nil
        }
        if let sig = exit { Self.endProcess(sig) }
    }

    private static func endProcess(_ sig: Int32) {
        writeStderr("loadkit: ending the test process after \(sig == SIGINT ? "SIGINT" : "SIGTERM") (reports written; later tests do not start)\n")
        fflush(nil)
        exit(128 + sig)
    }

    private func deliver(_ sig: Int32, _ name: String) {
        let runs = state.withLock { Array($0.runs.values) }
        if runs.isEmpty {
            // Nobody to stop gracefully: behave as if we had never trapped the signal.
            signal(sig, SIG_DFL)
            raise(sig)
            return
        }
        writeStderr("\nloadkit: \(name) received — stopping the run(s) and writing reports…\n")
        state.withLock { $0.exitSignal = sig }
        runs.forEach { $0.interrupt(.signal(name: name)) }
        // Runs stop within their grace (≤ 1 s after a signal) plus a second; if reports hang,
        // do not keep the process alive.
        queue.asyncAfter(deadline: .now() + Self.exitDeadline.seconds) { Self.endProcess(sig) }
    }

    /// For tests: behave as if `name` had arrived, for the live runs called `runName` only (other
    /// tests' runs in the same process must not be stopped).
    func simulate(_ name: String, runName: String) {
        state.withLock { Array($0.runs.values) }.filter { $0.name == runName }.forEach { $0.interrupt(.signal(name: name)) }
    }
}
