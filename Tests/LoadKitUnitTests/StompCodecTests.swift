import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Deterministic generator for split points and fuzz input (fixed seed: failures reproduce).
typealias StompTestRNG = SeededRandom

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

private func parseAll(_ input: [UInt8], peer: FailureSource = .server,
                      limits: StompFrameParser.Limits = .init()) throws -> [StompFrame] {
    var p = StompFrameParser(peer: peer, limits: limits)
    return try p.frames(from: input)
}

/// Feeds `input` in chunks cut at the given points.
private func parseSplit(_ input: [UInt8], cuts: [Int]) throws -> [StompFrame] {
    var p = StompFrameParser(peer: .server)
    var out: [StompFrame] = []
    var start = 0
    for c in cuts.sorted() + [input.count] where c >= start {
        try p.parse(Array(input[start..<c])) { out.append($0) }
        start = c
    }
    return out
}

@Suite struct StompCodecTests {
    static let sample: [StompFrame] = [
        StompFrame(.connect, headers: [("accept-version", "1.2"), ("host", "vhost"), ("login", "a:b"), ("passcode", "p\\w")]),
        StompFrame(.connected, headers: [("version", "1.2"), ("heart-beat", "0,0")]),
        StompFrame(.send, headers: [("destination", "/topic/a:b"), ("x-weird", "line1\nline2\r\\end")], text: "hello"),
        StompFrame(.message, headers: [("destination", "/topic/x"), ("message-id", "m-1"), ("subscription", "s0")],
                   body: [1, 0, 2, 0, 0, 3]),
        StompFrame(.receipt, headers: [("receipt-id", "r-77")]),
        StompFrame(.error, headers: [("message", "bad: thing")], text: "details\n"),
        StompFrame(.subscribe, headers: [("id", "0"), ("destination", "/q"), ("ack", "client-individual")]),
        StompFrame(.disconnect, headers: [("receipt", "bye")]),
        StompFrame(.send, headers: [("destination", "/empty")]),
        StompFrame(.message, headers: [("destination", "/big")], body: (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }),
    ]

    @Test func roundTripEveryFrame() throws {
        for f in Self.sample {
            let wire = StompFrameEncoder.encode(f)
            let back = try parseAll(wire)
            #expect(back.count == 1)
            var expected = f
            // The encoder adds content-length; compare without it.
            var got = back[0]
            got.removeHeader("content-length")
            expected.removeHeader("content-length")
            #expect(got == expected, "\(f.command)")
        }
    }

    @Test func descriptionHidesCredentials() {
        let f = StompFrame(.connect, headers: [("login", "bob"), ("passcode", "hunter22"), ("Authorization", "Bearer abc123")])
        #expect(f.description.contains("login:bob"))
        #expect(!f.description.contains("hunter22"))
        #expect(!f.description.contains("abc123"))
    }

    @Test func escapingOnTheWire() {
        let send = StompFrameEncoder.encode(StompFrame(.send, headers: [("a:b", "c\nd\re\\f")]))
        #expect(String(decoding: send, as: UTF8.self) == "SEND\na\\cb:c\\nd\\re\\\\f\ncontent-length:0\n\n\0")
        // CONNECT and CONNECTED are not escaped.
        let connect = StompFrameEncoder.encode(StompFrame(.connect, headers: [("passcode", "a:b\\c")]))
        #expect(String(decoding: connect, as: UTF8.self) == "CONNECT\npasscode:a:b\\c\n\n\0")
    }

    @Test func contentLengthRules() throws {
        let empty = String(decoding: StompFrameEncoder.encode(StompFrame(.subscribe, headers: [("id", "1")])), as: UTF8.self)
        #expect(!empty.contains("content-length"))
        let body = String(decoding: StompFrameEncoder.encode(StompFrame(.send, headers: [("content-length", "999")], text: "abc")), as: UTF8.self)
        #expect(body == "SEND\ncontent-length:3\n\nabc\0")
        // A body with NULs survives through content-length.
        let f = try parseAll(StompFrameEncoder.encode(StompFrame(.send, body: [0, 0, 65, 0])))
        #expect(f[0].body == [0, 0, 65, 0])
    }

    @Test func unescapingOnParse() throws {
        let f = try parseAll(bytes("MESSAGE\nk\\c1:v\\n\\r\\\\\\c\n\nx\0"))
        #expect(f[0]["k:1"] == "v\n\r\\:")
        // CONNECTED keeps backslashes literally.
        let c = try parseAll(bytes("CONNECTED\nserver:a\\cb\n\n\0"))
        #expect(c[0]["server"] == "a\\cb")
    }

    @Test(arguments: ["MESSAGE\nk:a\\tb\n\n\0", "MESSAGE\nk:ab\\\n\n\0", "SEND\nno-colon\n\n\0",
                      "lower\n\n\0", "SEND\ncontent-length:abc\n\n\0", "SEND\ncontent-length:2\n\nabc\0",
                      "\rX"])
    func malformedInputIsAClassifiedError(input: String) {
        do {
            _ = try parseAll(bytes(input), peer: .server)
            Issue.record("accepted \(input.debugDescription)")
        } catch let e as StompError {
            #expect(e.kind == "stomp_malformed")
            #expect(e.source == .server)
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func serverRoleBlamesTheClient() {
        var p = StompFrameParser(peer: .loadGenerator)
        #expect(throws: StompError.malformed("header line without ':'", source: .loadGenerator)) {
            _ = try p.frames(from: bytes("SEND\nbad\n\n\0"))
        }
        // Failed parsers stay failed.
        #expect(throws: StompError.self) { _ = try p.frames(from: bytes("\n")) }
    }

    @Test func firstHeaderOccurrenceWins() throws {
        let f = try parseAll(bytes("MESSAGE\nfoo:1\nfoo:2\ncontent-length:1\ncontent-length:5\n\nx\0"))
        #expect(f[0]["foo"] == "1")
        #expect(f[0].body == [0x78])
        #expect(f[0].headers.count == 4)
        #expect(f[0].header("foo", equals: "1"))
        #expect(Array(f[0].headerValueBytes("foo") ?? []) == [0x31])
        #expect(f[0]["missing"] == nil)
    }

    @Test func heartBeatsCRLFAndEOLsAfterNul() throws {
        var p = StompFrameParser(peer: .server)
        let input = bytes("\n\r\n\nMESSAGE\r\ndestination:/a\r\n\r\nbody\0\n\n\r\nRECEIPT\nreceipt-id:9\n\n\0\r\n")
        let f = try p.frames(from: input)
        #expect(f.map(\.command) == [.message, .receipt])
        #expect(f[0]["destination"] == "/a")
        #expect(f[0].bodyText == "body")
        #expect(f[1]["receipt-id"] == "9")
        #expect(p.heartBeats == 7)
        #expect(p.isIdle)
    }

    @Test func byteByByteAndRandomSplitsGiveTheSameFrames() throws {
        var wire: [UInt8] = []
        for f in Self.sample { StompFrameEncoder.encode(f, into: &wire); wire.append(0x0A) }
        let whole = try parseAll(wire)
        #expect(whole.count == Self.sample.count)
        // Byte by byte (skip the 70 kB body for speed: take the first frames only).
        let small = Array(wire[0..<(wire.count - 70_100)])
        let expectedSmall = try parseAll(small)
        #expect(try parseSplit(small, cuts: Array(1..<small.count)) == expectedSmall)
        var rng = StompTestRNG(seed: 42)
        for _ in 0..<200 {
            let cuts = (0..<Int.random(in: 1...20, using: &rng)).map { _ in Int.random(in: 0...wire.count, using: &rng) }
            #expect(try parseSplit(wire, cuts: cuts) == whole)
        }
    }

    @Test func limitsAreEnforced() {
        let limits = StompFrameParser.Limits(maxLineLength: 64, maxHeaders: 3, maxBodySize: 100)
        func kindOf(_ s: [UInt8]) -> String? {
            do { _ = try parseAll(s, limits: limits); return nil } catch { return error.loadKitKind }
        }
        #expect(kindOf(bytes("SEND\nk:" + String(repeating: "v", count: 100) + "\n\n\0")) == "stomp_malformed")
        #expect(kindOf(bytes("SEND\nk:" + String(repeating: "v", count: 100))) == "stomp_malformed") // no EOL yet
        #expect(kindOf(bytes("SEND\na:1\nb:2\nc:3\nd:4\n\n\0")) == "stomp_malformed")
        #expect(kindOf(bytes("SEND\ncontent-length:101\n\n")) == "stomp_malformed")
        #expect(kindOf(bytes("SEND\n\n") + [UInt8](repeating: 65, count: 101)) == "stomp_malformed")
        #expect(kindOf(bytes("SEND\na:1\nb:2\nc:3\n\n" + String(repeating: "x", count: 100) + "\0")) == nil)
    }

    @Test func fuzzNeverCrashesOrHangs() {
        var rng = StompTestRNG(seed: 7)
        var seeds: [[UInt8]] = []
        for f in Self.sample.prefix(9) { seeds.append(StompFrameEncoder.encode(f)) }
        let alphabet: [UInt8] = [0, 0x0A, 0x0D, 0x3A, 0x5C, 0x41, 0x6E, 0x63, 0x31]
        let limits = StompFrameParser.Limits(maxLineLength: 256, maxHeaders: 16, maxBodySize: 4096)
        var frames = 0, errors = 0
        for i in 0..<3000 {
            var input: [UInt8]
            if i % 3 == 0 {
                input = (0..<Int.random(in: 0...300, using: &rng)).map { _ in
                    Bool.random(using: &rng) ? UInt8.random(in: 0...255, using: &rng) : alphabet.randomElement(using: &rng)!
                }
            } else {
                input = seeds.randomElement(using: &rng)! + seeds.randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    let at = Int.random(in: 0..<input.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: input[at] = alphabet.randomElement(using: &rng)!
                    case 1: input.remove(at: at)
                    default: input.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                    }
                }
            }
            var p = StompFrameParser(peer: .server, limits: limits)
            do {
                try p.parse(input) { f in
                    frames += 1
                    #expect(f.body.count <= limits.maxBodySize)
                    #expect(f.headerCount <= limits.maxHeaders)
                }
            } catch let e as StompError {
                errors += 1
                #expect(e.kind == "stomp_malformed")
            } catch { Issue.record("unexpected \(error)") }
        }
        #expect(frames > 100)
        #expect(errors > 100)
    }
}
