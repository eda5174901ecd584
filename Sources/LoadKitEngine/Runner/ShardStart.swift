import Foundation
import LoadKitTransport
import LoadKitProtocols

/// A start time shared by every shard (`LOADKIT_START_AT`), so shards launched seconds apart by
/// their orchestrator still load the server together. Pure decision in ``decide(nowMillis:)``;
/// ``wait(nowMillis:)`` only sleeps.
///
/// Variables: `LOADKIT_START_AT` (epoch milliseconds, or ISO-8601 such as
/// `2026-11-23T00:30:00Z`), `LOADKIT_START_TOLERANCE` (how late a shard may still start, default
/// 5 s), `LOADKIT_START_MAX_WAIT` (the longest wait accepted, default 15 min).
package struct ShardStart: Sendable, Equatable {
    /// The common start, milliseconds since 1970.
    public var atMillis: Int64
    /// A shard arriving later than this after ``atMillis`` fails instead of starting out of step.
    public var toleranceMillis: Int64
    /// A start further in the future than this is refused (a typo must not park a job for days).
    public var maxWaitMillis: Int64

    /// What a shard should do now.
    public enum Decision: Sendable, Equatable {
        /// Sleep this many milliseconds, then start.
        case wait(Int64)
        /// Start now (on time, or late within the tolerance by this many milliseconds).
        case startNow(lateMillis: Int64)
    }

    /// The start time is unusable: too far in the past or the future.
    public struct StartError: ClassifiedError, Sendable, Equatable {
        /// What is wrong, with the times involved.
        public var message: String
        /// `shard_start_missed` (past) or `shard_start_too_far` (future).
        public var kind: String
        /// The run's set-up, not the server.
        public var source: FailureSource { .loadGenerator }
        public var description: String { message }
    }

    /// A start at `atMillis`.
    public init(atMillis: Int64, toleranceMillis: Int64 = 5_000, maxWaitMillis: Int64 = 15 * 60_000) {
        self.atMillis = atMillis; self.toleranceMillis = toleranceMillis; self.maxWaitMillis = maxWaitMillis
    }

    /// Reads `LOADKIT_START_AT` (nil when unset), `LOADKIT_START_TOLERANCE` and `LOADKIT_START_MAX_WAIT`.
    public init?(settings: Settings) throws {
        guard let raw = settings.string("LOADKIT_START_AT") else { return nil }
        guard let at = ShardStart.parseTime(raw) else {
            throw ConfigError(variable: "LOADKIT_START_AT", value: raw,
                              expected: "epoch milliseconds or an ISO-8601 time such as 2026-11-23T00:30:00Z")
        }
        let tol = try settings.duration("LOADKIT_START_TOLERANCE", default: .seconds(5))
        let maxWait = try settings.duration("LOADKIT_START_MAX_WAIT", default: .seconds(15 * 60))
        self.init(atMillis: at, toleranceMillis: Int64(tol.nanoseconds / 1_000_000),
                  maxWaitMillis: Int64(maxWait.nanoseconds / 1_000_000))
    }

    /// Parses epoch milliseconds (all digits) or ISO-8601 (`…Z` or with an offset, optional fraction).
    public static func parseTime(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if !t.isEmpty, t.allSatisfy(\.isASCIIDigit), let ms = Int64(t) { return ms }
        let f = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime]] {
            f.formatOptions = options
            if let d = f.date(from: t) { return Int64((d.timeIntervalSince1970 * 1000).rounded()) }
        }
        return nil
    }

    /// What to do at wall-clock `nowMillis`: wait, start, or fail with a message giving both times.
    public func decide(nowMillis: Int64) throws -> Decision {
        let delta = atMillis - nowMillis
        if delta > maxWaitMillis {
            throw StartError(message: "LOADKIT_START_AT is \(Self.text(atMillis)), \(delta / 1000) s from now "
                                 + "(\(Self.text(nowMillis))); the longest wait accepted is \(maxWaitMillis / 1000) s "
                                 + "(LOADKIT_START_MAX_WAIT)", kind: "shard_start_too_far")
        }
        if delta > 0 { return .wait(delta) }
        if -delta > toleranceMillis {
            throw StartError(message: "LOADKIT_START_AT \(Self.text(atMillis)) is \(Double(-delta) / 1000) s in the past "
                                 + "(now \(Self.text(nowMillis))), beyond the tolerance of \(Double(toleranceMillis) / 1000) s "
                                 + "(LOADKIT_START_TOLERANCE): this shard would run out of step with the others",
                             kind: "shard_start_missed")
        }
        return .startNow(lateMillis: -delta)
    }

    /// Sleeps until the start (checking the clock again after each sleep, so it ends on time
    /// even if the sleep overshoots or the clock steps); throws when the start is unusable or the
    /// task is cancelled.
    public func wait(now: @Sendable () -> Int64 = { wallClockMillis() }) async throws {
        while case .wait(let ms) = try decide(nowMillis: now()) {
            try await Task.sleep(for: .milliseconds(min(ms, 1_000)))
        }
    }

    static func text(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
