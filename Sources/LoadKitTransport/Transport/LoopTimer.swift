import Synchronization

/// A one-shot or repeating timer on an ``EventLoop``.
package final class LoopTimer: @unchecked Sendable {
    let loop: EventLoop
    var deadline: UInt64
    let interval: UInt64
    var work: (() -> Void)?
    var heapIndex = -1
    var sequence: UInt64 = 0
    /// Keeps its work after firing, to be armed again (``EventLoop/makeTimer(_:)``).
    let rearmable: Bool

    init(loop: EventLoop, deadline: UInt64, interval: UInt64, rearmable: Bool = false, work: @escaping () -> Void) {
        self.loop = loop
        self.deadline = deadline
        self.interval = interval
        self.rearmable = rearmable
        self.work = work
    }

    /// Stops the timer; safe to call more than once, and from any thread (off the loop it takes
    /// effect in the loop's next turn).
    public func cancel() { loop.cancel(self) }
}

/// A binary min-heap of timers by (deadline, insertion order): equal deadlines fire in the order
/// they were scheduled. Loop-confined.
struct TimerHeap {
    private var items: [LoopTimer] = []
    private var nextSequence: UInt64 = 0

    var count: Int { items.count }
    var first: LoopTimer? { items.first }

    mutating func insert(_ t: LoopTimer) {
        if t.heapIndex >= 0 { remove(t) }
        guard t.work != nil else { return }
        nextSequence &+= 1
        t.sequence = nextSequence
        t.heapIndex = items.count
        items.append(t)
        up(items.count - 1)
    }

    mutating func popFirst() {
        guard !items.isEmpty else { return }
        remove(items[0])
    }

    mutating func remove(_ t: LoopTimer) {
        let i = t.heapIndex
        guard i >= 0, i < items.count, items[i] === t else { return }
        t.heapIndex = -1
        let last = items.removeLast()
        guard i < items.count else { return }
        items[i] = last
        last.heapIndex = i
        down(i)
        up(last.heapIndex)
    }

    private func less(_ a: LoopTimer, _ b: LoopTimer) -> Bool {
        a.deadline != b.deadline ? a.deadline < b.deadline : a.sequence < b.sequence
    }

    private mutating func up(_ start: Int) {
        var i = start
        while i > 0 {
            let p = (i - 1) / 2
            guard less(items[i], items[p]) else { break }
            items.swapAt(i, p)
            items[i].heapIndex = i
            items[p].heapIndex = p
            i = p
        }
    }

    private mutating func down(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && less(items[l], items[m]) { m = l }
            if r < items.count && less(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            items[i].heapIndex = i
            items[m].heapIndex = m
            i = m
        }
    }
}

/// A fixed set of event loops, one per core by default; connections and virtual users are spread
/// over them round-robin. When the group is released, its loops' threads end once they have
/// nothing left to do.
