import Foundation
import LoadKit
import LoadKitFixtures

/// `loadkit fuzz`: the long differential fuzz run of the parsers (``ParserFuzz``): each input
/// parsed whole and in random splits, outcomes compared. Prints the seed first, so any failure
/// is reproducible; exit status 1 when whole and split disagree.
enum FuzzCommand {
    static let usage = """
    usage: loadkit fuzz [--parser all|\(ParserFuzz.Target.allCases.map(\.rawValue).joined(separator: "|"))] [--count N (default 1000000)]
                        [--seed S (default random; decimal or 0x…)] [--start I]
    """

    static func run(_ args: [String]) -> Int32 {
        let o: BenchOptions
        let count: Int, start: Int, seed: UInt64
        let targets: [ParserFuzz.Target]
        do {
            o = try BenchOptions(args)
            count = try o.int("count", 1_000_000)
            start = try o.int("start", 0)
            if let s = o.string("seed") {
                guard let v = s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s) else {
                    throw BenchOptions.UsageError(description: "--seed must be an integer, got '\(s)'")
                }
                seed = v
            } else {
                var g = SystemRandomNumberGenerator()
                seed = g.next()
            }
            let name = o.string("parser") ?? "all"
            if name == "all" { targets = ParserFuzz.Target.allCases } else {
                guard let t = ParserFuzz.Target(rawValue: name) else { throw BenchOptions.UsageError(description: "unknown parser '\(name)'") }
                targets = [t]
            }
        } catch {
            err("loadkit fuzz: \(error)\n\(usage)")
            return 64
        }
        print("loadkit fuzz: seed 0x\(String(seed, radix: 16)), inputs \(start)..<\(start + count) per parser, \(BuildMode.name) build")
        var failed = false
        for t in targets {
            let t0 = monotonicNanos()
            let r = ParserFuzz.run(t, seed: seed, start: start, count: count)
            let seconds = Double(monotonicNanos() - t0) / 1e9
            let ends = r.errors.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            let name = t.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)
            let verdict = (r.mismatches.isEmpty ? "equal" : "MISMATCH").padding(toLength: 9, withPad: " ", startingAt: 0)
            print("\(name) \(r.inputs) inputs  \(verdict) \(r.values) values parsed; inputs ended: incomplete \(r.incomplete), \(ends); "
                + "largest input \(r.largestInput) B; " + String(format: "%.1f s (%.0f inputs/s)", seconds, Double(r.inputs) / max(seconds, 1e-9)))
            for m in r.mismatches {
                failed = true
                let bytes = ParserFuzz.input(t, seed: seed, index: m.index)
                print("  input \(m.index): whole → \(m.whole)\n                split → \(m.split)")
                print("  bytes (\(bytes.count)): \(bytes.prefix(256).map { String(format: "%02x", $0) }.joined())")
                print("  reproduce: loadkit fuzz --parser \(t.rawValue) --seed 0x\(String(seed, radix: 16)) --start \(m.index) --count 1")
            }
        }
        print(failed ? "loadkit fuzz: whole and split outcomes DIFFER (see above)" : "loadkit fuzz: every input gave the same outcome whole and split")
        return failed ? 1 : 0
    }
}
