import Testing
import LoadKit
@testable import LoadKitFixtures

/// The differential fuzzer behind `loadkit fuzz`, bounded for CI: each parser's inputs give the
/// same outcome whole and split, and the inputs reach both values and errors (not only one side).
@Suite struct ParserFuzzTests {
    @Test(arguments: ParserFuzz.Target.allCases)
    func wholeAndSplitAgree(target: ParserFuzz.Target) {
        let r = ParserFuzz.run(target, seed: 0x13, count: 1500)
        #expect(r.inputs == 1500)
        #expect(r.mismatches.isEmpty, "\(r.mismatches.prefix(3))")
        #expect(r.values > 200, "inputs parse to values")
        #expect(r.errors.values.reduce(0, +) > 200 && r.incomplete > 50, "and end in errors and in waiting for more")
    }

    /// The comparison can see a difference, and an input is reproducible from (seed, index).
    @Test func outcomesDistinguishAndReproduce() {
        let a = Array("MESSAGE\ndestination:/a\n\nx\0".utf8), b = Array("MESSAGE\ndestination:/a\n\ny\0".utf8)
        #expect(ParserFuzz.outcome(.stomp, a, splits: [a.count]) != ParserFuzz.outcome(.stomp, b, splits: [b.count]))
        #expect(ParserFuzz.outcome(.stomp, a, splits: [a.count]) == ParserFuzz.outcome(.stomp, a, splits: Array(repeating: 1, count: a.count)))
        #expect(ParserFuzz.input(.webSocket, seed: 9, index: 77) == ParserFuzz.input(.webSocket, seed: 9, index: 77))
    }
}
