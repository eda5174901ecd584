import Synchronization
import LoadKitTransport

/// Drives the heart-beats of every ``StompClient`` on one ``EventLoop`` that ticks at the same
/// period with a single repeating timer. A per-connection timer costs a dispatch source and a
/// thread wake-up per tick each; with thousands of idle connections those wake-ups were most of
/// the client's idle CPU (measured with `loadkit bench held`).
///
/// Periods are capped at ``maxPeriodMillis``; clients tick with the period they were registered
/// with, so heart-beat decisions (``StompHeartBeatClock/tick(now:periodMillis:)``) stay exact.
/// The client list is confined to the loop; only the registry lookup at connect takes a lock.
final class StompHeartBeatTicker: @unchecked Sendable {
    /// Longest tick period: a beat goes out at most this much before it is due.
    static let maxPeriodMillis: UInt64 = 1000

    private struct Key: Hashable {
        let loop: ObjectIdentifier
        let period: UInt64
    }
    private static let registry = Mutex<[Key: StompHeartBeatTicker]>([:])

    let loop: EventLoop
    let periodMillis: UInt64
    private var clients: [StompClient] = []
    private var timer: LoopTimer?

    private init(loop: EventLoop, periodMillis: UInt64) {
        self.loop = loop
        self.periodMillis = periodMillis
    }

    /// The ticker of `loop` for `periodMillis` (created on first use; lives as long as the process,
    /// its timer only while it has clients).
    static func ticker(for loop: EventLoop, periodMillis: UInt64) -> StompHeartBeatTicker {
        let p = max(1, periodMillis)
        return registry.withLock { r in
            let key = Key(loop: ObjectIdentifier(loop), period: p)
            if let t = r[key] { return t }
            let t = StompHeartBeatTicker(loop: loop, periodMillis: p)
            r[key] = t
            return t
        }
    }

    /// Registers a client (on the loop).
    func add(_ client: StompClient) {
        guard client.heartBeatSlot < 0 else { return }
        client.heartBeatSlot = clients.count
        clients.append(client)
        if timer == nil {
            timer = loop.scheduleRepeating(every: .milliseconds(Int64(periodMillis))) { [weak self] in self?.fire() }
        }
    }

    /// Unregisters a client (on the loop); O(1) by swapping the last client into its slot.
    func remove(_ client: StompClient) {
        let i = client.heartBeatSlot
        guard i >= 0, i < clients.count, clients[i] === client else { return }
        let last = clients.removeLast()
        if i < clients.count {
            clients[i] = last
            last.heartBeatSlot = i
        }
        client.heartBeatSlot = -1
        if clients.isEmpty {
            timer?.cancel()
            timer = nil
            clients = []
        }
    }

    private func fire() {
        let now = monotonicNanos()
        // A tick can close its client (silent server), which removes it: walk a snapshot.
        let snapshot = clients
        for c in snapshot { c.heartBeatTick(now: now, periodMillis: periodMillis) }
    }
}
