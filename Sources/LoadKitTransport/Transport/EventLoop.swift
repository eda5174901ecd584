import CLoadKit
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One thread that owns a set of connections and timers: every socket event, parser step, timer
/// and protocol decision for those connections runs on it, so per-connection state needs no locks.
///
/// The thread waits in `epoll_wait` (kqueue on macOS) for a batch of events, reads straight into
/// one buffer shared by all of the loop's connections, fires due timers from one heap, and runs
/// the work submitted to it. Work submitted from another thread goes through a locked queue and
/// wakes the loop with an eventfd; work submitted from the loop's own thread is queued locally
/// and never touches the eventfd.
///
/// The loop is also a `TaskExecutor`: a task started with the loop as its executor preference
/// (`Task(executorPreference: loop) { … }`) runs on the loop's thread, so awaiting a response that
/// the loop parses resumes the task in place — no thread hop, no futex. Virtual users run that way.
///
/// Reads go into one shared buffer per loop (not one per connection), which keeps an idle
/// connection's memory small; delegates must consume or copy the bytes before returning.
public final class EventLoop: TaskExecutor, @unchecked Sendable, CustomStringConvertible {
    /// The loop's name (its thread's name, shortened).
    package let label: String
    let readBuffer: UnsafeMutableRawBufferPointer
    private let pollFD: Int32
    private let wakeFD: Int32
    private let wakeWriteFD: Int32

    // Cross-thread submissions: appended under the lock, counted so the loop can peek lock-free.
    private let inbox = Mutex<[LoopWork]>([])
    private let inboxCount = Atomic<Int>(0)
    // True while the loop is about to block (or blocked) in the poller: a submitter that flips it
    // back writes the eventfd. Sequentially consistent with `inboxCount` (store, then load).
    private let sleeping = Atomic<Bool>(false)
    private let stopWhenIdle = Atomic<Bool>(false)
    /// Set once the thread has ended (its group released, nothing left to do): work queued after
    /// would never run — a task on this loop would hang silently.
    private let ended = Atomic<Bool>(false)
    private let wakeups = Atomic<Int>(0)
    /// Time the thread spent blocked in the poller with nothing to do, and when its current
    /// wait began (0: not waiting), for ``idleNanos(at:)``. Taken only around waits that may block.
    private let waiting = Mutex<(idle: UInt64, since: UInt64)>((0, 0))
    /// Listeners registered on the loop (a server in this process): see ``servesListeners``.
    private let listeners = Atomic<Int>(0)

    // Loop-confined state.
    // Loop-confined (see `@exclusivity(unchecked)` in TCPConnection: one dynamic check per submit).
    @exclusivity(unchecked) private var local: [LoopWork] = []
    private var running: [LoopWork] = []
    private var remoteBatch: [LoopWork] = []
    private var timers = TimerHeap()
    private var registrations: [Registration] = []
    private var freeSlots: [Int] = []
    private var liveRegistrations = 0
    private var encodeBuffers: [[UInt8]] = [[], []]
    /// Turns of the loop's thread so far (loop-confined): a task that sees the same turn before
    /// and after a step has not given the thread back in between (``mustYield(_:now:)``).
    private var turns: UInt64 = 0
    /// The turn in which a task last asked ``mustYield(_:now:)``, and when it first asked in it.
    private var askedTurn: UInt64 = 0
    private var askedSince: UInt64 = 0

    init(label: String) {
        self.label = label
        readBuffer = .allocate(byteCount: 128 * 1024, alignment: 16)
        let p = lk_poll_create()
        precondition(p >= 0, "loadkit: cannot create the event loop's poller (errno \(errno))")
        pollFD = p
        var w: Int32 = -1
        let r = lk_wakeup_create(&w)
        precondition(r >= 0, "loadkit: cannot create the event loop's wake-up descriptor (errno \(errno))")
        wakeFD = r
        wakeWriteFD = w
        _ = lk_poll_add(pollFD, wakeFD, UInt64.max, 0)
        startThread()
    }

    public var description: String { "EventLoop(\(label))" }

    /// True when the caller runs on this loop's thread.
    package var inLoop: Bool { lk_current_loop() == Unmanaged.passUnretained(self).toOpaque() }

    /// The loop whose thread the caller runs on, if any.
    @usableFromInline package static var current: EventLoop? {
        guard let p = lk_current_loop() else { return nil }
        return Unmanaged<EventLoop>.fromOpaque(p).takeUnretainedValue()
    }

    // MARK: submitting work

    /// Runs `work` on the loop (after the current turn's work when called on the loop). Thread-safe.
    package func execute(_ work: @escaping @Sendable () -> Void) {
        submit(.closure(work))
    }

    /// Runs `work` at once when called on the loop, else on the loop as soon as it can. Thread-safe.
    @inline(__always)
    package func runOrExecute(_ work: @escaping @Sendable () -> Void) {
        if inLoop { work() } else { submit(.closure(work)) }
    }

    /// Runs loop-confined `work` later in this turn. Must be called on the loop.
    package func executeLocal(_ work: @escaping () -> Void) {
        local.append(.closure(work))
    }

    /// `TaskExecutor`: runs a task's job on the loop's thread.
    public func enqueue(_ job: consuming ExecutorJob) {
        submit(.job(UnownedJob(job)))
    }

    private func submit(_ w: LoopWork) {
        if inLoop {
            local.append(w)
            return
        }
        assert(!ended.load(ordering: .relaxed), "loadkit: work queued on \(label) after its EventLoopGroup was released "
               + "and the loop ended: keep the group alive while its loops are used")
        // The count changes only under the lock, so it never disagrees with the queue for long
        // enough to strand work.
        inbox.withLock {
            $0.append(w)
            inboxCount.add(1, ordering: .sequentiallyConsistent)
        }
        if sleeping.exchange(false, ordering: .sequentiallyConsistent) {
            wakeups.add(1, ordering: .relaxed)
            lk_wakeup_signal(wakeWriteFD)
        }
    }

    // MARK: timers

    /// Suspends the calling task for `duration` on an event loop's timer: the caller's loop when
    /// it runs on one (a virtual user, a server handler), else one of the shared group's. Unlike
    /// `Task.sleep`, whose wake-up waits for Swift's shared thread pool, it stays on time while
    /// the process is busy. Throws `CancellationError` when the task is cancelled first.
    package static func sleep(for duration: Duration) async throws {
        let w = Wakeup()
        let loop = EventLoop.current ?? EventLoopGroup.shared.next()
        let timer = loop.schedule(atNanos: monotonicNanos() &+ duration.nanoseconds) { w.fire(true) }
        let completed = await withTaskCancellationHandler { await w.wait() } onCancel: { w.fire(false) }
        if !completed {
            timer.cancel()
            throw CancellationError()
        }
    }

    /// Runs `work` on the loop after `delay`; returns a timer that can be cancelled. The loop keeps
    /// the timer until it fires or is cancelled, so the result may be discarded (fire-and-forget).
    /// Call it on the loop (from another thread the timer is added in the loop's next turn).
    @discardableResult
    package func schedule(after delay: Duration, _ work: @escaping () -> Void) -> LoopTimer {
        schedule(atNanos: monotonicNanos() &+ delay.nanoseconds, work)
    }

    /// Runs `work` on the loop once ``monotonicNanos()`` has reached `deadline` — never earlier.
    @discardableResult
    package func schedule(atNanos deadline: UInt64, _ work: @escaping () -> Void) -> LoopTimer {
        let t = LoopTimer(loop: self, deadline: deadline, interval: 0, work: work)
        onLoop { self.timers.insert(t) }
        return t
    }

    /// Runs `work` on the loop every `interval` (first after `initial`, default one interval) until
    /// the returned timer is cancelled. Ticks missed while the loop was busy are skipped, not
    /// run back to back.
    @discardableResult
    package func scheduleRepeating(every interval: Duration, startingAfter initial: Duration? = nil,
                                  _ work: @escaping () -> Void) -> LoopTimer {
        let step = max(1, interval.nanoseconds)
        let t = LoopTimer(loop: self, deadline: monotonicNanos() &+ (initial?.nanoseconds ?? step), interval: step, work: work)
        onLoop { self.timers.insert(t) }
        return t
    }

    /// A timer that runs `work` each time it is armed with ``arm(_:atNanos:)`` and comes due: one
    /// object for a series of irregular wake-ups (the open-model driver's, one per due instant),
    /// instead of a timer and a closure allocated per wake-up. Unarmed at first; `cancel()` ends it.
    package func makeTimer(_ work: @escaping () -> Void) -> LoopTimer {
        LoopTimer(loop: self, deadline: 0, interval: 0, rearmable: true, work: work)
    }

    /// Arms a timer made by ``makeTimer(_:)`` (moving it when it is armed already) to run once
    /// ``monotonicNanos()`` has reached `deadline` — never earlier. A cancelled timer stays off.
    /// Must be called on the loop.
    package func arm(_ timer: LoopTimer, atNanos deadline: UInt64) {
        timer.deadline = deadline
        timers.insert(timer)
    }

    func cancel(_ timer: LoopTimer) {
        onLoop {
            timer.work = nil
            self.timers.remove(timer)
        }
    }

    /// Nanoseconds the loop's thread has spent waiting for events with nothing to do, up to `now`
    /// (``monotonicNanos()``; the current wait counts up to it). Thread-safe. The rest of the
    /// time the loop was busy — running users' code and I/O, or blocked in a call that does not
    /// suspend — and work for its users waited: ``GeneratorSampler`` turns it into the busiest
    /// loop's share, which tells a saturated generator from a slow server.
    package func idleNanos(at now: UInt64) -> UInt64 {
        waiting.withLock { w in w.idle &+ (w.since != 0 && now > w.since ? now - w.since : 0) }
    }

    /// A task's view of the loop for ``mustYield(_:now:)``: the turn it last asked in.
    package struct Hold: Sendable {
        package var turn: UInt64 = .max
        package init() {}
    }

    /// Longest a turn of the loop may run tasks that do not suspend before they yield.
    static let longestHold: UInt64 = 1_000_000

    /// For a task on the loop that runs steps back to back (a virtual user's iterations, asking
    /// after each): whether to give the thread back now — when the task has run another step in
    /// this turn of the loop without suspending in between, and the turn has run such steps for
    /// ``longestHold``. A script that never suspends (pure computation, a blocking call) would
    /// otherwise keep the loop's timers (the plan's, the stop), I/O and other users waiting for
    /// ever; with N such users on a loop, the turn still ends about 1 ms after the first asked
    /// (each yields after its next step). A task that suspends on I/O or a timer is resumed in a
    /// later turn, so it never yields here. Synchronous: no executor switch. On the loop.
    @inline(__always)
    package func mustYield(_ hold: inout Hold, now: UInt64) -> Bool {
        let held = turnHeld(now: now)
        if hold.turn != turns {
            hold.turn = turns
            return false
        }
        return held
    }

    /// Whether this turn of the loop has run for ``longestHold`` since a task first asked in it
    /// (the first asks start the count). For a point where a task offers to yield anyway — a
    /// `sleep` of zero in a script's own loop. On the loop.
    @inline(__always)
    package func turnHeld(now: UInt64) -> Bool {
        if askedTurn != turns {
            askedTurn = turns
            askedSince = now
            return false
        }
        return now &- askedSince >= Self.longestHold
    }

    /// Gives the loop's thread back: the calling task, on the loop, resumes after the loop's
    /// timers and I/O have had their turn (not through Swift's global pool, as `Task.yield()`
    /// may). On the loop.
    nonisolated(nonsending)
    package func yieldThread() async {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            executeLocal { c.resume() }
        }
    }

    /// True while a listener (a server in this process) is registered on the loop: its busy
    /// time is then partly the server's.
    package var servesListeners: Bool { listeners.load(ordering: .relaxed) > 0 }

    /// How many times a submission had to wake the loop's thread (for tests and benchmarks).
    var wakeupSignals: Int { wakeups.load(ordering: .relaxed) }

    /// Timers waiting on this loop (on the loop; for tests).
    var pendingTimers: Int { timers.count }

    private func onLoop(_ body: @escaping () -> Void) {
        if inLoop { body() } else { submit(.closure(body)) }
    }

    // MARK: encoding buffers

    /// Lends the loop's encoding buffer for a protocol layer (0: WebSocket frames, 1: STOMP
    /// frames), empty; hand it back with ``returnEncodeBuffer(_:_:)`` after writing. Connections
    /// encode into it and write at once instead of each keeping a buffer of its own. On the loop;
    /// a nested take of the same layer just gets a fresh array.
    package func takeEncodeBuffer(_ layer: Int) -> [UInt8] {
        var b: [UInt8] = []
        swap(&b, &encodeBuffers[layer])
        b.removeAll(keepingCapacity: true)
        return b
    }

    /// Takes back a buffer lent by ``takeEncodeBuffer(_:)`` (a very large one is dropped).
    package func returnEncodeBuffer(_ layer: Int, _ buffer: [UInt8]) {
        if buffer.capacity <= 256 * 1024 { encodeBuffers[layer] = buffer }
    }

    // MARK: registrations

    /// Registers `fd` with the poller; `edge`: edge-triggered read and write (sockets), else
    /// level-triggered read only (listeners). Returns the token to deregister with. On the loop.
    func register(_ fd: Int32, _ handler: any LoopSelectable, edge: Bool) -> UInt64? {
        let slot: Int
        if let s = freeSlots.popLast() {
            slot = s
        } else {
            slot = registrations.count
            registrations.append(Registration())
        }
        registrations[slot].handler = handler
        let token = UInt64(slot) | UInt64(registrations[slot].generation) << 32
        if lk_poll_add(pollFD, fd, token, edge ? 1 : 0) != 0 {
            registrations[slot].handler = nil
            registrations[slot].generation &+= 1
            freeSlots.append(slot)
            return nil
        }
        liveRegistrations += 1
        registrations[slot].listener = !edge
        if !edge { listeners.add(1, ordering: .relaxed) }
        return token
    }

    /// Removes a registration (before the fd is closed). On the loop.
    func deregister(_ fd: Int32, token: UInt64) {
        let slot = Int(token & 0xffff_ffff)
        guard slot < registrations.count, registrations[slot].generation == UInt32(truncatingIfNeeded: token >> 32),
              registrations[slot].handler != nil else { return }
        _ = lk_poll_remove(pollFD, fd)
        registrations[slot].handler = nil
        registrations[slot].generation &+= 1
        freeSlots.append(slot)
        liveRegistrations -= 1
        if registrations[slot].listener {
            registrations[slot].listener = false
            listeners.subtract(1, ordering: .relaxed)
        }
    }

    /// Level-triggered registrations: turns read interest off or on (a listener out of descriptors).
    func setReading(_ fd: Int32, token: UInt64, _ on: Bool) {
        _ = lk_poll_set_reading(pollFD, fd, token, on ? 1 : 0)
    }

    // MARK: the thread

    private func startThread() {
        let me = Unmanaged.passRetained(self).toOpaque()
        #if canImport(Glibc)
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            Unmanaged<EventLoop>.fromOpaque(arg!).takeRetainedValue().runThread()
            return nil
        }, me)
        #else
        var tid: pthread_t?
        let rc = pthread_create(&tid, nil, { arg in
            Unmanaged<EventLoop>.fromOpaque(arg).takeRetainedValue().runThread()
            return nil
        }, me)
        #endif
        precondition(rc == 0, "loadkit: cannot start an event loop thread (\(rc))")
        #if canImport(Glibc)
        pthread_detach(tid)
        #else
        if let tid { pthread_detach(tid) }
        #endif
    }

    private static let batch = 256

    private func runThread() {
        lk_set_current_loop(Unmanaged.passUnretained(self).toOpaque())
        lk_set_thread_name(String(label.suffix(15)))
        // The kernel's default timer slack (50 µs) stays: at 1 µs every open-model arrival woke the
        // loop on its own — 5–10 % more CPU per request and a lower ceiling — for 5–15 µs less
        // start lateness, which the latency timed from the schedule shows either way.
        let events = UnsafeMutablePointer<lk_event>.allocate(capacity: Self.batch)
        defer { events.deallocate() }
        while true {
            turns &+= 1
            var timeout: Int64 = -1
            var now: UInt64 = 0
            if !local.isEmpty {
                timeout = 0
            } else if let next = timers.first {
                now = monotonicNanos()
                timeout = next.deadline > now ? Int64(clamping: next.deadline - now) : 0
            }
            if timeout != 0 {
                sleeping.store(true, ordering: .sequentiallyConsistent)
                if inboxCount.load(ordering: .sequentiallyConsistent) > 0 { timeout = 0 }
            }
            // A wait that may block counts as idle (``idleNanos(at:)``), from the clock read above
            // when the timers took one.
            let waitFrom = timeout == 0 ? 0 : (now != 0 ? now : monotonicNanos())
            if waitFrom != 0 { waiting.withLock { $0.since = waitFrom } }
            let n = lk_poll_wait(pollFD, events, Int32(Self.batch), timeout)
            sleeping.store(false, ordering: .relaxed)
            if waitFrom != 0 {
                let woke = monotonicNanos()
                waiting.withLock { w in
                    w.idle &+= woke > w.since ? woke - w.since : 0
                    w.since = 0
                }
            }
            if n > 0 {
                for i in 0..<Int(n) { dispatch(events[i]) }
            }
            // Work first (a response's user finishes its iteration and is free again), then the
            // timers that came due (the open-model driver then sees every user that is free),
            // then what the timers queued.
            runWork()
            fireTimers()
            runWork()
            if stopWhenIdle.load(ordering: .relaxed) && isIdle { break }
        }
        ended.store(true, ordering: .relaxed)
        lk_set_current_loop(nil)
        _ = lk_poll_remove(pollFD, wakeFD)
        _ = systemClose(wakeFD)
        if wakeWriteFD != wakeFD { _ = systemClose(wakeWriteFD) }
        _ = systemClose(pollFD)
    }

    @inline(__always)
    private func dispatch(_ e: lk_event) {
        if e.token == UInt64.max {
            lk_wakeup_drain(wakeFD)
            return
        }
        let slot = Int(e.token & 0xffff_ffff)
        guard slot < registrations.count,
              registrations[slot].generation == UInt32(truncatingIfNeeded: e.token >> 32),
              let h = registrations[slot].handler else { return }  // closed earlier in this batch
        h.ioReady(e.events)
    }

    private func fireTimers() {
        guard let first = timers.first else { return }
        var now = monotonicNanos()
        if first.deadline > now { return }
        var fired = 0
        while let t = timers.first, t.deadline <= now, fired < 4096 {
            timers.popFirst()
            fired += 1
            guard let work = t.work else { continue }
            if t.interval > 0 {
                // Fixed rate; ticks missed while the loop was busy are skipped.
                t.deadline &+= t.interval
                if t.deadline <= now { t.deadline = now &+ t.interval }
                timers.insert(t)
            } else if !t.rearmable {
                t.work = nil
            }
            work()
            if fired & 63 == 0 { now = monotonicNanos() }
        }
    }

    private func runWork() {
        if inboxCount.load(ordering: .relaxed) > 0 {
            inbox.withLock {
                swap(&$0, &remoteBatch)
                inboxCount.store(0, ordering: .relaxed)
            }
            local.append(contentsOf: remoteBatch)
            remoteBatch.removeAll(keepingCapacity: remoteBatch.capacity <= 4096)
        }
        guard !local.isEmpty else { return }
        swap(&local, &running)
        let executor = asUnownedTaskExecutor()
        for w in running {
            switch w {
            case .closure(let f): f()
            case .job(let j): j.runSynchronously(on: executor)
            }
        }
        running.removeAll(keepingCapacity: running.capacity <= 4096)
    }

    private var isIdle: Bool {
        liveRegistrations == 0 && timers.count == 0 && local.isEmpty && inboxCount.load(ordering: .relaxed) == 0
    }

    /// Lets the thread end once nothing is registered, scheduled or queued (the group is gone).
    func stopWhenIdleNow() {
        stopWhenIdle.store(true, ordering: .relaxed)
        execute {}  // wake it so it checks
    }
}

/// A unit of work queued on a loop: a closure or a Swift task's job. Closures handed over from
/// another thread are run only on the loop (the reason for the unchecked conformance).
enum LoopWork: @unchecked Sendable {
    case closure(() -> Void)
    case job(UnownedJob)
}

/// Something registered with a loop's poller; called on the loop with `LK_*` readiness bits.
protocol LoopSelectable: AnyObject {
    func ioReady(_ events: UInt32)
}

private struct Registration {
    var handler: (any LoopSelectable)?
    var generation: UInt32 = 0
    /// Level-triggered: a listener (counted in `listeners`).
    var listener = false
}
