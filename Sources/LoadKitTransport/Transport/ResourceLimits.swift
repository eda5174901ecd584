#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The load generator's own limits: open files and ephemeral ports. Seed 004's lesson is that a
/// run must check these itself before blaming the server.
package enum ResourceLimits {
    /// The open-file limit (soft, hard).
    public static func openFiles() -> (soft: Int, hard: Int) {
        var r = rlimit()
        getrlimit(resourceNOFILE, &r)
        return (clampLimit(r.rlim_cur), clampLimit(r.rlim_max))
    }

    /// Raises the soft open-file limit to the hard one; returns the soft limit now in force.
    @discardableResult
    public static func raiseOpenFileLimit() -> Int {
        var r = rlimit()
        getrlimit(resourceNOFILE, &r)
        if r.rlim_cur < r.rlim_max {
            var want = r
            want.rlim_cur = r.rlim_max
            #if canImport(Darwin)
            want.rlim_cur = min(r.rlim_max, rlim_t(OPEN_MAX))
            #endif
            _ = setrlimit(resourceNOFILE, &want)
        }
        return openFiles().soft
    }

    /// Descriptors this process has open now (from `/proc/self/fd`; -1 where unavailable).
    public static func openDescriptorCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count).map { $0 - 1 } ?? -1
    }

    /// The ephemeral port range (`/proc/sys/net/ipv4/ip_local_port_range`), 32768–60999 by default.
    public static func ephemeralPortRange() -> ClosedRange<Int> {
        if let s = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8) {
            let parts = s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
            if parts.count == 2, parts[0] <= parts[1] { return parts[0]...parts[1] }
        }
        return 32768...60999
    }

    private static func clampLimit(_ v: rlim_t) -> Int {
        v > rlim_t(Int32.max) ? Int(Int32.max) : Int(v)
    }

    #if canImport(Glibc)
    private static var resourceNOFILE: __rlimit_resource_t { __rlimit_resource_t(UInt32(RLIMIT_NOFILE.rawValue)) }
    #else
    private static var resourceNOFILE: Int32 { RLIMIT_NOFILE }
    #endif
}
