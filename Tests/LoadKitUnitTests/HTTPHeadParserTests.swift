import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

@Suite struct HTTPHeadParserTests {
    static let response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"

    @Test func parsesResponseHeadAndReportsConsumed() {
        var p = HTTPResponseHeadParser()
        let input = bytes(Self.response) + [0x81, 0x00]
        guard case .done(let head, let consumed) = p.parse(input) else { Issue.record("no head"); return }
        #expect(head.status == 101 && head.reason == "Switching Protocols" && head.version == .http1_1)
        #expect(head.headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(consumed == input.count - 2)
    }

    @Test func byteByByteAndRandomSplitsGiveTheSameHead() {
        let input = bytes(Self.response)
        var whole = HTTPResponseHeadParser()
        guard case .done(let expected, _) = whole.parse(input) else { Issue.record("no head"); return }
        var rng = SplitMix(seed: 7)
        for round in 0..<200 {
            var p = HTTPResponseHeadParser()
            var i = 0
            var got: HTTPResponseHead? = nil
            while i < input.count {
                let n = round == 0 ? 1 : Int(rng.next() % 20) + 1
                let chunk = Array(input[i..<min(input.count, i + n)])
                switch p.parse(chunk) {
                case .needMore: i += chunk.count
                case .done(let h, let c): got = h; i += c; #expect(i == input.count)
                case .failure(let e): Issue.record("\(e)"); return
                }
                if got != nil { break }
            }
            #expect(got == expected)
        }
    }

    @Test func bareLFAndLeadingBlankLinesAndFolding() {
        var p = HTTPRequestHeadParser()
        let input = bytes("\r\n\nGET /chat?x=1 HTTP/1.1\nHost: a\nX-Long: one\n  two\n\nrest")
        guard case .done(let head, let consumed) = p.parse(input) else { Issue.record("no head"); return }
        #expect(head.method == .GET && head.target == "/chat?x=1" && head.path == "/chat" && head.query == "x=1")
        #expect(head.headers["x-long"] == "one two")
        #expect(Array(input[consumed...]) == bytes("rest"))
        // A parser can be reused for the next head.
        guard case .done(let h2, _) = p.parse(bytes("POST / HTTP/1.0\r\n\r\n")) else { Issue.record("no 2nd head"); return }
        #expect(h2.method == .POST && h2.version == .http1_0 && !h2.keepAlive)
    }

    @Test(arguments: ["HTTP/1.1 20 OK\r\n\r\n", "HTTP/2.0 200 OK\r\n\r\n", "HTTQ/1.1 200 OK\r\n\r\n",
                      "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
                      "HTTP/1.1 200 OK\r\n: empty\r\n\r\n", "HTTP/1.1 200 OK\r\nX: a\u{1}b\r\n\r\n",
                      "HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n", " continuation\r\n\r\n"])
    func malformedResponseHeads(_ text: String) {
        var p = HTTPResponseHeadParser()
        guard case .failure(let e) = p.parse(bytes(text)) else { Issue.record("accepted \(text)"); return }
        #expect(e.kind == "http_malformed" && e.source == .server)
    }

    /// Each way a field line can be wrong is refused with its own message (the splitting's byte
    /// loops are C, `lk_http_split_head`; these pin what the Swift ones said).
    @Test func fieldErrorsNameTheirCause() {
        let cases: [(String, String)] = [
            ("HTTP/1.1 200 OK\r\n folded\r\n\r\n", "header continuation line without a header"),
            ("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "space in or after a header name"),
            ("HTTP/1.1 200 OK\r\nBad : x\r\n\r\n", "space in or after a header name"),
            ("HTTP/1.1 200 OK\r\nBa(d: x\r\n\r\n", "invalid character in header name"),
            ("HTTP/1.1 200 OK\r\nB\u{e9}: x\r\n\r\n", "invalid character in header name"),
            ("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "header line without ':'"),
            ("HTTP/1.1 200 OK\r\n: empty\r\n\r\n", "empty header name"),
            ("HTTP/1.1 200 OK\r\nX-A: 1\r\nX-Ctl: a\u{1}b\r\n\r\n", "invalid character in value of header 'X-Ctl'"),
            ("HTTP/1.1 200 OK\r\nX-Del: a\u{7f}\r\n\r\n", "invalid character in value of header 'X-Del'"),
            ("HTTP/1.1 200 OK\r\nX-CR: a\rb\r\n\r\n", "invalid character in value of header 'X-CR'"),
            ("HTTP/1.1 200 OK\r\nX-Fold: a\r\n b\u{0}\r\n\r\n", "invalid character in header 'X-Fold'"),
            ("HTTP/1.1 200 Fine\u{7f}\r\n\r\n", "invalid character in reason phrase"),
            ("HTTP/1.1 404 Not\u{1}Found Here\r\n\r\n", "invalid character in reason phrase"),
            // Long values (checked eight bytes at a time): a bad byte at every position of a word.
            ("HTTP/1.1 200 OK\r\nX-Long: abcdefghijklmnop\u{1}qrstuvwxyz\r\n\r\n", "invalid character in value of header 'X-Long'"),
            ("HTTP/1.1 200 OK\r\nX-Long: abcdefghijk\u{7f}lmnopqrstuvwxyz\r\n\r\n", "invalid character in value of header 'X-Long'"),
            ("HTTP/1.1 200 OK\r\nX-Long: caf\u{e9} caf\u{e9} caf\u{e9}\u{1f} caf\u{e9}\r\n\r\n", "invalid character in value of header 'X-Long'"),
        ] + (0..<17).map { k in
            ("HTTP/1.1 200 OK\r\nX-At: " + String(repeating: "v", count: k) + "\u{0}" + String(repeating: "w", count: 16 - k) + "\r\n\r\n",
             "invalid character in value of header 'X-At'")
        }
        for (text, message) in cases {
            var p = HTTPResponseHeadParser()
            guard case .failure(let e) = p.parse(bytes(text)) else { Issue.record("accepted \(text.debugDescription)"); continue }
            #expect(e == .malformed(message), "\(text.debugDescription)")
        }
    }

    /// Fields at the edges of what splitting allows: the shortest lines (one field per three
    /// bytes, bare LF), blanks trimmed, HTAB and obs-text kept, an empty value, an empty fold.
    @Test func splitKeepsEveryFieldAtTheEdges() {
        let many = "HTTP/1.1 200 OK\n" + String(repeating: "a:\n", count: 300) + "\n"
        var p = HTTPResponseHeadParser(limits: HTTPHeadLimits(maxLines: 1000))
        guard case .done(let head, _) = p.parse(bytes(many)) else { Issue.record("refused the shortest fields"); return }
        #expect(head.headers.fields.count == 300 && head.headers.values(for: "a").allSatisfy(\.isEmpty))

        let text = "HTTP/1.1 204 No Content\r\nX-Tab: \t a\tb \t\r\nX-Text: caf\u{e9}\r\nX-Empty:\r\n"
            + "X-Long: abcdefgh\tijklmnop caf\u{e9} caf\u{e9} ~~~~~~~~ \u{ff}\r\n"
            + "X-Fold: one\r\n \r\nX-Last:   z\r\n\r\n"
        var q = HTTPResponseHeadParser()
        guard case .done(let h, _) = q.parse(bytes(text)) else { Issue.record("refused \(text.debugDescription)"); return }
        #expect(h.status == 204 && h.reason == "No Content")
        #expect(h.headers.fields.map(\.name) == ["X-Tab", "X-Text", "X-Empty", "X-Long", "X-Fold", "X-Last"])
        var r = HTTPResponseHeadParser()
        guard case .done(let reasoned, _) = r.parse(bytes("HTTP/1.1 200 Tr\u{e8}s\tbien\r\n\r\n")) else { Issue.record("refused the reason"); return }
        #expect(reasoned.reason == "Tr\u{e8}s\tbien")
        #expect(h.headers["x-long"] == "abcdefgh\tijklmnop caf\u{e9} caf\u{e9} ~~~~~~~~ \u{ff}")
        #expect(h.headers["x-tab"] == "a\tb" && h.headers["x-text"] == "caf\u{e9}" && h.headers["x-empty"] == "")
        #expect(h.headers["x-fold"] == "one " && h.headers["x-last"] == "z")
    }

    @Test(arguments: ["GET  / HTTP/1.1\r\n\r\n", "GET /\r\n\r\n", "G(T / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1 x\r\n\r\n"])
    func malformedRequestHeads(_ text: String) {
        var p = HTTPRequestHeadParser()
        guard case .failure(let e) = p.parse(bytes(text)) else { Issue.record("accepted \(text)"); return }
        #expect(e.kind == "http_malformed")
    }

    @Test func limitsOnSizeAndLines() {
        var p = HTTPResponseHeadParser(limits: HTTPHeadLimits(maxHeadBytes: 1024, maxLines: 10))
        let big = bytes("HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 2000))
        var failed = false
        for b in big { if case .failure(let e) = p.parse([b]) { #expect(e.kind == "http_head_too_large"); failed = true; break } }
        #expect(failed)
        var q = HTTPResponseHeadParser(limits: HTTPHeadLimits(maxHeadBytes: 1024, maxLines: 10))
        let many = bytes("HTTP/1.1 200 OK\r\n" + String(repeating: "A: b\r\n", count: 20) + "\r\n")
        guard case .failure(let e) = q.parse(many) else { Issue.record("accepted 20 lines"); return }
        #expect(e.kind == "http_head_too_large")
    }

    /// Issue 13: a server sending endless CRLF before the status line made the client read 21 GB
    /// until its time-out. Leading empty lines count against the head limit (both directions),
    /// whether they come in one slice or byte by byte.
    @Test func leadingEmptyLinesCountAgainstTheHeadLimit() {
        let limits = HTTPHeadLimits(maxHeadBytes: 1024, maxLines: 10)
        let blank = [UInt8](repeating: 0, count: 2000).enumerated().map { $0.offset % 2 == 0 ? UInt8(13) : UInt8(10) }
        var r = HTTPResponseHeadParser(limits: limits)
        guard case .failure(let e) = r.parse(blank) else { Issue.record("2000 bytes of CRLF accepted as a prefix"); return }
        #expect(e.kind == "http_head_too_large")
        var q = HTTPRequestHeadParser(limits: limits)
        var failed = false
        for b in blank { if case .failure(let e) = q.parse([b]) { #expect(e.kind == "http_head_too_large"); failed = true; break } }
        #expect(failed)
        // A few blank lines before a head within the limit are still skipped.
        var ok = HTTPResponseHeadParser(limits: limits)
        guard case .done(let head, _) = ok.parse(bytes("\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")) else { Issue.record("no head"); return }
        #expect(head.status == 204)
    }
}

/// Deterministic generator for reproducible random tests.
typealias SplitMix = SeededRandom

/// The client's hot path decides framing and keep-alive from facts noted while splitting the head;
/// for every head it must answer exactly what searching the parsed fields answers.
@Suite struct HeadFactsTests {
    static let heads: [String] = [
        "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 15\r\nConnection: keep-alive\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n",
        "HTTP/1.1 200 OK\r\nCONTENT-LENGTH:   12  \r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 12345678901234567890\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nconnection: Keep-Alive, CLOSE\r\n\r\n",
        "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Fold: a\r\n b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection:\r\n close\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Lengthy: 4\r\nConnections: close\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: keep-alive , Close\t\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: upgrade\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.0 200 OK\r\nConnection: KEEP-ALIVE\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.0 200 OK\r\nConnection: ,,keep-alive,\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.0 200 OK\r\nConnection: keep-alives\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection:\r\nContent-Length: 1\r\n\r\n",
    ]

    @Test(arguments: heads)
    func factsDecideAsTheFieldsDo(_ text: String) throws {
        let raw = Array(text.utf8)
        let parsed = raw.withUnsafeBytes { parseResponseHeadNotingFacts($0) }
        guard case .success(let (head, facts)) = parsed else { Issue.record("did not parse: \(text)"); return }
        for wasHEAD in [false, true] {
            let fast = responseFraming(head, requestWasHEAD: wasHEAD, facts: facts)
            let slow = responseFraming(head, requestWasHEAD: wasHEAD)
            switch (fast, slow) {
            case (.success(let a), .success(let b)): #expect(a == b, "\(text)")
            case (.failure(let a), .failure(let b)): #expect(a.description == b.description, "\(text)")
            default: Issue.record("fast \(fast) vs slow \(slow) for \(text)")
            }
        }
        // A response to HEAD has no body, so every head completes and its keep-alive is decided.
        var p = HTTPResponseParser()
        p.expectResponse(to: .HEAD)
        guard case .done = p.parse(raw) else { Issue.record("no response from \(text)"); return }
        #expect(p.lastKeepsAlive == head.keepAlive, "\(text)")
    }

    @Test func commonNamesKeepTheirSpelling() throws {
        let raw = Array("HTTP/1.1 200 OK\r\ndate: x\r\nDate: y\r\nSERVER: z\r\nContent-Type: t\r\n\r\n".utf8)
        guard case .success(let (head, _)) = raw.withUnsafeBytes({ parseResponseHeadNotingFacts($0) }) else {
            Issue.record("did not parse"); return
        }
        #expect(head.headers.fields.map(\.name) == ["date", "Date", "SERVER", "Content-Type"])
        #expect(head.reason == "OK")
    }

    /// Parsed fields stay undecoded until asked (ParsedHeaderFields); every way of reading them
    /// must give what decoding each field at parse time gave, folded lines included.
    @Test(arguments: [
        ("X-A: 1\r\nx-a: 2\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 15:21:05 GMT\r\n",
         [("X-A", "1"), ("x-a", "2"), ("Server", "nginx/1.22.1"), ("Date", "Tue, 01 Dec 2026 15:21:05 GMT")]),
        ("X-Fold: a\r\n b\r\nNext:  n  \r\n", [("X-Fold", "a b"), ("Next", "n")]),
        ("X-Fold:\r\n b\r\n", [("X-Fold", " b")]),
        ("X-Fold: a\r\n \r\n\tc\r\nZ: z\r\n", [("X-Fold", "a  c"), ("Z", "z")]),
        ("X-Fold: a  \r\n   \r\n", [("X-Fold", "a ")]),
        ("Connection: keep-alive, Upgrade\r\nEmpty:\r\n", [("Connection", "keep-alive, Upgrade"), ("Empty", "")]),
    ])
    func parsedFieldsReadAsDecodedOnes(_ lines: String, _ expected: [(String, String)]) throws {
        let raw = Array("HTTP/1.1 200 OK\r\n\(lines)\r\n".utf8)
        guard case .success(let (head, _)) = raw.withUnsafeBytes({ parseResponseHeadNotingFacts($0) }) else {
            Issue.record("did not parse: \(lines)"); return
        }
        let h = head.headers
        let built = HTTPHeaders(expected)
        #expect(h.fields.map(\.name) == expected.map(\.0) && h.fields.map(\.value) == expected.map(\.1), "\(lines)")
        #expect(h == built && h.hashValue == built.hashValue && h.count == expected.count && !h.isEmpty)
        #expect(Array(h).map(\.value) == expected.map(\.1))
        for (name, _) in expected {
            let values = expected.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
            #expect(h[name.uppercased()] == values.first && h.values(for: name.lowercased()) == values)
            #expect(h.contains(name.lowercased()))
        }
        #expect(h["absent"] == nil && h.values(for: "absent").isEmpty && !h.contains("absent") && !h.contains("X-A-B"))
        #expect(h.containsToken("upgrade", in: "connection") == expected.contains { $0.0 == "Connection" })
        // A change decodes the fields first and keeps them.
        var changed = h
        changed.add("Added", "v")
        #expect(changed.fields.map(\.name) == expected.map(\.0) + ["Added"] && changed["added"] == "v")
        changed.remove(expected[0].0)
        #expect(!changed.contains(expected[0].0) && changed.count == expected.count(where: { $0.0.lowercased() != expected[0].0.lowercased() }) + 1)
        #expect(h.count == expected.count)   // the original is untouched
    }

    @Test func tokenBytesAreRFC9110sTchar() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for b in 0...255 { #expect(isTokenByte(UInt8(b)) == tchar.contains(UInt8(b)), "byte \(b)") }
    }
}
