import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Collects frames, then messages, from a parser + assembler pair (what the connection does).
struct WSFrameSink {
    var parser: WebSocketFrameParser
    var assembler: WebSocketMessageAssembler
    var frames: [WebSocketFrame] = []
    var messages: [(WebSocketOpcode, [UInt8])] = []

    init(role: WebSocketRole, maxFrame: Int = 16 << 20, maxMessage: Int = 16 << 20) {
        parser = WebSocketFrameParser(role: role, maxFrameSize: maxFrame)
        assembler = WebSocketMessageAssembler(maxMessageSize: maxMessage)
    }

    mutating func feed(_ bytes: [UInt8]) throws(WebSocketProtocolError) {
        var copy = bytes
        var failure: WebSocketProtocolError?
        var frames: [WebSocketFrame] = []
        var messages: [(WebSocketOpcode, [UInt8])] = []
        var asm = assembler
        let result = copy.withUnsafeMutableBytes { p in
            Result { () throws(WebSocketProtocolError) in
                try parser.parse(p) { h, payload in
                    frames.append(WebSocketFrame(fin: h.fin, rsv: h.rsv, opcode: h.opcode, maskKey: h.maskKey, payload: Array(payload)))
                    guard failure == nil else { return }
                    do throws(WebSocketProtocolError) {
                        try asm.push(h, UnsafeRawBufferPointer(payload)) { op, p in messages.append((op, Array(p))) }
                    } catch { failure = error }
                }
            }
        }
        assembler = asm
        self.frames += frames
        self.messages += messages
        if case .failure(let e) = result { throw e }
        if let failure { throw failure }
    }
}

func wsFrameBytes(_ op: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true, masked: Bool = false, rsv: UInt8 = 0) -> [UInt8] {
    var out: [UInt8] = []
    WebSocketFrameEncoder.encode(into: &out, fin: fin, rsv: rsv, opcode: op,
                                 maskKey: masked ? WebSocketMaskKey(0x12, 0x34, 0x56, 0x78) : nil, payload: payload)
    return out
}

func wsHex(_ b: [UInt8]) -> String { b.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() }

@Suite struct WebSocketCodecTests {
    // MARK: SHA-1 and base64

    @Test func sha1FIPSVectors() {
        #expect(wsHex(SHA1.hash(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(wsHex(SHA1.hash([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(wsHex(SHA1.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(wsHex(SHA1.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)))
                == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        // 55, 56 and 64 bytes: padding edge cases around the length field.
        #expect(wsHex(SHA1.hash([UInt8](repeating: 0x61, count: 64))) == "0098ba824b5c16427bd7a1122a5a442a25ec644d")
    }

    @Test func rfc6455AcceptVector() {
        #expect(WebSocketHandshakeKeys.accept(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func base64RoundTripAndStrictness() {
        #expect(Base64.encode(Array("".utf8)) == "")
        #expect(Base64.encode(Array("f".utf8)) == "Zg==")
        #expect(Base64.encode(Array("fo".utf8)) == "Zm8=")
        #expect(Base64.encode(Array("foo".utf8)) == "Zm9v")
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Base64.decode("Zm9vYmE=") == Array("fooba".utf8))
        #expect(Base64.decode("Zg==") == Array("f".utf8))
        var g = SystemRandomNumberGenerator()
        for n in 0..<40 {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.decode("Zg=") == nil)
        #expect(Base64.decode("Z===") == nil)
        #expect(Base64.decode("Zg==Zg==") == nil)
        #expect(Base64.decode("Zm9v!") == nil)
        #expect(Base64.decode("Zm=v") == nil)
    }

    // MARK: frames

    @Test(arguments: [0, 1, 125, 126, 127, 65535, 65536, 1 << 20])
    func roundTripAllLengthForms(length: Int) throws {
        let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        for masked in [false, true] {
            let bytes = wsFrameBytes(.binary, payload, masked: masked)
            let expectedHeader = 2 + (length < 126 ? 0 : length <= 65535 ? 2 : 8) + (masked ? 4 : 0)
            #expect(bytes.count == expectedHeader + length)
            var parser = WebSocketFrameParser(role: masked ? .server : .client)
            let frames = try parser.parse(bytes)
            #expect(frames.count == 1)
            #expect(frames.first?.payload == payload)
            #expect(frames.first?.opcode == .binary)
            #expect(frames.first?.header.maskKey == (masked ? WebSocketMaskKey(0x12, 0x34, 0x56, 0x78) : nil))
            if masked && length > 0 { #expect(Array(bytes[expectedHeader...]) != payload) }
        }
    }

    @Test func maskingIsItsOwnInverseAtEveryPhaseAndLength() {
        let key = WebSocketMaskKey(0xA1, 0xB2, 0xC3, 0xD4)
        let kb: [UInt8] = [0xA1, 0xB2, 0xC3, 0xD4]
        for n in 0..<40 {
            for phase in 0..<4 {
                let original = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 13) }
                var data = original
                data.withUnsafeMutableBytes { _ = webSocketApplyMask($0, key: key, phase: phase) }
                let expected = original.enumerated().map { $0.element ^ kb[($0.offset + phase) & 3] }
                #expect(data == expected)
                data.withUnsafeMutableBytes { _ = webSocketApplyMask($0, key: key, phase: phase) }
                #expect(data == original)
            }
        }
    }

    @Test func byteByByteAndRandomSplits() throws {
        var stream: [UInt8] = []
        var expected: [[UInt8]] = []
        for (i, n) in [0, 5, 125, 126, 300, 65535, 65536, 70000].enumerated() {
            let p = (0..<n).map { UInt8(truncatingIfNeeded: $0 &+ i) }
            expected.append(p)
            stream += wsFrameBytes(.binary, p, masked: true)
        }
        // Byte by byte.
        var sink = WSFrameSink(role: .server)
        for b in stream { try sink.feed([b]) }
        #expect(sink.messages.map(\.1) == expected)
        // Random splits with a fixed seed.
        var rng = WSSeededRandom(seed: 42)
        for _ in 0..<20 {
            var s = WSFrameSink(role: .server)
            var i = 0
            while i < stream.count {
                let n = min(stream.count - i, Int(rng.next() % 9000) + 1)
                try s.feed(Array(stream[i..<(i + n)]))
                i += n
            }
            #expect(s.messages.map(\.1) == expected)
            #expect(s.parser.bufferedBytes == 0)
        }
    }

    @Test func fragmentationWithInterleavedPing() throws {
        var sink = WSFrameSink(role: .client)
        try sink.feed(wsFrameBytes(.text, Array("Hel".utf8), fin: false))
        try sink.feed(wsFrameBytes(.ping, [1, 2]))
        try sink.feed(wsFrameBytes(.continuation, Array("lo, ".utf8), fin: false) + wsFrameBytes(.pong, []))
        try sink.feed(wsFrameBytes(.continuation, Array("wörld".utf8), fin: true))
        #expect(sink.messages.map(\.0) == [.ping, .pong, .text])
        #expect(sink.messages.last?.1 == Array("Hello, wörld".utf8))
        // Binary fragments, one empty.
        try sink.feed(wsFrameBytes(.binary, [1], fin: false) + wsFrameBytes(.continuation, [], fin: false) + wsFrameBytes(.continuation, [2, 3]))
        #expect(sink.messages.last?.0 == .binary)
        #expect(sink.messages.last?.1 == [1, 2, 3])
    }

    // MARK: UTF-8

    @Test func utf8ValidatorAcceptsAndRejects() {
        func ok(_ b: [UInt8]) -> Bool {
            var v = UTF8Validator()
            return b.withUnsafeBytes { v.validate($0) } && v.isComplete
        }
        #expect(ok(Array("κόσμε plain ascii 0123456789 𝄞 中文".utf8)))
        #expect(!ok([0xC0, 0x80]))                // overlong
        #expect(!ok([0xE0, 0x80, 0x80]))          // overlong
        #expect(!ok([0xED, 0xA0, 0x80]))          // surrogate
        #expect(!ok([0xF4, 0x90, 0x80, 0x80]))    // > U+10FFFF
        #expect(!ok([0xF5, 0x80, 0x80, 0x80]))
        #expect(!ok([0xFF]))
        #expect(!ok([0x80]))
        #expect(!ok([0xE2, 0x82]))                // truncated
        #expect(ok([0xF4, 0x8F, 0xBF, 0xBF]))
        #expect(ok([0xED, 0x9F, 0xBF]))
        // Against Swift's own decoder on random inputs, split at every point.
        var rng = WSSeededRandom(seed: 7)
        for _ in 0..<2000 {
            let n = Int(rng.next() % 12)
            let b = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next() % 3 == 0 ? rng.next() % 128 : rng.next()) }
            let swiftOK = String(validating: b, as: UTF8.self) != nil
            #expect(ok(b) == swiftOK)
            for cut in 0...n {
                var v = UTF8Validator()
                let a = Array(b[..<cut]).withUnsafeBytes { v.validate($0) }
                let c = a && Array(b[cut...]).withUnsafeBytes { v.validate($0) }
                #expect((c && v.isComplete) == swiftOK)
            }
        }
    }

    @Test func invalidUTF8InTextFails1007EvenSplitAcrossFragments() {
        var sink = WSFrameSink(role: .client)
        #expect(throws: WebSocketProtocolError.invalidData("text message is not valid UTF-8")) {
            try sink.feed(wsFrameBytes(.text, [0x61, 0xFF]))
        }
        // "€" = E2 82 AC split over fragments is fine ...
        var ok = WSFrameSink(role: .client)
        #expect(throws: Never.self) {
            try ok.feed(wsFrameBytes(.text, [0x61, 0xE2], fin: false) + wsFrameBytes(.continuation, [0x82], fin: false)
                        + wsFrameBytes(.continuation, [0xAC]))
        }
        #expect(ok.messages.first?.1 == Array("a€".utf8))
        // ... but a bad continuation in the second fragment fails at once, before fin.
        var bad = WSFrameSink(role: .client)
        do {
            try bad.feed(wsFrameBytes(.text, [0x61, 0xE2], fin: false))
            try bad.feed(wsFrameBytes(.continuation, [0x41], fin: false))
            Issue.record("bad continuation accepted")
        } catch { #expect(error.closeCode == 1007) }
        // A message ending in the middle of a sequence fails.
        var cut = WSFrameSink(role: .client)
        do {
            try cut.feed(wsFrameBytes(.text, [0x61, 0xE2], fin: false) + wsFrameBytes(.continuation, [0x82]))
            Issue.record("truncated text accepted")
        } catch { #expect(error.closeCode == 1007) }
    }

    // MARK: violations

    @Test func everyViolationHasItsCloseCode() {
        let cases: [(String, WebSocketRole, [UInt8], UInt16)] = [
            ("rsv1", .client, wsFrameBytes(.text, [], rsv: 4), 1002),
            ("rsv3", .client, wsFrameBytes(.binary, [1], rsv: 1), 1002),
            ("reserved data opcode", .client, wsFrameBytes(WebSocketOpcode(rawValue: 3), []), 1002),
            ("reserved control opcode", .client, wsFrameBytes(WebSocketOpcode(rawValue: 0xB), []), 1002),
            ("fragmented ping", .client, wsFrameBytes(.ping, [], fin: false), 1002),
            ("ping > 125", .client, wsFrameBytes(.ping, [UInt8](repeating: 0, count: 126)), 1002),
            ("unmasked to server", .server, wsFrameBytes(.text, Array("hi".utf8)), 1002),
            ("masked to client", .client, wsFrameBytes(.text, Array("hi".utf8), masked: true), 1002),
            ("continuation without start", .client, wsFrameBytes(.continuation, [1]), 1002),
            ("new message inside fragmented", .client, wsFrameBytes(.text, [0x61], fin: false) + wsFrameBytes(.binary, [1]), 1002),
            ("64-bit length high bit", .client, [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1], 1002),
            ("frame too big", .client, [0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0], 1009),
        ]
        for (name, role, bytes, code) in cases {
            var sink = WSFrameSink(role: role)
            do {
                try sink.feed(bytes)
                Issue.record("\(name): accepted")
            } catch {
                #expect(error.closeCode == code, "\(name)")
            }
        }
        // The message limit applies to the sum of fragments.
        var small = WSFrameSink(role: .client, maxMessage: 10)
        do {
            try small.feed(wsFrameBytes(.binary, [UInt8](repeating: 1, count: 6), fin: false))
            try small.feed(wsFrameBytes(.continuation, [UInt8](repeating: 1, count: 6)))
            Issue.record("oversized message accepted")
        } catch { #expect(error.closeCode == 1009) }
        // The frame limit is checked from the header, before the payload is buffered.
        var p = WebSocketFrameParser(role: .client, maxFrameSize: 1000)
        #expect(throws: WebSocketProtocolError.self) { _ = try p.parse([0x82, 126, 0x03, 0xE9]) }
        #expect(p.bufferedBytes == 0)
        // A failed parser stays failed.
        #expect(throws: WebSocketProtocolError.self) { _ = try p.parse(wsFrameBytes(.binary, [1])) }
    }

    @Test func closePayloadCodes() throws {
        func parse(_ b: [UInt8]) throws(WebSocketProtocolError) -> (UInt16?, String) {
            let r = b.withUnsafeBytes { p in Result { () throws(WebSocketProtocolError) in try WebSocketClosePayload.parse(p) } }
            let v = try r.get()
            return (v.code, v.reason)
        }
        #expect(try parse([]) == (nil, ""))
        #expect(try parse([0x03, 0xE8]) == (1000, ""))
        #expect(try parse(WebSocketClosePayload.make(code: 4000, reason: "TIMEOUT")) == (4000, "TIMEOUT"))
        for bad: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            #expect(throws: WebSocketProtocolError.self, "\(bad)") { _ = try parse([UInt8(bad >> 8), UInt8(bad & 0xFF)]) }
        }
        for good: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 3000, 4999] {
            #expect(try parse([UInt8(good >> 8), UInt8(good & 0xFF)]).0 == good)
        }
        #expect(throws: WebSocketProtocolError.self) { _ = try parse([0x03]) }
        do { _ = try parse([0x03, 0xE8, 0xFF]); Issue.record("bad reason accepted") } catch { #expect(error.closeCode == 1007) }
        // Reasons are cut to 123 bytes at a character boundary.
        let long = WebSocketClosePayload.make(code: 1000, reason: String(repeating: "é", count: 100))
        #expect(long.count == 2 + 122)
        #expect(WebSocketClosePayload.make(code: nil, reason: "x").isEmpty)
    }

    @Test func boundedFuzzNeverCrashesOrHangs() {
        var rng = WSSeededRandom(seed: 2024)
        var seeds: [[UInt8]] = [
            wsFrameBytes(.text, Array("hello".utf8), masked: true),
            wsFrameBytes(.binary, [UInt8](repeating: 7, count: 300), masked: true),
            wsFrameBytes(.ping, [1, 2, 3], masked: true),
            wsFrameBytes(.close, [3, 232, 0x62, 0x79, 0x65], masked: true),
            wsFrameBytes(.text, [0x61, 0xE2], fin: false, masked: true) + wsFrameBytes(.continuation, [0x82, 0xAC], masked: true),
        ]
        seeds.append(seeds.joined().map { $0 })
        var outcomes = (frames: 0, errors: 0)
        for iteration in 0..<3000 {
            var bytes: [UInt8]
            if iteration % 3 == 0 {
                bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
                for _ in 0..<(1 + Int(rng.next() % 4)) where !bytes.isEmpty {
                    let i = Int(rng.next() % UInt64(bytes.count))
                    switch rng.next() % 3 {
                    case 0: bytes[i] = UInt8(truncatingIfNeeded: rng.next())
                    case 1: bytes.remove(at: i)
                    default: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: i)
                    }
                }
            }
            for role in [WebSocketRole.server, .client] {
                var sink = WSFrameSink(role: role, maxFrame: 1 << 16, maxMessage: 1 << 16)
                do {
                    var i = 0
                    while i < bytes.count {
                        let n = min(bytes.count - i, 1 + Int(rng.next() % 16))
                        try sink.feed(Array(bytes[i..<(i + n)]))
                        i += n
                    }
                    outcomes.frames += sink.frames.count
                    #expect(sink.parser.bufferedBytes <= bytes.count)
                } catch {
                    outcomes.errors += 1
                    #expect([1002, 1007, 1009].contains(error.closeCode))
                }
            }
        }
        #expect(outcomes.frames > 100)
        #expect(outcomes.errors > 100)
    }
}

/// A small deterministic generator (splitmix64) for reproducible splits and fuzzing.
typealias WSSeededRandom = SeededRandom
