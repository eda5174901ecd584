#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Synchronization

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
        runs.forEach { $0.interrupt(name) }
        // Runs stop within their grace (≤ 1 s after a signal) plus a second; if reports hang,
        // do not keep the process alive.
        queue.asyncAfter(deadline: .now() + Self.exitDeadline.seconds) { Self.endProcess(sig) }
    }

    /// For tests: behave as if `name` had arrived, for the live runs called `runName` only (other
    /// tests' runs in the same process must not be stopped).
    func simulate(_ name: String, runName: String) {
        state.withLock { Array($0.runs.values) }.filter { $0.name == runName }.forEach { $0.interrupt(name) }
    }
}

/// Samples the generator's own CPU (getrusage), RSS (/proc/self/statm) and open descriptors.
struct GeneratorSampler {
    private var lastCPU: Double
    private var lastWall: UInt64

    init() { lastCPU = Self.cpuSeconds(); lastWall = monotonicNanos() }

    mutating func sample(second: Double) -> GeneratorSample {
        let cpu = Self.cpuSeconds(), wall = monotonicNanos()
        let dt = Double(wall &- lastWall) / 1e9
        let pct = dt > 0 ? (cpu - lastCPU) / dt * 100 : 0
        lastCPU = cpu; lastWall = wall
        return GeneratorSample(second: (second * 1000).rounded() / 1000, cpuPercent: (pct * 10).rounded() / 10,
                               rssBytes: Self.rssBytes(), openDescriptors: ResourceLimits.openDescriptorCount())
    }

    static func cpuSeconds() -> Double {
        let u = selfUsage()
        func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return s(u.ru_utime) + s(u.ru_stime)
    }

    static func rssBytes() -> Int64 {
        #if os(Linux)
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 128)
        let n = read(fd, &buf, buf.count)
        guard n > 0 else { return 0 }
        let fields = buf[0..<n].split(separator: UInt8(ascii: " "))
        guard fields.count > 1, let pages = Int64(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
        return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
        #else
        var u = rusage()
        getrusage(RUSAGE_SELF, &u)
        return Int64(u.ru_maxrss)
        #endif
    }
}

/// This process's `getrusage(RUSAGE_SELF)` (CPU times, context switches), for the generator's
/// samples and `loadkit bench`.
package func selfUsage() -> rusage {
    var u = rusage()
    #if canImport(Glibc)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
    #else
    getrusage(RUSAGE_SELF, &u)
    #endif
    return u
}
