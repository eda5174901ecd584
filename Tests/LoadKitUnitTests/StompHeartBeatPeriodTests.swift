import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Heart-beat decisions when the owner ticks at a period other than the negotiated tick interval
/// (the per-loop ticker ticks every second at most).
@Suite struct StompHeartBeatPeriodTests {
    let ms: UInt64 = 1_000_000

    @Test func shortPeriodSendsCloseToTheInterval() {
        let hb = StompHeartBeat(sendEveryMillis: 10_000, expectReceiveEveryMillis: 0, receiveTimeoutMillis: 0)
        let clock = StompHeartBeatClock(heartBeat: hb, now: 0)
        // Default period (the negotiated tick interval, 5 s): a beat is due from 5 s on.
        #expect(hb.tickIntervalMillis == 5_000)
        #expect(clock.tick(now: 5_000 * ms) == .sendHeartBeat)
        // With a 1 s period the beat waits until 9 s, so it never goes out twice per interval.
        #expect(clock.tick(now: 5_000 * ms, periodMillis: 1_000) == .none)
        #expect(clock.tick(now: 8_900 * ms, periodMillis: 1_000) == .none)
        #expect(clock.tick(now: 9_000 * ms, periodMillis: 1_000) == .sendHeartBeat)
    }

    @Test func silenceIsDetectedWhateverThePeriod() {
        let hb = StompHeartBeat.negotiate(own: (10_000, 10_000), peer: (10_000, 10_000))
        let clock = StompHeartBeatClock(heartBeat: hb, now: 0)
        #expect(clock.tick(now: 14_000 * ms, periodMillis: 1_000) != .peerSilent(silentMillis: 14_000))
        #expect(clock.tick(now: 15_001 * ms, periodMillis: 1_000) == .peerSilent(silentMillis: 15_001))
    }

    @Test func sessionForwardsThePeriod() {
        var s = StompClientSession(configuration: StompClientConfiguration(heartBeat: (.seconds(10), .seconds(10))), now: 0)
        // Not connected: no decisions at all.
        #expect(s.tick(now: 20_000 * ms, periodMillis: 1_000) == .none)
    }
}
