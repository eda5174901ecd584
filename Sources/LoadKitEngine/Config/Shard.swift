import LoadKitTransport
import LoadKitProtocols

/// One machine's share of a run spread over several (seed 002: 500 connections on each of 6–7
/// machines). Users are striped: global user k belongs to shard `k % count`, so every shard's
/// users have distinct ids (`VirtualUser.id`) without knowing the other shards, and at any moment
/// the shards together run exactly the plan's target. Results merge with `RunResult.merged`.
///
/// Variables: `LOADKIT_SHARD_INDEX` (0-based) and `LOADKIT_SHARD_COUNT`.
public struct Shard: Sendable, Equatable, Codable {
    /// This shard's number, 0..<count.
    public var index: Int
    /// How many shards the run is spread over.
    public var count: Int

    /// The whole run on one machine.
    public static let single = Shard(uncheckedIndex: 0, count: 1)
    /// Most shards a run may be spread over.
    public static let maxCount = 100_000

    init(uncheckedIndex index: Int, count: Int) { self.index = index; self.count = count }

    /// Shard `index` of `count` (validated).
    public init(index: Int, count: Int) throws {
        guard (1...Shard.maxCount).contains(count) else {
            throw ConfigError(variable: "LOADKIT_SHARD_COUNT", value: String(count), expected: "a count in 1...\(Shard.maxCount)")
        }
        guard (0..<count).contains(index) else {
            throw ConfigError(variable: "LOADKIT_SHARD_INDEX", value: String(index), expected: "0...\(count - 1)")
        }
        self.index = index; self.count = count
    }

    /// Reads `LOADKIT_SHARD_INDEX` / `LOADKIT_SHARD_COUNT`, or an orchestrator's index
    /// (`JOB_COMPLETION_INDEX` with `LOADKIT_SHARD_COUNT`, CI node variables; see
    /// ``detect(in:)``); default: a single shard.
    public init(settings: Settings) throws {
        self = try Shard.detect(in: settings).shard
    }

    /// This shard's part of `n` users: the number of k in 0..<n with k % count == index.
    public func share(of n: Int) -> Int {
        guard count > 1, n > 0 else { return n }
        return n > index ? (n - index + count - 1) / count : 0
    }

    /// The global (run-wide) index of this shard's `local`-th user.
    public func globalIndex(local: Int) -> Int { local * count + index }
}
