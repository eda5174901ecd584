import Foundation
import LoadKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `loadkit bench <section>`: the measurements behind Benchmarks/run.sh. Each section prints
/// `key value` lines on stdout (the script parses them) and commentary on stderr.
enum BenchCommand {
    static let usage = """
    usage: loadkit bench record [--seconds S]
           loadkit bench http  --url URL [--connections N] [--seconds S] [--mode scenario|execute|open|ceiling] [--rate R]
           loadkit bench stomp [--fixture PATH] [--seconds S] [--publishers P] [--subscribers N] [--window W]
           loadkit bench held  [--fixture PATH] [--connections N] [--hold-seconds S] [--heartbeat-ms MS]
           loadkit bench chat  [--fixture PATH] [--workers N] [--ramp-seconds S] [--hold-seconds S] [--rooms R] [--interval-ms MS] [--mode chat|users]
    """

    static func run(_ args: [String]) async -> Int32 {
        guard let section = args.first else { err(usage); return 64 }
        let options: BenchOptions
        do { options = try BenchOptions(Array(args.dropFirst())) } catch { err("loadkit bench: \(error)\n\(usage)"); return 64 }
        do {
            switch section {
            case "record": try BenchRecord.run(options)
            case "http": try await BenchHTTP.run(options)
            case "stomp": try await BenchStomp.run(options)
            case "held": try await BenchHeld.run(options)
            case "chat": try await BenchChat.run(options)
            default: err("loadkit bench: unknown section '\(section)'\n\(usage)"); return 64
            }
        } catch {
            err("loadkit bench \(section): \(error)")
            return 1
        }
        return 0
    }
}

/// `--flag value` pairs of a bench section.
struct BenchOptions {
    /// A flag without a value, or a value that does not parse.
    struct UsageError: Error, CustomStringConvertible { var description: String }

    private var values: [String: String] = [:]

    init(_ args: [String]) throws {
        var i = 0
        while i < args.count {
            guard args[i].hasPrefix("--"), i + 1 < args.count else { throw UsageError(description: "expected --flag value, got '\(args[i])'") }
            values[String(args[i].dropFirst(2))] = args[i + 1]
            i += 2
        }
    }

    func string(_ k: String) -> String? { values[k] }

    func int(_ k: String, _ d: Int) throws -> Int {
        guard let s = values[k] else { return d }
        guard let v = Int(s), v >= 0 else { throw UsageError(description: "--\(k) must be a non-negative integer, got '\(s)'") }
        return v
    }

    func double(_ k: String, _ d: Double) throws -> Double {
        guard let s = values[k] else { return d }
        guard let v = Double(s), v >= 0 else { throw UsageError(description: "--\(k) must be a non-negative number, got '\(s)'") }
        return v
    }
}

/// A failure of the benchmark's own set-up or run, with the cause in words.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Prints a `key value` line on stdout (flushed: the script reads it through a pipe).
func emit(_ key: String, _ value: String) {
    FileHandle.standardOutput.write(Data("\(key) \(value)\n".utf8))
}
func emit(_ key: String, _ value: Int) { emit(key, String(value)) }
func emit(_ key: String, _ value: Double, digits: Int = 1) { emit(key, String(format: "%.\(digits)f", value)) }

/// Commentary on stderr.
func err(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// This process's resource use.
enum ProcessStats {
    /// User + system CPU time so far, in seconds (getrusage).
    static func cpuSeconds() -> Double {
        let s = cpuSplit()
        return s.user + s.kernel
    }

    /// CPU seconds so far in user space and in the kernel, of all threads (getrusage).
    static func cpuSplit() -> (user: Double, kernel: Double) {
        let u = selfUsage()
        return (Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6,
                Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6)
    }

    /// Context switches so far, voluntary + involuntary, of all threads (getrusage).
    static func contextSwitches() -> Int {
        let u = selfUsage()
        return Int(u.ru_nvcsw + u.ru_nivcsw)
    }

    /// Resident set size now, in bytes (/proc/self/statm; 0 where unavailable).
    static func rssBytes() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let f = s.split(separator: " ")
        guard f.count > 1, let pages = Int(f[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Resident set size of another process, in bytes (0 when unknown).
    static func rssBytes(pid: Int32) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return 0 }
        let f = s.split(separator: " ")
        guard f.count > 1, let pages = Int(f[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// CPU seconds (user + system) used so far by another process (/proc/PID/stat; 0 when unknown).
    static func cpuSeconds(pid: Int32) -> Double {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = s.lastIndex(of: ")") else { return 0 }
        let f = s[s.index(after: close)...].split(separator: " ")
        // Fields after the command: state(0) … utime(11) stime(12), in clock ticks.
        guard f.count > 12, let u = Double(f[11]), let k = Double(f[12]) else { return 0 }
        return (u + k) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// Pins a process (all its threads) to one CPU with `taskset`; best effort.
func pinProcess(_ pid: Int32, cpu: Int) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
    p.arguments = ["-a", "-p", "-c", String(cpu), String(pid)]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    do { try p.run(); p.waitUntilExit() } catch { err("note: could not pin pid \(pid) to cpu \(cpu): \(error)") }
}

/// The CPUs this process may run on (sched_getaffinity through /proc/self/status).
func allowedCPUList() -> String {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return "?" }
    for line in s.split(separator: "\n") where line.hasPrefix("Cpus_allowed_list:") {
        return line.split(separator: "\t").last.map(String.init) ?? "?"
    }
    return "?"
}
