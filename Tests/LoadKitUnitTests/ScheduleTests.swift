import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

private let s: UInt64 = 1_000_000_000

@Suite struct ScheduleTests {
    @Test func seed000CumulativeStages() {
        let plan = StagePlan([
            Stage("initial", to: 300, over: .seconds(10)),
            Stage("peak", to: 600, over: .seconds(10)),
            Stage("final", to: 900, over: .seconds(10)),
        ])
        #expect(plan.totalNanos == 30 * s)
        #expect(plan.peakUsers == 900)
        #expect(plan.target(atNanos: 0) == 0)
        #expect(plan.target(atNanos: 5 * s) == 150)
        #expect(plan.target(atNanos: 10 * s) == 300)
        #expect(plan.target(atNanos: 15 * s) == 450)
        #expect(plan.target(atNanos: 29 * s) == 870)
        #expect(plan.target(atNanos: 30 * s) == 900)     // after the plan: last target
        #expect(plan.target(atNanos: 10 * s - 1) == 299) // truncated toward the stage's start
        #expect(plan.segment(atNanos: 12 * s)?.name == "peak")
        #expect(plan.heldSampleNanos == 30 * s)
    }

    @Test func relativeHoldAndRampDown() {
        let plan = StagePlan(buildStages {
            Stage("initial", to: 300, over: .seconds(10))
            Stage("peak", adding: 300, over: .seconds(10))
            Hold(.seconds(20))
            RampDown(over: .seconds(4))
        })
        #expect(plan.segments.map(\.to) == [300, 600, 600, 0])
        #expect(plan.target(atNanos: 25 * s) == 600)
        #expect(plan.target(atNanos: 41 * s) == 450)
        // Ramping down keeps a user until it is wholly due to leave.
        #expect(plan.target(atNanos: 40 * s + 1) == 600)
        #expect(plan.target(atNanos: 44 * s) == 0)
        // "Connections held" is measured at the end of the hold, before the ramp-down.
        #expect(plan.heldSampleNanos == 40 * s)
        #expect(plan.segment(atNanos: 30 * s)?.name == "hold")
    }

    @Test func zeroDurationStageJumps() {
        let plan = StagePlan([Stage("jump", to: 100, over: .zero), Hold(.seconds(1)).stage])
        #expect(plan.target(atNanos: 0) == 100)
        #expect(plan.target(atNanos: s / 2) == 100)
    }

    @Test func scalingKeepsShapeAndAtLeastOneUser() {
        let plan = StagePlan([Stage("a", to: 1000, over: .seconds(60)), Stage("b", to: 10, over: .seconds(10))])
        let scaled = StagePlan(plan.scaled(users: 0.05, duration: 0.5))
        #expect(scaled.segments.map(\.to) == [50, 1])
        #expect(scaled.totalNanos == 35 * s)
    }

    @Test func constantArrivalTimes() {
        let times = Array(ArrivalRate.constant(10, for: .seconds(2)).startTimes())
        #expect(times.count == 20)
        #expect(times.first == 0)
        #expect(times[1] == s / 10)
        #expect(times.last! < 2 * s)
        #expect(zip(times, times.dropFirst()).allSatisfy { $1 - $0 == s / 10 })
    }

    @Test func rampingArrivalTimesFollowTheIntegral() {
        // 0 → 100/s over 10 s = 500 iterations, then 100/s for 5 s = 500 more.
        let rate = ArrivalRate.ramping(from: 0, .to(100, over: .seconds(10)), .hold(.seconds(5)))
        #expect(rate.expectedIterations == 1000)
        #expect(rate.peakRate == 100)
        #expect(rate.rate(atNanos: 5 * s) == 50)
        let times = Array(rate.startTimes())
        #expect(times.count == 1000)
        #expect(zip(times, times.dropFirst()).allSatisfy { $0 <= $1 })
        // N(t) = 5 t² during the ramp: iteration 125 is due at t = 5 s.
        #expect(abs(Double(times[125]) / 1e9 - 5) < 0.001)
        // In the hold the spacing is 10 ms.
        #expect(times[900] - times[899] == 10_000_000)
        // Count in the first 5 s ≈ 125, in the last 5 s = 500.
        #expect(times.filter { $0 < 5 * s }.count == 125)
        #expect(times.filter { $0 >= 10 * s }.count == 500)
    }

    @Test func rampingDownRate() {
        let rate = ArrivalRate.ramping(from: 100, .to(0, over: .seconds(2)))
        let times = Array(rate.startTimes())
        #expect(times.count == 100)
        #expect(times.filter { $0 < s }.count == 75)
        #expect(rate.scaled(rate: 2, duration: 1).expectedIterations == 200)
    }

    @Test func burstsOfSeed004() {
        for n in [1, 1_000, 5_000, 10_000] {
            let b = Burst(n, over: .seconds(1))
            let offsets = (0..<n).map(b.offset(of:))
            #expect(offsets.first == 0)
            #expect(offsets.allSatisfy { $0 < s })
            #expect(zip(offsets, offsets.dropFirst()).allSatisfy { $0 <= $1 })
        }
        #expect(Burst(1000).offset(of: 999) == 0) // all at once
        #expect(Burst(1000, over: .seconds(1)).offset(of: 500) == s / 2)
    }

    @Test func backoffBaseDelaysDoubleAndCap() {
        let b = Backoff(initial: .seconds(1), maximum: .seconds(10), maxAttempts: 6)
        #expect((1...6).map { b.baseDelay(attempt: $0) } == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(10), .seconds(10)])
        let seed = Backoff()
        let seedDelays: [Double] = (1...5).map { seed.baseDelay(attempt: $0).seconds }
        #expect(seedDelays == [1, 2, 4, 8, 16])
        var rng = SeededRandom(seed: 1)
        #expect(seed.delay(attempt: 6, using: &rng) == nil)
        #expect(seed.delay(attempt: 0, using: &rng) == nil)
    }

    @Test func backoffJitterBoundsAndDistribution() {
        let b = Backoff(initial: .seconds(1), maximum: .seconds(30), maxAttempts: 5, jitter: 0.5)
        var rng = SeededRandom(seed: 42)
        for attempt in 1...5 {
            let base = b.baseDelay(attempt: attempt).seconds
            let samples = (0..<4000).map { _ in b.delay(attempt: attempt, using: &rng)!.seconds }
            #expect(samples.allSatisfy { $0 >= base * 0.5 - 1e-9 && $0 <= base * 1.5 + 1e-9 })
            let mean = samples.reduce(0, +) / Double(samples.count)
            #expect(abs(mean / base - 1) < 0.02)
            // Spread over the whole band: both quarters near the edges are used.
            #expect(samples.contains { $0 < base * 0.6 } && samples.contains { $0 > base * 1.4 })
        }
        // Same seed, same sequence.
        var a = SeededRandom(seed: 7), c = SeededRandom(seed: 7)
        #expect(b.delay(attempt: 3, using: &a) == b.delay(attempt: 3, using: &c))
        #expect(Backoff(jitter: 0).delay(attempt: 2, using: &a) == .seconds(2))
    }
}

private func buildStages(@StageBuilder _ b: () -> [Stage]) -> [Stage] { b() }
