import Dispatch
import Synchronization

/// One serial queue that owns a set of connections: every socket event, parser step and protocol
/// decision for those connections runs here, so per-connection state needs no locks.
///
/// Reads go into one shared buffer per loop (not one per connection), which keeps an idle
/// connection's memory small; delegates must consume or copy the bytes before returning.
public final class EventLoop: @unchecked Sendable {
    /// The serial queue the loop runs on.
    public let queue: DispatchQueue
    let readBuffer: UnsafeMutableRawBufferPointer
    private static let key = DispatchSpecificKey<UInt>()
    private let id: UInt

    init(label: String, id: UInt) {
        queue = DispatchQueue(label: label, qos: .userInitiated)
        readBuffer = .allocate(byteCount: 128 * 1024, alignment: 16)
        self.id = id
        queue.setSpecific(key: Self.key, value: id)
    }

    /// True when the caller runs on this loop's queue.
    public var inLoop: Bool { DispatchQueue.getSpecific(key: Self.key) == id }

    /// Runs `work` on the loop.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        queue.async(execute: work)
    }

    /// Runs `work` on the loop after `delay`; returns a timer that can be cancelled (on the loop).
    /// Must be called on the loop. The timer keeps itself alive until it fires or is cancelled, so
    /// the result may be discarded (fire-and-forget); dropping it does not cancel it.
    @discardableResult
    public func schedule(after delay: Duration, _ work: @escaping () -> Void) -> LoopTimer {
        let t = DispatchSource.makeTimerSource(queue: queue)
        let timer = LoopTimer(source: t)
        // Strong capture on purpose: the source -> handler -> timer cycle is broken by cancel(),
        // which runs when the timer fires or when the owner cancels it.
        t.setEventHandler {
            timer.cancel()
            work()
        }
        t.schedule(deadline: .now() + delay.seconds, leeway: .milliseconds(1))
        t.resume()
        return timer
    }

    /// Runs `work` on the loop every `interval` until the returned timer is cancelled or released
    /// (keep a reference for as long as it should run). Must be called on the loop. A leeway of 1 % lets the kernel batch many connections' timers.
    @discardableResult
    public func scheduleRepeating(every interval: Duration, startingAfter initial: Duration? = nil,
                                  _ work: @escaping () -> Void) -> LoopTimer {
        let t = DispatchSource.makeTimerSource(queue: queue)
        let timer = LoopTimer(source: t)
        t.setEventHandler(handler: work)
        let s = interval.seconds
        let leewayNs = max(1_000_000, Int(s * 10_000_000))
        t.schedule(deadline: .now() + (initial ?? interval).seconds, repeating: s, leeway: .nanoseconds(leewayNs))
        t.resume()
        return timer
    }
}

/// A one-shot or repeating timer on an ``EventLoop``.
public final class LoopTimer: @unchecked Sendable {
    private var source: (any DispatchSourceTimer)?
    init(source: any DispatchSourceTimer) { self.source = source }

    /// Stops the timer; safe to call more than once.
    public func cancel() {
        source?.cancel()
        source = nil
    }

    deinit { source?.cancel() }
}

/// A fixed set of event loops, one per core by default; connections are spread round-robin.
public final class EventLoopGroup: Sendable {
    /// The process-wide group used when no group is given (one loop per active core).
    public static let shared = EventLoopGroup(loops: max(1, ProcessInfo_activeCores()))

    /// The loops of the group.
    public let loops: [EventLoop]
    private let counter = Atomic<Int>(0)

    /// Creates a group with `count` loops.
    public init(loops count: Int, label: String = "loadkit.loop") {
        loops = (0..<count).map { EventLoop(label: "\(label).\($0)", id: loopIDs.add(1, ordering: .relaxed).newValue) }
    }

    /// The next loop, round-robin.
    public func next() -> EventLoop {
        let i = counter.add(1, ordering: .relaxed).newValue
        return loops[i % loops.count]
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let loopIDs = Atomic<UInt>(0)

func ProcessInfo_activeCores() -> Int {
    Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}
