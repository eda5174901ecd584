import Testing
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Runs `body` on `loop` and returns its result.
private func onLoop<T: Sendable>(_ loop: EventLoop, _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { c in loop.execute { c.resume(returning: body()) } }
}

/// Loop-confined log of fired timers, each with the run-queue wait of the loop's thread since the
/// end of the loop's previous turn (the timers that fire in one turn share that wait).
private final class FireLog: @unchecked Sendable {
    var fired: [(id: Int, due: UInt64, at: UInt64, onLoop: Bool, queued: UInt64)] = []
    var waitAtTurnEnd: UInt64 = 0
    var turnEndPending = false
}

/// Nanoseconds the calling thread has spent runnable but waiting for a CPU (Linux schedstat's
/// run_delay); 0 where the kernel does not say.
private func threadRunQueueWait() -> UInt64 {
    #if os(Linux)
    let fd = open("/proc/thread-self/schedstat", O_RDONLY)
    guard fd >= 0 else { return 0 }
    defer { _ = close(fd) }
    var buf = [UInt8](repeating: 0, count: 96)
    let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 95) }
    guard n > 0 else { return 0 }
    let fields = String(decoding: buf[0..<n], as: UTF8.self).split(separator: " ")
    return fields.count >= 2 ? UInt64(fields[1]) ?? 0 : 0
    #else
    return 0
    #endif
}

@Suite struct EventLoopTests {
    @Test func timersFireInDeadlineOrderNeverEarlyAndOnTime() async throws {
        let group = EventLoopGroup(loops: 1, label: "t.timers")
        let loop = group.loops[0]
        var rng = SeededRandom(seed: 14)
        let delays = (0..<200).map { _ in UInt64(rng.next() % 40) * 1_000_000 }  // 0–39 ms, many equal
        // The loop's own lateness: how late each timer fired, less the time the loop's thread then
        // waited for a CPU (the kernel's run-queue wait since the loop's previous turn, which the
        // loop cannot shorten). A loop that overslept — a coarse tick, a timeout rounded up, work
        // done first — was asleep or running then, not queued, so that still counts. Run alone the
        // median is 0.13–0.16 ms; in parallel `swift test` runs on two cores on 2026-12-01 the raw
        // median was 7.2–10.7 ms in 4 of 10 runs (a bound of 5 ms failed): the loop's 0.3–0.7 ms
        // timeouts returned 8–18.5 ms late, and the thread had been queued for all but ~0.1 ms of it.
        // Once (run 20) the median was 2.8 ms with no run-queue wait to speak of — the host, not the
        // loop — so a round that misses is repeated, up to three rounds a quarter second apart: a
        // loop that oversleeps misses every round (timeouts rounded up to a 4 ms tick: medians of
        // 1.2–2.4 ms, 15 rounds of 15), a loaded host now and then.
        var rounds: [(median: UInt64, max: UInt64, rawMedian: UInt64, rawMax: UInt64)] = []
        for round in 0..<3 {
            if round > 0 { try await Task.sleep(for: .milliseconds(250)) }
            let log = FireLog()
            let done = Atomic<Int>(0)
            await onLoop(loop) {
                let base = monotonicNanos()
                log.waitAtTurnEnd = threadRunQueueWait()
                for (i, d) in delays.enumerated() {
                    loop.schedule(atNanos: base + d) {
                        let at = monotonicNanos()
                        log.fired.append((i, base + d, at, loop.inLoop, threadRunQueueWait() - log.waitAtTurnEnd))
                        if !log.turnEndPending {
                            // Runs after this turn's timers (the loop runs what they queued last).
                            log.turnEndPending = true
                            loop.execute { log.waitAtTurnEnd = threadRunQueueWait(); log.turnEndPending = false }
                        }
                        done.add(1, ordering: .relaxed)
                    }
                }
            }
            for _ in 0..<500 where done.load(ordering: .relaxed) < delays.count { try await Task.sleep(for: .milliseconds(10)) }
            let fired = await onLoop(loop) { log.fired.map { ($0.id, $0.due, $0.at, $0.onLoop, $0.queued) } }
            try #require(fired.count == delays.count)
            // In deadline order; equal deadlines in the order they were scheduled.
            let expected = delays.enumerated().sorted { ($0.element, $0.offset) < ($1.element, $1.offset) }.map(\.offset)
            #expect(fired.map(\.0) == expected)
            #expect(fired.allSatisfy { $0.3 })
            #expect(fired.allSatisfy { $0.2 >= $0.1 })                  // never before the deadline
            let raw = fired.map { $0.2 - $0.1 }.sorted()
            let late = fired.map { ($0.2 - $0.1) - min($0.2 - $0.1, $0.4) }.sorted()
            rounds.append((late[late.count / 2], late.last!, raw[raw.count / 2], raw.last!))
            if late[late.count / 2] < 1_000_000 && late.last! < 100_000_000 { break }
        }
        let said = rounds.map { "median \($0.median) ns, max \($0.max) ns of its own (\($0.rawMedian), \($0.rawMax) ns with the run-queue wait)" }
        let best = rounds.last!
        #expect(best.median < 1_000_000 && best.max < 100_000_000, "\(said)")
        #expect(await onLoop(loop) { loop.pendingTimers } == 0)
    }

    @Test func cancelledTimersDoNotFireAndRepeatingTimersStop() async throws {
        let group = EventLoopGroup(loops: 1, label: "t.cancel")
        let loop = group.loops[0]
        let hits = Mutex<[Int]>([])
        // Created and partly cancelled in one loop job, far enough ahead that a busy test process
        // (parallel suites) cannot let them fire before the cancellations below.
        let timers = await onLoop(loop) { () -> [LoopTimer] in
            let t = (0..<10).map { i in loop.schedule(after: .seconds(1)) { hits.withLock { $0.append(i) } } }
            for i in stride(from: 0, to: 10, by: 2) { t[i].cancel() }                          // on the loop
            let other = Thread { t[1].cancel() }                                              // off the loop
            other.start()
            while !other.isFinished { usleep(100) }
            return t
        }
        let ticks = Atomic<Int>(0)
        let repeating = loop.scheduleRepeating(every: .milliseconds(5)) { ticks.add(1, ordering: .relaxed) }
        try await Task.sleep(for: .milliseconds(1300))
        repeating.cancel()
        repeating.cancel()  // twice is fine
        try await Task.sleep(for: .milliseconds(20))
        let after = ticks.load(ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(50))
        #expect(hits.withLock { $0.sorted() } == [3, 5, 7, 9])
        #expect(after >= 10)
        #expect(ticks.load(ordering: .relaxed) == after)   // no tick after the cancel took effect
        #expect(await onLoop(loop) { loop.pendingTimers } == 0)
    }

    /// The open-model driver's timer: one object armed again from its own work at each wake-up,
    /// moved while armed, never firing early, and off for good once cancelled.
    @Test func aRearmableTimerFiresOncePerArmingNeverEarlyAndStaysOffWhenCancelled() async throws {
        let group = EventLoopGroup(loops: 1, label: "t.rearm")
        let loop = group.loops[0]
        final class Log: @unchecked Sendable {  // loop-confined
            var fired: [(due: UInt64, at: UInt64)] = []
            var due: UInt64 = 0
            var timer: LoopTimer?
        }
        let log = Log()
        let done = Wakeup()
        await onLoop(loop) {
            let t = loop.makeTimer {
                log.fired.append((log.due, monotonicNanos()))
                if log.fired.count == 5 { done.fire(true); return }
                log.due = monotonicNanos() + 2_000_000
                loop.arm(log.timer!, atNanos: log.due)   // again, from its own work
            }
            log.timer = t
            // Armed far ahead, then moved nearer: it fires once, at the nearer instant.
            loop.arm(t, atNanos: monotonicNanos() + 60_000_000_000)
            log.due = monotonicNanos() + 1_000_000
            loop.arm(t, atNanos: log.due)
        }
        _ = await done.wait()
        let (fired, pending) = await onLoop(loop) { (log.fired, loop.pendingTimers) }
        #expect(fired.count == 5)
        #expect(fired.allSatisfy { $0.at >= $0.due })
        #expect(pending == 0)   // fired without being armed again: not in the heap
        // Cancelled, it stays off: arming it again schedules nothing.
        let afterCancel = await onLoop(loop) { () -> Int in
            log.timer!.cancel()
            loop.arm(log.timer!, atNanos: monotonicNanos())
            return loop.pendingTimers
        }
        #expect(afterCancel == 0)
        try await Task.sleep(for: .milliseconds(20))
        #expect(await onLoop(loop) { log.fired.count } == 5)
    }

    @Test func crossThreadSubmissionsAllRunOnTheLoopInOrderPerSubmitter() async throws {
        let group = EventLoopGroup(loops: 1, label: "t.submit")
        let loop = group.loops[0]
        final class Seen: @unchecked Sendable { var last = [Int](repeating: -1, count: 8); var count = 0; var wrong = 0 }
        let seen = Seen()
        await withTaskGroup(of: Void.self) { g in
            for t in 0..<8 {
                g.addTask {
                    for k in 0..<5_000 {
                        loop.execute {
                            if !loop.inLoop || seen.last[t] != k - 1 { seen.wrong += 1 }
                            seen.last[t] = k
                            seen.count += 1
                        }
                    }
                }
            }
        }
        let (count, wrong) = await onLoop(loop) { (seen.count, seen.wrong) }
        #expect(count == 40_000)
        #expect(wrong == 0)
    }

    @Test func workQueuedOnTheLoopNeverWritesTheWakeUp() async throws {
        let group = EventLoopGroup(loops: 1, label: "t.local")
        let loop = group.loops[0]
        let before = loop.wakeupSignals
        let ran = Atomic<Int>(0)
        let n = await Task(executorPreference: loop) { () -> Int in
            var n = 0
            for _ in 0..<2_000 {
                await Task.yield()            // the job is re-enqueued from the loop's own thread
                loop.execute { ran.add(1, ordering: .relaxed) }   // and closures too
                if loop.inLoop { n += 1 }
            }
            return n
        }.value
        // Only the task's first job and its completion cross threads; 4,000 local submissions did not.
        let signals = loop.wakeupSignals - before
        // The task can finish before the loop has run its last queued closure: wait for it (bounded).
        for _ in 0..<2_000 where ran.load(ordering: .relaxed) < 2_000 { try await Task.sleep(for: .milliseconds(1)) }
        #expect(n == 2_000)
        #expect(ran.load(ordering: .relaxed) == 2_000)
        #expect(signals <= 2)
    }

    @Test func tasksWithTheLoopAsPreferenceStayOnItsThread() async throws {
        let group = EventLoopGroup(loops: 2, label: "t.exec")
        let (a, b) = (group.loops[0], group.loops[1])
        final class Count: Sendable { let v = Atomic<Int>(0); func add() { v.add(1, ordering: .relaxed) } }
        let offLoop = Count()
        await withTaskGroup(of: Void.self) { g in
            for i in 0..<20 {
                let mine = i % 2 == 0 ? a : b, other = i % 2 == 0 ? b : a
                g.addTask(executorPreference: mine) {
                    for _ in 0..<50 {
                        if !mine.inLoop { offLoop.add() }
                        // Resumed from the other loop's thread, from a timer, and from the pool.
                        await withCheckedContinuation { c in other.execute { c.resume() } }
                        if !mine.inLoop || EventLoop.current !== mine { offLoop.add() }
                        await withCheckedContinuation { c in other.schedule(after: .microseconds(100)) { c.resume() } }
                        if !mine.inLoop { offLoop.add() }
                        try? await Task.sleep(for: .microseconds(50))
                        if !mine.inLoop { offLoop.add() }
                    }
                }
            }
        }
        #expect(offLoop.v.load(ordering: .relaxed) == 0)
        #expect(group.currentLoop == nil)   // the test itself is not on a loop
    }

    @Test func threadsOfAReleasedGroupEndWhenIdle() async throws {
        func loopThreads() -> Int {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            return tasks.filter { t in
                ((try? String(contentsOfFile: "/proc/self/task/\(t)/comm", encoding: .utf8)) ?? "").hasPrefix("t.release")
            }.count
        }
        do {
            let group = EventLoopGroup(loops: 3, label: "t.release")
            // Each thread names itself when it starts: wait until all three ran something (a busy
            // machine — parallel tests — had started one of three when only loop 0 was asked).
            for loop in group.loops { await onLoop(loop) {} }
            #expect(loopThreads() == 3)
        }
        for _ in 0..<100 where loopThreads() > 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(loopThreads() == 0)
    }
}

/// Connections on the loop: many at once, and how they end.
@Suite struct EventLoopConnectionTests {
    @Test func manyConnectionsOnOneLoopAllEchoTheirBytes() async throws {
        ResourceLimits.raiseOpenFileLimit()
        let group = EventLoopGroup(loops: 1, label: "t.many")
        let listener = try TCPListener(group: group) { conn in conn.start(delegate: EchoDelegate()) }
        defer { listener.close() }
        let n = 400
        let ok = try await withThrowingTaskGroup(of: Bool.self) { g in
            for i in 0..<n {
                g.addTask {
                    let conn = try await TCPConnection.connect(to: listener.address, timeout: .seconds(10), on: group.loops[0])
                    let payload = Array("hello \(i) ".utf8) + [UInt8](repeating: UInt8(i & 0xff), count: i * 37)
                    let collector = Collector(expected: payload.count)
                    let got: [UInt8] = try await withCheckedThrowingContinuation { k in
                        conn.loop.execute { collector.cont = k; conn.start(delegate: collector); conn.write(payload) }
                    }
                    conn.close()
                    return got == payload
                }
            }
            var all = 0
            for try await r in g where r { all += 1 }
            return all
        }
        #expect(ok == n)
    }

    @Test func peerEOFIsClosedByPeer() async throws {
        let listener = try TCPListener { conn in conn.write(Array("bye".utf8)); conn.close() }
        defer { listener.close() }
        let (got, error) = try await readUntilClosed(listener.address)
        #expect(got == Array("bye".utf8))     // the bytes before the FIN are delivered first
        #expect(error?.kind == "closed_by_peer")
    }

    @Test func peerResetIsReportedAsReset() async throws {
        let listener = try TCPListener { conn in
            conn.start(delegate: EchoDelegate())
            conn.loop.schedule(after: .milliseconds(20)) { conn.abort() }
        }
        defer { listener.close() }
        let (_, error) = try await readUntilClosed(listener.address)
        #expect(error?.kind == "reset")
        #expect(error?.source == .server)
    }

    @Test func halfCloseKeepsReadingUntilThePeerCloses() async throws {
        // The server echoes; it sees our FIN after "ping", echoes, and closes on that EOF.
        let listener = try TCPListener { conn in conn.start(delegate: EchoDelegate()) }
        defer { listener.close() }
        let conn = try await TCPConnection.connect(to: listener.address, timeout: .seconds(5))
        let collector = Collector(expected: 4)
        let got: [UInt8] = try await withCheckedThrowingContinuation { k in
            conn.loop.execute {
                collector.cont = k
                conn.start(delegate: collector)
                conn.write(Array("ping".utf8))
                conn.shutdownOutput()                      // FIN right behind "ping"; reading goes on
            }
        }
        #expect(got == Array("ping".utf8))                 // the echo arrived after our half-close
        await conn.waitClosed()                            // then the server's close
        #expect(collector.closeError?.kind == "closed_by_peer")
    }

    @Test func connectThatHangsTimesOut() async throws {
        // A listening socket that never accepts: once its backlog is full the kernel drops SYNs.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { _ = close(fd) }
        let any = SocketAddress(ip: "127.0.0.1", port: 0)!
        #expect(any.withSockAddr { bind(fd, $0, $1) } == 0)
        #expect(listen(fd, 0) == 0)
        var storage = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let addr = SocketAddress(ip: "127.0.0.1", port: Int(UInt16(bigEndian: storage.sin_port)))!
        var kept: [TCPConnection] = []
        var timedOut = false
        for _ in 0..<8 where !timedOut {
            do {
                kept.append(try await TCPConnection.connect(to: addr, timeout: .milliseconds(300)))
            } catch let e as TransportError {
                #expect(e.kind == "timeout")
                timedOut = true
            }
        }
        #expect(timedOut)
        kept.forEach { $0.close() }
    }

    /// Connects, starts reading and returns what arrived before the close, with its reason.
    private func readUntilClosed(_ address: SocketAddress) async throws -> ([UInt8], TransportError?) {
        let conn = try await TCPConnection.connect(to: address, timeout: .seconds(5))
        let collector = Collector(expected: Int.max)
        conn.start(delegate: collector)
        await conn.waitClosed()
        return await withCheckedContinuation { c in conn.loop.execute { c.resume(returning: (collector.data, collector.closeError)) } }
    }
}

/// Reads one byte when its pipe is readable and reports it.
private final class PipeReader: LoopSelectable {
    let fd: Int32
    let onReadable: () -> Void
    init(fd: Int32, onReadable: @escaping () -> Void) { self.fd = fd; self.onReadable = onReadable }
    func ioReady(_ events: UInt32) {
        var b: UInt8 = 0
        _ = read(fd, &b, 1)
        onReadable()
    }
}

/// Loop-confined flags of the ordering test.
private final class OrderProbe: @unchecked Sendable {
    var ioWorkRan = false
    var token: UInt64?
}

@Suite struct EventLoopOrderTests {
    /// In one loop turn, work that an I/O event queued runs before a timer that came due in that
    /// turn: the open-model driver's timer then sees a user a response has just freed (with the
    /// old order, timers first, that user looked busy and the arrival could be dropped).
    @Test func workQueuedByIOInATurnRunsBeforeTimersDueInThatTurn() async throws {
        let group = EventLoopGroup(loops: 1, label: "t.order")
        let loop = group.loops[0]
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let (r, w) = (fds[0], fds[1])
        defer { close(r); close(w) }
        let probe = OrderProbe()
        let sawIOWork: Bool = await withCheckedContinuation { c in
            loop.execute {
                probe.token = loop.register(r, PipeReader(fd: r) { loop.executeLocal { probe.ioWorkRan = true } }, edge: false)
                // A timer's work runs after that turn's timers: make the pipe readable and let the
                // second timer come due while the loop is busy, so the next poll finds both ready.
                loop.schedule(atNanos: monotonicNanos() + 1_000_000) {
                    loop.executeLocal {
                        let due = monotonicNanos() + 2_000_000
                        loop.schedule(atNanos: due) { c.resume(returning: probe.ioWorkRan) }
                        var b: UInt8 = 1
                        _ = write(w, &b, 1)
                        while monotonicNanos() < due + 1_000_000 {}
                    }
                }
            }
        }
        #expect(sawIOWork)
        await onLoop(loop) { if let t = probe.token { loop.deregister(r, token: t) } }
    }
}
