import Foundation
import LoadKitTransport
import LoadKitProtocols

/// Where a shard's identity came from, and the shard.
package struct ShardIdentity: Sendable, Equatable {
    /// The shard.
    public var shard: Shard
    /// The variable(s) it was read from (`LOADKIT_SHARD_INDEX`, `JOB_COMPLETION_INDEX`, …, or `default`).
    public var source: String
}

extension Shard {
    /// Index variables LoadKit understands, in order of precedence, with the count variable that
    /// goes with each and whether the orchestrator counts from 1.
    ///
    /// - `LOADKIT_SHARD_INDEX` / `LOADKIT_SHARD_COUNT`: LoadKit's own (a CI matrix sets them).
    /// - `JOB_COMPLETION_INDEX` (Kubernetes Indexed Job, 0-based): the Job does not expose its
    ///   `completions`, so `LOADKIT_SHARD_COUNT` must be set explicitly.
    /// - `CI_NODE_INDEX` / `CI_NODE_TOTAL` (GitLab `parallel:`, 1-based).
    /// - `CIRCLE_NODE_INDEX` / `CIRCLE_NODE_TOTAL` (CircleCI, 0-based).
    /// - `BUILDKITE_PARALLEL_JOB` / `BUILDKITE_PARALLEL_JOB_COUNT` (Buildkite, 0-based).
    public static let orchestratorVariables: [(index: String, count: String, oneBased: Bool)] = [
        ("LOADKIT_SHARD_INDEX", "LOADKIT_SHARD_COUNT", false),
        ("JOB_COMPLETION_INDEX", "LOADKIT_SHARD_COUNT", false),
        ("CI_NODE_INDEX", "CI_NODE_TOTAL", true),
        ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", false),
        ("BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", false),
    ]

    /// Finds this machine's shard from LoadKit's variables or the orchestrator's (see
    /// ``orchestratorVariables``). `LOADKIT_SHARD_COUNT` always wins as the count when set.
    /// Nothing set: a single shard. An index without a count is an error naming the missing variable.
    package static func detect(in settings: Settings) throws -> ShardIdentity {
        let explicitCount = try settings.int("LOADKIT_SHARD_COUNT", in: 1...Shard.maxCount)
        for v in orchestratorVariables {
            guard let raw = try settings.int(v.index) else { continue }
            let index = v.oneBased ? raw &- 1 : raw   // wrapping: Int.min fails the range check below, not a trap
            let countVariable = explicitCount != nil ? "LOADKIT_SHARD_COUNT" : v.count
            guard let count = try explicitCount ?? settings.int(v.count, in: 1...Shard.maxCount) else {
                throw ConfigError(variable: "LOADKIT_SHARD_COUNT", value: "",
                                  expected: "the number of shards, since \(v.index)=\(raw) is set"
                                      + (v.index == "JOB_COMPLETION_INDEX" ? " (the Job's completions)" : ""))
            }
            guard count >= 1 else { throw ConfigError(variable: countVariable, value: String(count), expected: "a count ≥ 1") }
            guard (0..<count).contains(index) else {
                throw ConfigError(variable: v.index, value: String(raw),
                                  expected: v.oneBased ? "1...\(count)" : "0...\(count - 1) (\(countVariable)=\(count))")
            }
            return ShardIdentity(shard: Shard(uncheckedIndex: index, count: count), source: "\(v.index)/\(countVariable)")
        }
        if let c = explicitCount, c != 1 {
            throw ConfigError(variable: "LOADKIT_SHARD_INDEX", value: "",
                              expected: "this shard's index 0...\(max(0, c - 1)) (or JOB_COMPLETION_INDEX), since LOADKIT_SHARD_COUNT=\(c)")
        }
        return ShardIdentity(shard: .single, source: "default")
    }

    // MARK: Shares

    /// This shard's share of a per-second rate: `rate ÷ count`. A whole-number rate is split in
    /// whole numbers, the remainder going to the lowest indices (10/s over 3 → 4, 3, 3), so the
    /// shares add up exactly; a fractional rate is divided evenly.
    public func share(ofRate rate: Double) -> Double {
        guard count > 1 else { return rate }
        if rate >= 0, rate == rate.rounded(), rate < 1e15 {
            let r = Int(rate)
            return Double(r / count + (index < r % count ? 1 : 0))
        }
        return rate / Double(count)
    }

    /// This shard's contiguous block of `range` (e.g. member ids `1...10_000`): blocks do not
    /// overlap, cover the range, and differ in size by at most one (the first ones are larger).
    public func partition(_ range: Range<Int>) -> Range<Int> {
        let n = range.count
        let base = n / count, extra = n % count
        let start = range.lowerBound + index * base + min(index, extra)
        return start..<(start + base + (index < extra ? 1 : 0))
    }

    /// This shard's block of a closed id range (`1...10_000`); nil when the shard gets no ids.
    public func partition(_ range: ClosedRange<Int>) -> ClosedRange<Int>? {
        let r = partition(Range(range))
        return r.isEmpty ? nil : r.lowerBound...(r.upperBound - 1)
    }

    /// This shard's rows of a data set (CSV rows, seats): a contiguous block, no overlap with other shards.
    public func partition<C: RandomAccessCollection>(_ rows: C) -> C.SubSequence where C.Index == Int {
        let r = partition(rows.startIndex..<rows.endIndex)
        return rows[r]
    }
}

extension ArrivalRate {
    /// This shard's share of the plan: every rate split by ``Shard/share(ofRate:)`` (remainders
    /// to the lowest indices), durations unchanged, so the shards' rates add up to the plan's.
    public func sharded(_ shard: Shard) -> ArrivalRate {
        ArrivalRate(startRate: shard.share(ofRate: startRate),
                    steps: steps.map { Step(rate: $0.rate.map { shard.share(ofRate: $0) }, duration: $0.duration) })
    }
}

extension Settings {
    /// The run id shared by every shard of one run: `LOADKIT_RUN_ID`, else the CI's run
    /// (`GITHUB_RUN_ID`-`GITHUB_RUN_ATTEMPT`, `CI_PIPELINE_ID`, `BUILDKITE_BUILD_ID`), else nil.
    public var runID: String? {
        if let id = string("LOADKIT_RUN_ID") { return id }
        if let gh = string("GITHUB_RUN_ID") { return gh + "-" + string("GITHUB_RUN_ATTEMPT", default: "1") }
        return string("CI_PIPELINE_ID") ?? string("BUILDKITE_BUILD_ID")
    }
}
