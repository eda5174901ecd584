import Testing
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
    }

    @Test func timeOutMessagesSayTheTimeOutAsGiven() {
        let http = HTTPError.timeout(after: .milliseconds(300), endpoint: "http://127.0.0.1:8080/")
        #expect(http.description == "HTTP request to http://127.0.0.1:8080/ timed out after 300 ms")
    }
}
