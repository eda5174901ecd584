#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Synchronization
import LoadKitTransport
import LoadKitProtocols

/// Samples the generator's own CPU (getrusage), RSS (/proc/self/statm) and open descriptors, and
/// how busy its busiest event loop was.
struct GeneratorSampler {
    /// The generator's counters at one instant.
    struct Reading: Sendable {
        let cpu: Double, wall: UInt64, rss: Int64, descriptors: Int
        /// Each of the run's loops' idle nanoseconds (``EventLoop/idleNanos(at:)``) at `wall`.
        let loopsIdle: [UInt64]
        static func now(_ loops: [EventLoop]) -> Reading {
            // The loops' idle time right at `wall` (a wait that ends later is counted to `wall`).
            let wall = monotonicNanos()
            let idle = loops.map { $0.idleNanos(at: wall) }
            return Reading(cpu: cpuSeconds(), wall: wall, rss: rssBytes(), descriptors: ResourceLimits.openDescriptorCount(),
                           loopsIdle: idle)
        }
    }

    /// The loops the run's users are on.
    let loops: [EventLoop]
    private var lastCPU: Double
    private var lastLoopsIdle: [UInt64]
    /// When the previous sample was taken (or the sampler made).
    private(set) var lastWall: UInt64
    /// Samples taken so far.
    private(set) var count = 0

    init(loops: [EventLoop]) {
        self.loops = loops
        let r = Reading.now(loops)
        lastCPU = r.cpu; lastWall = r.wall; lastLoopsIdle = r.loopsIdle
    }

    /// The sample for `reading` (default: now): CPU % and the busiest loop's % since the
    /// previous sample.
    mutating func sample(second: Double, at reading: Reading? = nil) -> GeneratorSample {
        let reading = reading ?? .now(loops)
        let wall = reading.wall &- lastWall
        let dt = Double(wall) / 1e9
        let pct = dt > 0 ? (reading.cpu - lastCPU) / dt * 100 : 0
        let busiest = Self.busiestPercent(idle: reading.loopsIdle, previous: lastLoopsIdle, wall: wall)
        lastCPU = reading.cpu; lastWall = reading.wall; lastLoopsIdle = reading.loopsIdle; count += 1
        return GeneratorSample(second: (second * 1000).rounded() / 1000, cpuPercent: (pct * 10).rounded() / 10,
                               rssBytes: reading.rss, openDescriptors: reading.descriptors,
                               busiestLoopPercent: busiest.map { ($0 * 10).rounded() / 10 })
    }

    /// The highest share of `wall` nanoseconds that a loop was not idle (0–100), from each loop's
    /// idle time now and at the previous sample; nil without loops or time.
    static func busiestPercent(idle: [UInt64], previous: [UInt64], wall: UInt64) -> Double? {
        guard wall > 0, !idle.isEmpty, idle.count == previous.count else { return nil }
        let leastIdle = zip(idle, previous).map { $0 >= $1 ? $0 - $1 : 0 }.min() ?? 0
        return max(0, min(100, 100 * (1 - Double(leastIdle) / Double(wall))))
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
