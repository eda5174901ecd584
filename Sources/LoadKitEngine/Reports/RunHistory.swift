import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LoadKitTransport
import LoadKitProtocols

/// The runs of one test kept side by side instead of overwritten:
///
/// ```
/// <root>/<test>/2026-11-23_02-00-00.123Z/   one folder per run, named by its UTC start
/// <root>/<test>/2026-11-24_02-00-00.087Z/
/// <root>/<test>/latest -> 2026-11-24_02-00-00.087Z
/// ```
///
/// `latest` is a relative symbolic link; where links cannot be made (some network and Windows
/// file systems, artifact stores) it is a plain file holding the folder's name. ``latest(in:)``
/// reads either. Old runs beyond the retention (`LOADKIT_KEEP_RUNS`, default 20) are deleted
/// after each run; only folders named like runs are ever touched.
package enum RunHistory {
    /// Name of the pointer to the newest run.
    public static let latestName = "latest"
    /// Runs kept per test when `LOADKIT_KEEP_RUNS` is unset.
    public static let defaultKeep = 20

    /// The run folder name for a start time: `2026-11-23_02-00-00.123Z` (UTC; sorts by time).
    public static func folderName(startedAtMillis ms: Int64) -> String {
        var t = time_t(ms >= 0 ? ms / 1000 : (ms - 999) / 1000)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : String(v) }
        let millis = Int(((ms % 1000) + 1000) % 1000)
        let m = millis < 10 ? "00\(millis)" : (millis < 100 ? "0\(millis)" : String(millis))
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))_"
            + "\(two(parts.tm_hour))-\(two(parts.tm_min))-\(two(parts.tm_sec)).\(m)Z"
    }

    /// Whether `name` is a run folder's name (the only folders retention deletes).
    public static func isRunFolderName(_ name: String) -> Bool {
        let c = Array(name.utf8)
        guard c.count == 24, c[23] == UInt8(ascii: "Z") else { return false }
        let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22]
        let seps: [(Int, Character)] = [(4, "-"), (7, "-"), (10, "_"), (13, "-"), (16, "-"), (19, ".")]
        return digits.allSatisfy { c[$0] >= UInt8(ascii: "0") && c[$0] <= UInt8(ascii: "9") }
            && seps.allSatisfy { c[$0.0] == $0.1.asciiValue! }
    }

    /// The run folders under `testDirectory`, oldest first (full paths).
    public static func runs(in testDirectory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: testDirectory)) ?? []
        return names.filter(isRunFolderName).sorted().map { (testDirectory as NSString).appendingPathComponent($0) }
            .filter { isDirectory($0) }
    }

    /// The newest run's folder under `testDirectory`, through the `latest` pointer (link or plain
    /// file); nil when there is none or it points nowhere.
    public static func latest(in testDirectory: String) -> String? {
        let pointer = (testDirectory as NSString).appendingPathComponent(latestName)
        let fm = FileManager.default
        var target: String?
        if let dest = try? fm.destinationOfSymbolicLink(atPath: pointer) {
            target = dest
        } else if !isDirectory(pointer), let data = fm.contents(atPath: pointer),
                  let text = String(data: data, encoding: .utf8) {
            target = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let name = target, !name.isEmpty, !name.contains("/") || name.hasPrefix("/") else { return nil }
        let path = name.hasPrefix("/") ? name : (testDirectory as NSString).appendingPathComponent(name)
        return isDirectory(path) ? path : nil
    }

    /// Points `latest` in `testDirectory` at `folder` (a name inside it): a relative symbolic
    /// link replaced atomically, or — when links cannot be made, or `symlinks` is false — a plain
    /// file holding the name.
    public static func pointLatest(in testDirectory: String, to folder: String, symlinks: Bool = true) throws {
        let pointer = (testDirectory as NSString).appendingPathComponent(latestName)
        let temp = (testDirectory as NSString).appendingPathComponent(".\(latestName).\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
        if isDirectory(pointer) && (try? FileManager.default.destinationOfSymbolicLink(atPath: pointer)) == nil {
            throw ReportError(message: "cannot point \(pointer) at the newest run: it is a folder, not a link or a file")
        }
        if symlinks && symlink(folder, temp) == 0 {
            if rename(temp, pointer) == 0 { return }
            unlink(temp)
        }
        do {
            try Data((folder + "\n").utf8).write(to: URL(fileURLWithPath: temp))
            guard rename(temp, pointer) == 0 else {
                let why = String(cString: strerror(errno))
                unlink(temp)
                throw ReportError(message: "cannot update \(pointer): \(why)")
            }
        } catch let e as ReportError {
            throw e
        } catch {
            throw ReportError(message: "cannot write \(pointer): \(error.localizedDescription)")
        }
    }

    /// Deletes the oldest run folders of `testDirectory` beyond the newest `keep` (never
    /// `protecting`, the run just written, nor the one `latest` names). Returns the deleted paths.
    @discardableResult
    public static func prune(_ testDirectory: String, keep: Int, protecting: String? = nil) -> [String] {
        let all = runs(in: testDirectory)
        guard keep >= 1, all.count > keep else { return [] }
        let latestPath = latest(in: testDirectory)
        var removed: [String] = []
        for path in all.prefix(all.count - keep) where path != protecting && path != latestPath {
            if (try? FileManager.default.removeItem(atPath: path)) != nil { removed.append(path) }
        }
        return removed
    }

    /// Runs to keep per test from `LOADKIT_KEEP_RUNS`: a whole number ≥ 1, or `all`/`0` to keep
    /// every run (nil); ``defaultKeep`` when unset.
    public static func keepRuns(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int? {
        guard let raw = environment["LOADKIT_KEEP_RUNS"]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else {
            return defaultKeep
        }
        if raw.lowercased() == "all" || raw == "0" { return nil }
        guard let n = Int(raw), n >= 1 else {
            throw ConfigError(variable: "LOADKIT_KEEP_RUNS", value: raw,
                              expected: "a whole number of runs to keep per test (≥ 1), or 'all'")
        }
        return n
    }

    static func isDirectory(_ path: String) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &d) && d.boolValue
    }
}
