import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// The JUnit file, checked against the structure of the JUnit schema (Ant's `junit.xsd`, which
/// Jenkins, GitLab and GitHub reporters read): `testsuites` → `testsuite` (name, tests, failures,
/// errors, time, timestamp, hostname; `properties` first) → `testcase` (name, classname, time) →
/// at most one of `failure`/`skipped`, then `system-out`.
@Suite struct JUnitReportTests {
    final class Element {
        let name: String
        let attributes: [String: String]
        var children: [Element] = []
        var text = ""
        init(_ name: String, _ attributes: [String: String]) { self.name = name; self.attributes = attributes }
        func all(_ n: String) -> [Element] { children.filter { $0.name == n } }
    }

    final class TreeBuilder: NSObject, XMLParserDelegate {
        var stack: [Element] = []
        var root: Element?
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            let e = Element(name, attributes)
            stack.last?.children.append(e)
            if root == nil { root = e }
            stack.append(e)
        }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) { stack.removeLast() }
        func parser(_ parser: XMLParser, foundCharacters string: String) { stack.last?.text += string }
    }

    static func parse(_ xml: String) throws -> Element {
        let parser = XMLParser(data: Data(xml.utf8))
        let builder = TreeBuilder()
        parser.delegate = builder
        try #require(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))")
        return try #require(builder.root)
    }

    /// Checks every rule of the schema's structure this file uses; returns the test cases.
    static func validate(_ root: Element) throws -> [(suite: Element, testcase: Element)] {
        #expect(root.name == "testsuites")
        #expect(root.children.allSatisfy { $0.name == "testsuite" })
        var cases: [(Element, Element)] = []
        for suite in root.children {
            for attr in ["name", "tests", "failures", "errors", "time", "timestamp", "hostname"] {
                #expect(suite.attributes[attr] != nil, "testsuite without \(attr)")
            }
            #expect(suite.attributes["timestamp"].map { $0.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$"#, options: .regularExpression) != nil } == true)
            #expect(suite.children.first?.name == "properties")
            #expect(suite.children.dropFirst().allSatisfy { $0.name == "testcase" })
            #expect(suite.all("properties").first?.children.allSatisfy { $0.name == "property" && $0.attributes["name"] != nil && $0.attributes["value"] != nil } == true)
            let tcs = suite.all("testcase")
            #expect(Int(suite.attributes["tests"] ?? "") == tcs.count)
            #expect(Int(suite.attributes["failures"] ?? "") == tcs.filter { !$0.all("failure").isEmpty }.count)
            #expect(Int(suite.attributes["skipped"] ?? "") == tcs.filter { !$0.all("skipped").isEmpty }.count)
            #expect(Double(suite.attributes["time"] ?? "") != nil)
            for tc in tcs {
                #expect(tc.attributes["name"] != nil && tc.attributes["classname"] != nil && Double(tc.attributes["time"] ?? "") != nil)
                let kinds = tc.children.map(\.name)
                #expect(kinds.filter { ["failure", "skipped", "error"].contains($0) }.count <= 1)
                #expect(kinds.allSatisfy { ["failure", "skipped", "system-out"].contains($0) }, "\(kinds)")
                if let f = tc.all("failure").first { #expect(f.attributes["message"] != nil && f.attributes["type"] != nil) }
                if let out = tc.all("system-out").first { #expect(kinds.last == "system-out" && !out.text.isEmpty) }
                cases.append((suite, tc))
            }
        }
        #expect(Int(root.attributes["tests"] ?? "") == cases.count)
        return cases
    }

    @Test func everyThresholdIsATestCaseWithActualAndLimit() throws {
        let run = ReportFixtures.run()
        var thresholds = ReportFixtures.thresholds
        thresholds.append(SLA.p95("http_req_duration", noWorseThan: .baseline, by: 0.1))
        let outcomes = thresholds.evaluate(run, baseline: .unset)
        var other = ReportFixtures.run(name: "second <run> & \"quotes\"", seconds: 10)
        other.metrics.errors["x"] = ErrorTally(source: .script, count: 1, examples: ["\u{1}control"])
        let xml = JUnitReport.render([.init(result: run, outcomes: outcomes),
                                      .init(result: other, outcomes: [SLA.count("http_reqs", atLeast: 1)].evaluate(other))])
        let cases = try Self.validate(try Self.parse(xml))
        #expect(cases.count == thresholds.count + 1)
        let names = cases.filter { $0.suite.attributes["name"] == "checkout-http" }.map { $0.testcase.attributes["name"]! }
        #expect(names == thresholds.map(\.description))
        let login = try #require(cases.first { $0.testcase.attributes["name"] == "login p(99) < 45 ms" }?.testcase)
        let failure = try #require(login.all("failure").first)
        #expect(failure.attributes["message"] == "login p(99) = 49.57 ms, limit < 45 ms")
        #expect(failure.text.contains("actual: 49.57 ms") && failure.text.contains("limit: < 45 ms"))
        let passed = try #require(cases.first { $0.testcase.attributes["name"] == "http_req_duration p(95) < 40 ms" }?.testcase)
        #expect(passed.all("failure").isEmpty && passed.all("system-out").first?.text.contains("actual: 24.5 ms") == true)
        let skipped = try #require(cases.first { $0.testcase.attributes["name"] == "http_req_duration p(95) <= baseline + 10 %" }?.testcase)
        #expect(skipped.all("skipped").first?.attributes["message"]?.contains("no baseline") == true)
        #expect(cases.contains { $0.suite.attributes["name"] == "second <run> & \"quotes\"" })
    }

    @Test func theFileCollectsEveryRunOfTheProcess() throws {
        let path = NSTemporaryDirectory() + "loadkit-junit-\(UUID().uuidString)/sub/junit.xml"
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        JUnitReport.reset()
        let a = ReportFixtures.run(name: "a", seconds: 5), b = ReportFixtures.run(name: "b", seconds: 5)
        JUnitReport.add(a, outcomes: [SLA.p95("http_req_duration", below: .seconds(1))].evaluate(a), path: path)
        JUnitReport.add(b, outcomes: [SLA.errorRate(below: 0.5)].evaluate(b), path: path)
        // `expect` on run a judges one more threshold: it joins a's suite, the first is not repeated.
        JUnitReport.add(a, outcomes: [SLA.p95("http_req_duration", below: .seconds(1)), SLA.count("http_reqs", atMost: 1)].evaluate(a), path: path)
        let cases = try Self.validate(try Self.parse(try String(contentsOfFile: path, encoding: .utf8)))
        #expect(cases.map { "\($0.suite.attributes["name"]!): \($0.testcase.attributes["name"]!)" } == [
            "a: http_req_duration p(95) < 1000 ms", "a: http_reqs count <= 1", "b: errors rate < 50 %",
        ])
        #expect(!(try String(contentsOfFile: path, encoding: .utf8)).contains("s3cr3t-token"))
        JUnitReport.reset()
        // A shard's thresholds are not judged alone: listed as skipped, the merge has the verdict.
        var shard = ReportFixtures.run(name: "sharded", seconds: 5)
        shard.environment["shard_index"] = "1"
        JUnitReport.add(shard, outcomes: [SLA.count("http_reqs", atMost: 1)].evaluate(shard), path: path)
        let shardCase = try #require(try Self.validate(try Self.parse(try String(contentsOfFile: path, encoding: .utf8))).first?.testcase)
        #expect(shardCase.all("failure").isEmpty)
        #expect(shardCase.all("skipped").first?.attributes["message"]?.hasSuffix("judged on the merged result (loadkit merge), not per shard") == true)
        JUnitReport.reset()
        // Unwritable: a message on stderr, no crash, no throw.
        JUnitReport.add(a, outcomes: [], path: "/proc/loadkit-no/junit.xml")
        JUnitReport.reset()
    }
}
