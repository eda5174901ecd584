import Foundation
import Synchronization
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// Headless Chromium, for checking `report.html` the way a person's browser shows it.
enum Chromium {
    /// `$LOADKIT_CHROMIUM`, else `chromium`, `chromium-browser`, `google-chrome` on the PATH.
    static let path: String? = {
        let fm = FileManager.default
        if let p = ProcessInfo.processInfo.environment["LOADKIT_CHROMIUM"], fm.isExecutableFile(atPath: p) { return p }
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
            for d in dirs where fm.isExecutableFile(atPath: d + "/" + name) { return d + "/" + name }
        }
        return nil
    }()

    static let missing: Comment = "Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it), or set LOADKIT_CHROMIUM"

    /// The DOM after the page's scripts ran (virtual time lets them finish), and the page's own
    /// network requests from Chromium's net log (the browser's background requests, whose
    /// initiator is "not an origin", are left out).
    static func render(_ file: String) async throws -> (dom: String, pageRequests: [String]) {
        let bin = try #require(path)
        let work = NSTemporaryDirectory() + "loadkit-chromium-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let netLog = work + "/net.json"
        let out = try await ShardProcessTests.run(bin, [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--user-data-dir=\(work)/profile", "--window-size=1280,1800", "--virtual-time-budget=5000",
            "--log-net-log=\(netLog)", "--net-log-capture-mode=Everything", "--dump-dom",
            URL(fileURLWithPath: file).absoluteString,
        ], timeout: .seconds(90))
        try #require(out.status == 0, "chromium exited with \(out.status): \(out.stderr.suffix(2000))")
        var requests: [String] = []
        if let data = FileManager.default.contents(atPath: netLog),
           let log = try JSONSerialization.jsonObject(with: data) as? [String: Any],
           let constants = log["constants"] as? [String: Any],
           let types = constants["logEventTypes"] as? [String: Int],
           let events = log["events"] as? [[String: Any]] {
            let startJob = types["URL_REQUEST_START_JOB"]
            for e in events where e["type"] as? Int == startJob {
                guard let p = e["params"] as? [String: Any], let url = p["url"] as? String else { continue }
                if (p["initiator"] as? String) != "not an origin" { requests.append(url) }
            }
        } else {
            Issue.record("Chromium wrote no readable net log")
        }
        return (out.stdout, requests)
    }
}

/// A loopback listener that counts connections: a request the page must not make would land here.
final class Canary: Sendable {
    final class Counter: Sendable { let n = Atomic<Int>(0) }
    private let listener: TCPListener
    private let counter = Counter()

    init() throws {
        let counter = self.counter
        listener = try TCPListener(host: "127.0.0.1", port: 0, backlog: 64) { conn in
            counter.n.add(1, ordering: .relaxed)
            conn.close()
        }
    }

    var port: Int { listener.address.port }
    var count: Int { counter.n.load(ordering: .relaxed) }
    func close() { listener.close() }
}

@Suite(.serialized) struct HTMLReportTests {
    /// The fixture run with an error example a careless page would execute or fetch.
    static func hostileRun(canaryPort: Int) -> RunResult {
        var r = ReportFixtures.run()
        r.metrics.errors["assertion"] = ErrorTally(source: .script, count: 1, examples: [
            "check: body was <img src=\"http://127.0.0.1:\(canaryPort)/leak.png\"></td></tr></table>"
                + "<script>fetch('http://127.0.0.1:\(canaryPort)/script')</script></script>",
        ])
        return r
    }

    static func matches(_ pattern: String, in text: String) -> [[String]] {
        let re = try! NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators])
        return re.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { m in
            (0..<m.numberOfRanges).map { i in Range(m.range(at: i), in: text).map { String(text[$0]) } ?? "" }
        }
    }

    @Test(.enabled(if: Chromium.path != nil, Chromium.missing))
    func everyChartDrawsInARealBrowserAndThePageMakesNoRequest() async throws {
        let canary = try Canary()
        defer { canary.close() }
        let root = NSTemporaryDirectory() + "loadkit-html-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let run = Self.hostileRun(canaryPort: canary.port)
        let outcomes = ReportFixtures.thresholds.evaluate(run)
        let files = try ReportWriter(root: root).write(run, outcomes: outcomes)
        let (dom, requests) = try await Chromium.render(files.html)

        // The script ran and drew every chart it was given.
        let charts = HTMLReport.Charts(run, outcomes: outcomes).list
        #expect(charts.count >= 12, "fixture should give throughput, users, 3 trends, tags, errors, 3 distributions, 3 generator charts")
        #expect(dom.contains("data-charts-drawn=\"\(charts.count)\""))
        #expect(!dom.contains("data-error="), "a chart failed to draw")
        let figures = Self.matches(#"<figure class="chart" data-chart="([^"]+)"[^>]*>(.*?)</figure>"#, in: dom)
        #expect(figures.count == charts.count)
        for chart in charts {
            guard let fig = figures.first(where: { $0[1] == chart.id }) else {
                Issue.record("chart \(chart.id) missing from the page"); continue
            }
            #expect(fig[0].contains("data-drawn=\"true\""), "\(chart.id) not drawn")
            #expect(fig[2].contains("<svg"), "\(chart.id) has no SVG")
            if chart.kind == "line" {
                let paths = Self.matches(#"<path class="series" data-series="([^"]*)" data-points="(\d+)"[^>]* d="([^"]*)""#, in: fig[2])
                #expect(paths.count == chart.series.count, "\(chart.id): \(paths.count) paths for \(chart.series.count) series")
                for (series, path) in zip(chart.series, paths) {
                    let expected = (series["points"] as! [[Any]]).filter { !($0[1] is NSNull) }.count
                    #expect(Int(path[2]) == expected, "\(chart.id)/\(path[1]): \(path[2]) points drawn of \(expected)")
                    let coordinates = Self.matches(#"[ML]\s*-?[\d.]+ -?[\d.]+"#, in: path[3]).count
                    #expect(expected > 0 && coordinates >= expected, "\(chart.id)/\(path[1]): path has \(coordinates) points")
                }
                #expect(fig[2].contains("class=\"hover\""), "\(chart.id) has no hover layer")
                #expect(Self.matches(#"<text[^>]*>[^<]+</text>"#, in: fig[2]).count >= 6, "\(chart.id) axes have no labels")
            } else {
                let bars = Self.matches(#"<rect class="bar" data-bin="\d+" data-count="([\d.]+)"[^>]* height="([\d.]+)""#, in: fig[2])
                #expect(bars.count == chart.bins.count)
                #expect(bars.contains { Double($0[2])! > 0 }, "\(chart.id): no visible bar")
                #expect(bars.reduce(0) { $0 + Double($1[1])! } > 0)
            }
        }
        // The thresholds table lists every threshold, passed and failed.
        let table = try #require(Self.matches(#"<table class="thresholds" id="threshold-table">(.*?)</table>"#, in: dom).first)
        let rows = Self.matches(#"<tr class="(pass|fail|skip)">"#, in: table[1])
        #expect(rows.count == outcomes.count)
        #expect(rows.filter { $0[1] == "fail" }.count == outcomes.filter { !$0.passed }.count)
        #expect(dom.contains("id=\"verdict\">FAILED<"))
        // The hostile example is text, not markup; the page asked for nothing.
        #expect(dom.contains("&lt;img src="))
        #expect(!dom.contains("<img"))
        #expect(requests.isEmpty, "the page made requests: \(requests)")
        try await Task.sleep(for: .milliseconds(200))
        #expect(canary.count == 0)
        #expect(!dom.contains("s3cr3t-token"))
    }

    /// The two network checks above can fail: a page that does fetch is seen by both, and the
    /// report's Content-Security-Policy stops the same fetch.
    @Test(.enabled(if: Chromium.path != nil, Chromium.missing))
    func theNetworkChecksSeeARequestAndThePolicyBlocksIt() async throws {
        let canary = try Canary()
        defer { canary.close() }
        let dir = NSTemporaryDirectory() + "loadkit-html-control-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let body = "<body><img src=\"http://127.0.0.1:\(canary.port)/control.png\"></body></html>"
        try ("<!DOCTYPE html><html><head></head>" + body).write(toFile: dir + "/open.html", atomically: true, encoding: .utf8)
        try ("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"\(HTMLReport.contentSecurityPolicy)\"></head>"
             + body).write(toFile: dir + "/guarded.html", atomically: true, encoding: .utf8)

        let open = try await Chromium.render(dir + "/open.html")
        #expect(open.pageRequests.contains { $0.contains("/control.png") })
        try await Task.sleep(for: .milliseconds(200))
        let seen = canary.count
        #expect(seen >= 1)
        let guarded = try await Chromium.render(dir + "/guarded.html")
        #expect(guarded.pageRequests.isEmpty)
        try await Task.sleep(for: .milliseconds(200))
        #expect(canary.count == seen)
    }

    @Test func chromiumIsInstalledWhereCIRequiresIt() {
        if ProcessInfo.processInfo.environment["LOADKIT_REQUIRE_CHROMIUM"] == "1" {
            #expect(Chromium.path != nil, "LOADKIT_REQUIRE_CHROMIUM=1 but \(Chromium.missing)")
        }
    }

    /// Without a browser: the page is self-contained by construction.
    @Test func thePageReferencesNothingOutsideItself() throws {
        let run = Self.hostileRun(canaryPort: 9)
        let html = HTMLReport.render(run, outcomes: ReportFixtures.thresholds.evaluate(run))
        let head = try #require(html.range(of: "<head>")).upperBound
        #expect(html[head...].hasPrefix("<meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';"))
        for attr in Self.matches(#"\s(?:src|href|action|poster|srcset|data)\s*=\s*"([^"]*)""#, in: html) {
            #expect(attr[1].hasPrefix("#"), "reference outside the page: \(attr[0])")
        }
        for bad in ["<link", "<iframe", "<object", "<embed", "<base", "@import", "url(", "<img", "<audio", "<video"] {
            #expect(!html.lowercased().contains(bad), "page contains \(bad)")
        }
        #expect(Self.matches(#"<script(?![^>]*type="application/json")[^>]*\ssrc"#, in: html).isEmpty)
        // The embedded data cannot close its script element; the hostile text is escaped.
        let data = try #require(Self.matches(#"<script type="application/json" id="loadkit-data">(.*?)</script>"#, in: html).first)
        #expect(!data[1].contains("<"))
        #expect(try JSONSerialization.jsonObject(with: Data(data[1].utf8)) is [String: Any])
        #expect(html.contains("check: body was &lt;img src=&quot;http://127.0.0.1:9/leak.png&quot;&gt;"))
        #expect(!html.contains("s3cr3t-token"))
        #expect(html.contains("<td>TOKEN</td>") == false && html.contains("<th>TOKEN</th><td>****</td>"))
    }

    @Test func anOpenModelRunShowsItsScheduleAtTheTop() {
        var run = ReportFixtures.run(name: "open-kpi")
        #expect(!HTMLReport.render(run).contains("iterations dropped"), "a closed-model run has no schedule card")
        var lateness = Histogram()
        for v in [120, 250, 4_000] { lateness.record(Int64(v)) }
        run.metrics.trends[RunnerMetrics.iterationLateness] = lateness
        run.metrics.counters[RunnerMetrics.iterationsDropped] = 333
        run.metrics.counters[RunnerMetrics.iterationsLate] = 7
        let kpi = HTMLReport.kpis(run).first { $0.label == "iterations dropped" }
        #expect(kpi?.value == "333")
        #expect(kpi?.note.contains("7 late") == true)
        #expect(HTMLReport.render(run).contains("iterations dropped"))
        // Which seconds dropped them: a chart (a dropped arrival is in no latency chart).
        #expect(!HTMLReport.render(run).contains("iterations dropped (no free user) and late, per second"))
        run.metrics.series[RunnerMetrics.iterationsDropped] = [0, 0, 333, 0]
        #expect(HTMLReport.render(run).contains("open model: iterations dropped (no free user) and late, per second"))
    }

    /// The error-rate card says failed and succeeded as the counters do: `operations` counts the
    /// successes only, and "267 of 1,871 operations failed" beside `operations 1,604` read as a
    /// contradiction (held-out API user).
    @Test func theErrorRateCardCountsAsTheCountersDo() {
        var run = ReportFixtures.run()
        run.metrics.counters[RunnerMetrics.operations] = 1_604
        run.metrics.errors = ["http_429": ErrorTally(source: .server, count: 267, examples: ["GET /search answered HTTP 429"])]
        let kpi = HTMLReport.kpis(run).first { $0.label == "error rate" }
        #expect(kpi?.note == "267 failed, 1,604 succeeded (operations)", "\(kpi?.note ?? "no card")")
        // The console says the rate once, with its counts.
        let text = ConsoleSummary.full(run, outcomes: [])
        #expect(text.components(separatedBy: "error rate").count == 2, "\(text)")
    }

    /// A trend that is all zeros (TLS handshaking over plain HTTP) gets no distribution chart —
    /// one bar at 0 tells nothing the statistics table does not (held-out HTTP user).
    @Test func anAllZeroTrendHasNoDistributionChart() {
        var run = ReportFixtures.run()
        var zeros = Histogram()
        for _ in 0..<100 { zeros.record(0) }
        run.metrics.trends["http_req_tls_handshaking"] = zeros
        let html = HTMLReport.render(run)
        let section = Self.matches(#"<section id="distributions">(.*?)</section>"#, in: html).first?[1] ?? ""
        #expect(section.contains("http_req_duration"), "the section is there, with the trends that vary")
        #expect(!section.contains("http_req_tls_handshaking"))
        #expect(html.contains("http_req_tls_handshaking"), "still in the statistics table")
    }

    @Test func taggedTrendsAreGroupedUnderTheirBase() {
        let run = ReportFixtures.run()
        let html = HTMLReport.render(run)
        let table = Self.matches(#"<table class="stats" id="trend-table">(.*?)</table>"#, in: html).first?[1] ?? ""
        let base = table.range(of: ">http_req_duration<")
        let tag = table.range(of: "<span class=\"tag\">name:/items/{id}</span>")
        let login = table.range(of: ">login<")
        #expect(base != nil && tag != nil && login != nil)
        if let b = base, let t = tag, let l = login { #expect(b.lowerBound < t.lowerBound && t.lowerBound < l.lowerBound) }
        #expect(html.contains("http_req_duration by tag"))
        #expect(MetricName("http_req_duration{name:/items/{id},status:200}").tags.map { "\($0.key)=\($0.value)" }
                == ["name=/items/{id}", "status=200"])
        #expect(MetricName("a{b:c,d}").tags.map(\.value) == ["c,d"])
        #expect(MetricName("plain").tagText.isEmpty && MetricName("{odd}").base == "{odd}")
    }
}
