import Testing
@testable import LoadKitEngine

/// `every`'s fixed-rate schedule (also written out by the chat worker's send loop).
@Suite struct TicksTests {
    @Test func onTimeTicksAdvanceOneIntervalAndCountNothing() {
        var t = Ticks(every: .milliseconds(10), from: 1_000_000_000)
        #expect(t.due == 1_000_000_000)
        #expect(t.advance(now: 1_002_000_000) == 0)   // the body took 2 ms
        #expect(t.due == 1_010_000_000)
        #expect(t.advance(now: 1_019_999_999) == 0)
        #expect(t.due == 1_020_000_000)
    }

    @Test func anOverrunSkipsThePastTicksAndCountsThem() {
        var t = Ticks(every: .milliseconds(10), from: 0)
        // The body ran 35 ms: the ticks due at 10, 20 and 30 ms are past; the next is at 40 ms.
        #expect(t.advance(now: 35_000_000) == 3)
        #expect(t.due == 40_000_000)
    }

    @Test func aWobbleBelowATenthOfTheIntervalIsSkippedButNotCounted() {
        var t = Ticks(every: .milliseconds(10), from: 0)
        // 0.5 ms past the tick at 10 ms (under a tenth of the interval): skipped, not an overrun.
        #expect(t.advance(now: 10_500_000) == 0)
        #expect(t.due == 20_000_000)
        // 1.5 ms past the tick at 30 ms: counted.
        #expect(t.advance(now: 31_500_000) == 1)
        #expect(t.due == 40_000_000)
    }
}
