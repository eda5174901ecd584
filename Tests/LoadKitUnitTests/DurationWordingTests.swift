import Testing
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Durations in messages read as a person writes them: a held-out user's 300 ms time-out was
/// reported as "timed out after 0.30000000000000004 s".
@Suite struct DurationWordingTests {
    @Test func durationsAreWrittenInTheirUnitWithoutFloatingPointNoise() {
        #expect(Duration.milliseconds(300).readable == "300 ms")
        #expect(Duration.milliseconds(12.5).readable == "12.5 ms")
        #expect(Duration.microseconds(250).readable == "250 µs")
        #expect(Duration.nanoseconds(1_500).readable == "1.5 µs")
        #expect(Duration.nanoseconds(3).readable == "3 ns")
        #expect(Duration.seconds(1.5).readable == "1.5 s")
        #expect(Duration.seconds(10).readable == "10 s")
        #expect(Duration.seconds(0.1 + 0.2).readable == "300 ms")
        #expect(Duration.seconds(90).readable == "90 s")
        #expect(Duration.seconds(3_600).readable == "3600 s")
        #expect(Duration.zero.readable == "0 s")
        #expect(Duration.milliseconds(-5).readable == "-5 ms")
        // Rounding that reaches the next unit moves up to it.
        #expect(Duration.nanoseconds(999_999_500).readable == "1 s")
        #expect(Duration.nanoseconds(999_999_499).readable == "999.999 ms")
        #expect(Duration.nanoseconds(999_999).readable == "999.999 µs")
        #expect(Duration.milliseconds(1999.9996).readable == "2 s")
        // Any duration prints, however long (whole seconds are not multiplied out).
        #expect(Duration.seconds(Int64.max).readable == "9223372036854775807 s")
        #expect(Duration.seconds(Int64.max / 2).readable == "4611686018427387903 s")
        #expect(Duration.seconds(-90).readable == "-90 s")
        #expect(Duration.seconds(18_446_745).readable == "18446745 s")
    }

    /// A very long time-out stays very long: its nanoseconds saturate instead of wrapping (a
    /// deadline of now + a wrapped value lay in the past, and the time-out fired at once).
    @Test func longDurationsSaturateInsteadOfWrapping() async throws {
        #expect(Duration.seconds(Int64.max).nanoseconds == 1 << 62)
        #expect(Duration.seconds(Int64.max / 2).nanoseconds == 1 << 62)
        #expect(Duration.seconds(10).nanoseconds == 10_000_000_000)
        #expect(Duration.milliseconds(-5).nanoseconds == 0)
        #expect(monotonicNanos() &+ Duration.seconds(Int64.max).nanoseconds > monotonicNanos())
        let loop = EventLoopGroup.shared.next()
        let fired = Wakeup()
        let timer = loop.schedule(after: .seconds(Int64.max / 2)) { fired.fire(true) }
        defer { timer.cancel() }
        let early = loop.schedule(after: .milliseconds(50)) { fired.fire(false) }
        defer { early.cancel() }
        #expect(await fired.wait() == false, "the 50 ms timer fires first; the endless one not at all")
    }

    @Test func aRunCutAtItsCapSaysTheCapAsGiven() {
        // The runner hands the cap over as a Double made from nanoseconds.
        let cap = Duration.nanoseconds(300_000_000).seconds
        #expect(Interruption.deadline(capSeconds: cap).text == "deadline: the run reached its cap of 0.3 s")
    }

    @Test func timeOutMessagesSayTheTimeOutAsGiven() {
        let http = HTTPError.timeout(after: .milliseconds(300), endpoint: "http://127.0.0.1:8080/")
        #expect(http.description == "HTTP request to http://127.0.0.1:8080/ timed out after 300 ms")
    }
}
