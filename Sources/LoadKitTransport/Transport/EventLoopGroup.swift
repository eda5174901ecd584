import CLoadKit
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class EventLoopGroup: Sendable {
    /// The process-wide group used when no group is given: one loop per CPU this process may use
    /// (its affinity mask, so `taskset -c 0` gives one loop, lowered to a container's CPU quota).
    @usableFromInline package static let shared = EventLoopGroup(loops: availableCores())

    /// The loops of the group.
    package let loops: [EventLoop]
    private let counter = Atomic<Int>(0)

    /// Creates a group with `count` loops (threads).
    package init(loops count: Int, label: String = "loadkit.loop") {
        loops = (0..<max(1, count)).map { EventLoop(label: "\(label).\($0)") }
    }

    deinit { for l in loops { l.stopWhenIdleNow() } }

    /// The next loop, round-robin.
    @usableFromInline package func next() -> EventLoop {
        let i = counter.add(1, ordering: .relaxed).newValue
        return loops[i % loops.count]
    }

    /// The group's loop that the caller runs on, if any.
    package var currentLoop: EventLoop? {
        guard let l = EventLoop.current else { return nil }
        return loops.contains { $0 === l } ? l : nil
    }
}

/// Runs `body` in a short-lived task on `loop` (a connect, a handshake) and returns its result;
/// cancelling the caller cancels it. A task keeps the memory of its deepest call stack until it
/// ends, so work with a deep stack done once by a long-lived virtual user runs here instead.
package func inShortTask<T: Sendable>(on loop: EventLoop, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let task = Task(executorPreference: loop) { try await body() }
    return try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
}

/// The CPUs this process may use (its affinity mask, lowered to a container's CPU quota): one
/// event loop each, and the load generator's capacity a summary judges its CPU against.
package func availableCores() -> Int {
    Int(lk_cpu_count())
}
