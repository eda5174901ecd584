import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Feeds `input` to a response parser in pieces given by `sizes` (cycled); collects every response.
private func parseResponses(_ input: [UInt8], method: HTTPMethod = .GET, split: (Int) -> Int,
                            maxBody: Int = 1 << 20, finish: Bool = false) -> (responses: [HTTPResponse], error: HTTPError?) {
    var p = HTTPResponseParser(maxBodyBytes: maxBody)
    p.expectResponse(to: method)
    var out: [HTTPResponse] = []
    var i = 0, k = 0
    while i < input.count {
        let n = max(1, split(k)); k += 1
        var chunk = Array(input[i..<min(input.count, i + n)])
        i += chunk.count
        while !chunk.isEmpty {
            switch p.parse(chunk) {
            case .needMore: chunk = []
            case .done(let r, let used): out.append(r); chunk = Array(chunk[used...])
            case .failure(let e): return (out, e)
            }
        }
    }
    if finish {
        switch p.finish() {
        case .done(let r, _): out.append(r)
        case .failure(let e): return (out, e)
        case .needMore: break
        }
    }
    return (out, nil)
}

@Suite struct HTTPMessageParserTests {
    static let stream = bytes(
        "HTTP/1.1 100 Continue\r\n\r\n" +
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello" +
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;name=value\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n" +
        "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n" +
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n" +
        "HTTP/1.1 200 OK\nContent-Length: 2\n\nok" +
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\nabc\n0\n\n")

    static let expectedBodies = ["hello", "Wikipedia in\r\n\r\nchunks.", "", "", "ok", "abc"]

    @Test func wholeStreamByteByByteAndRandomSplits() {
        let whole = parseResponses(Self.stream, split: { _ in Self.stream.count })
        #expect(whole.error == nil)
        #expect(whole.responses.map(\.bodyString) == Self.expectedBodies)
        #expect(whole.responses.map(\.status) == [200, 200, 204, 304, 200, 200])
        #expect(whole.responses[0].headers["x-a"] == "1")
        let single = parseResponses(Self.stream, split: { _ in 1 })
        #expect(single.error == nil && single.responses.map(\.bodyString) == Self.expectedBodies)
        var rng = SplitMix(seed: 42)
        for _ in 0..<300 {
            let r = parseResponses(Self.stream, split: { _ in Int(rng.next() % 40) + 1 })
            #expect(r.error == nil && r.responses.map(\.bodyString) == Self.expectedBodies)
        }
    }

    @Test func headResponseHasNoBodyAndUntilCloseBodyEndsAtFinish() {
        let h = parseResponses(bytes("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"), method: .HEAD, split: { _ in 7 })
        #expect(h.responses.count == 1 && h.responses.first?.body.isEmpty == true)
        let c = parseResponses(bytes("HTTP/1.0 200 OK\r\n\r\nuntil the end"), split: { _ in 3 }, finish: true)
        #expect(c.error == nil && c.responses.first?.bodyString == "until the end")
        let t = parseResponses(bytes("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"), split: { _ in 100 }, finish: true)
        #expect(t.error?.kind == "http_malformed")
    }

    @Test func upgradeResponseStopsBeforeFrameBytes() {
        var p = HTTPResponseParser()
        let input = bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n") + [0x81, 0x02, 0x68, 0x69]
        guard case .done(let r, let used) = p.parse(input) else { Issue.record("no 101"); return }
        #expect(r.status == 101 && used == input.count - 4)
    }

    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\n",
    ])
    func malformedBodies(_ text: String) {
        let r = parseResponses(bytes(text), split: { _ in 5 })
        #expect(r.error?.kind == "http_malformed")
    }

    @Test func bodyLimitAppliesToAllFramings() {
        let cl = parseResponses(bytes("HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n"), split: { _ in 100 }, maxBody: 1000)
        #expect(cl.error?.kind == "http_body_too_large")
        let ch = parseResponses(bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n200\r\n" + String(repeating: "a", count: 512) + "\r\n200\r\n"), split: { _ in 64 }, maxBody: 1000)
        #expect(ch.error?.kind == "http_body_too_large")
        let uc = parseResponses(bytes("HTTP/1.1 200 OK\r\n\r\n" + String(repeating: "a", count: 1500)), split: { _ in 64 }, maxBody: 1000)
        #expect(uc.error?.kind == "http_body_too_large")
    }

    @Test func requestParserPipelinedChunkedAndLimits() {
        var req = HTTPRequest(method: .POST, endpoint: try! Endpoint("http://h:8080/p?q=a%20b+c"), headers: ["X-T": "1"], body: bytes("{\"a\":1}"))
        var wire: [UInt8] = []
        req.encode(into: &wire)
        req.method = .GET
        req.body = []
        req.encode(into: &wire)
        wire += bytes("PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n")
        var rng = SplitMix(seed: 3)
        for round in 0..<200 {
            var p = HTTPRequestParser()
            var got: [HTTPServerRequest] = []
            var i = 0
            while i < wire.count {
                let n = round == 0 ? 1 : Int(rng.next() % 50) + 1
                var chunk = Array(wire[i..<min(wire.count, i + n)])
                i += chunk.count
                while !chunk.isEmpty {
                    switch p.parse(chunk) {
                    case .needMore: chunk = []
                    case .done(let r, let used): got.append(r); chunk = Array(chunk[used...])
                    case .failure(let e): Issue.record("\(e)"); return
                    }
                }
            }
            #expect(got.map(\.method) == [.POST, .GET, .PUT])
            #expect(got.map(\.bodyString) == ["{\"a\":1}", "", "abc"])
            #expect(got[0].headers["host"] == "h:8080" && got[0].path == "/p" && got[0].query("q") == "a b c")
        }
        var small = HTTPRequestParser(maxBodyBytes: 10)
        guard case .failure(let e) = small.parse(bytes("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n")) else { Issue.record("accepted"); return }
        #expect(e.kind == "http_body_too_large")
        var smuggle = HTTPRequestParser()
        guard case .failure(let e2) = smuggle.parse(bytes("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")) else { Issue.record("accepted"); return }
        #expect(e2.kind == "http_malformed")
    }

    @Test func serverResponseEncodingRoundTrips() {
        var wire: [UInt8] = []
        HTTPServerResponse(status: 201, headers: ["X": "y\r\nInjected: 1"], body: bytes("created")).encode(into: &wire)
        HTTPServerResponse(status: 200, body: Array(repeating: 7, count: 10_000), chunkSize: 999).encode(into: &wire, keepAlive: false)
        HTTPServerResponse(status: 204).encode(into: &wire)
        let r = parseResponses(wire, split: { _ in 333 })
        #expect(r.error == nil && r.responses.count == 3)
        #expect(r.responses[0].status == 201 && r.responses[0].bodyString == "created")
        #expect(r.responses[0].headers["Injected"] == nil)
        #expect(r.responses[1].body == Array(repeating: 7, count: 10_000) && r.responses[1].headers["transfer-encoding"] == "chunked")
        #expect(!r.responses[1].head.keepAlive && r.responses[2].status == 204)
    }

    @Test func jsonHelpers() throws {
        var r = HTTPResponse(head: HTTPResponseHead(status: 200), body: bytes(#"{"data":{"accessToken":"t0k","n":3,"ok":true,"items":[{"id":"x"}]}}"#))
        #expect(r.jsonValue(at: "data.accessToken") == "t0k")
        #expect(r.jsonValue(at: "data.n") == "3")
        #expect(r.jsonValue(at: "data.ok") == "true")
        #expect(r.jsonValue(at: "data.items.0.id") == "x")
        #expect(r.jsonValue(at: "data.missing") == nil)
        struct D: Decodable { var data: Inner; struct Inner: Decodable { var n: Int } }
        #expect(try r.decode(D.self).data.n == 3)
        r.status = 503
        #expect(throws: HTTPError.status(code: 503, method: "request", endpoint: "server")) { try r.requireStatus() }
        do { try r.requireStatus() } catch { #expect(error.kind == "http_503" && error.source == .server) }
    }

    /// Random and mutated bytes must end in a value or a clear error, within bounded memory.
    @Test func fuzzResponseAndRequestParsers() {
        var rng = SplitMix(seed: 2026)
        let seeds: [[UInt8]] = [Self.stream, bytes("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
                                bytes("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")]
        for iteration in 0..<3000 {
            var input: [UInt8]
            if iteration % 3 == 0 {
                input = (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                input = seeds[Int(rng.next() % UInt64(seeds.count))]
                for _ in 0..<Int(rng.next() % 8) + 1 where !input.isEmpty {
                    let at = Int(rng.next() % UInt64(input.count))
                    switch rng.next() % 3 {
                    case 0: input[at] = UInt8(truncatingIfNeeded: rng.next())
                    case 1: input.remove(at: at)
                    default: input.insert(contentsOf: input[at..<min(input.count, at + 10)], at: at)
                    }
                }
            }
            var rp = HTTPResponseParser(limits: HTTPHeadLimits(maxHeadBytes: 4096, maxLines: 64), maxBodyBytes: 4096)
            var qp = HTTPRequestParser(limits: HTTPHeadLimits(maxHeadBytes: 4096, maxLines: 64), maxBodyBytes: 4096)
            var rest = input[...], rest2 = input[...]
            var steps = 0
            responseLoop: while !rest.isEmpty && steps < 1000 {
                steps += 1
                let chunk = Array(rest.prefix(Int(rng.next() % 64) + 1))
                switch rp.parse(chunk) {
                case .needMore: rest = rest.dropFirst(chunk.count)
                case .done(let r, let used): #expect(r.body.count <= 4096); rest = rest.dropFirst(used)
                case .failure(let e): #expect(!e.kind.isEmpty); break responseLoop
                }
            }
            _ = rp.finish()
            requestLoop: while !rest2.isEmpty && steps < 2000 {
                steps += 1
                let chunk = Array(rest2.prefix(Int(rng.next() % 64) + 1))
                switch qp.parse(chunk) {
                case .needMore: rest2 = rest2.dropFirst(chunk.count)
                case .done(let r, let used): #expect(r.body.count <= 4096); rest2 = rest2.dropFirst(used)
                case .failure(let e): #expect(!e.kind.isEmpty); break requestLoop
                }
            }
            #expect(steps < 2000)
        }
    }
}
