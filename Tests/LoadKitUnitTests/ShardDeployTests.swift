import Foundation
import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

/// The deployment examples in deploy/ must stay valid: parsed by PyYAML when it is installed,
/// and always checked in Swift for indentation and the keys that make the sharding work
/// (shard count consistent everywhere, a merge step that gates with `--expect-shards`).
@Suite struct ShardDeployTests {
    static let deployDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("deploy").path

    static func text(_ name: String) throws -> String {
        try String(contentsOfFile: deployDir + "/" + name, encoding: .utf8)
    }

    static let pythonYAML: Bool = {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import yaml"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }()

    /// Minimal YAML sanity without a parser: no tabs, indentation in steps of two, every
    /// non-comment line a key, a list item, a document marker or part of a block scalar.
    static func sanityProblems(_ yaml: String) -> [String] {
        var problems: [String] = []
        var blockIndent: Int?   // inside a `|` block scalar: lines indented deeper belong to it
        for (n, line) in yaml.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let indent = line.prefix { $0 == " " }.count
            let body = line.dropFirst(indent)
            if body.isEmpty || body.hasPrefix("#") { continue }
            if let b = blockIndent, indent > b { continue }
            blockIndent = nil
            if line.contains("\t") { problems.append("line \(n + 1): tab") }
            if indent % 2 != 0 { problems.append("line \(n + 1): odd indentation \(indent)") }
            let isItem = body.hasPrefix("- ") || body == "-"
            let content = isItem ? body.dropFirst(2) : body
            if body == "---" { continue }
            if !(content.contains(": ") || content.hasSuffix(":") || isItem) {
                problems.append("line \(n + 1): neither a key nor a list item: \(body)")
            }
            if content.hasSuffix("|") || content.hasSuffix("|-") || content.hasSuffix(">") { blockIndent = indent }
        }
        return problems
    }

    /// The integer after `key:` (quotes removed) wherever it appears.
    static func values(_ key: String, in yaml: String) -> [String] {
        yaml.split(separator: "\n").compactMap { line in
            let t = line.drop { $0 == " " || $0 == "-" }.drop { $0 == " " }
            guard t.hasPrefix(key + ":") else { return nil }
            var v = String(t.dropFirst(key.count + 1))
            if let c = v.range(of: " #") { v = String(v[..<c.lowerBound]) }  // trailing comment
            return v.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
    }

    @Test func kubernetesIndexedJobIsConsistent() throws {
        let y = try Self.text("k8s-indexed-job.yaml")
        #expect(Self.sanityProblems(y) == [])
        #expect(Self.values("completionMode", in: y) == ["Indexed"])
        let completions = Self.values("completions", in: y), parallelism = Self.values("parallelism", in: y)
        #expect(completions.count == 1 && completions == parallelism)
        // LOADKIT_SHARD_COUNT's value is on the line after its name.
        let lines = y.split(separator: "\n").map(String.init)
        let i = try #require(lines.firstIndex { $0.contains("name: LOADKIT_SHARD_COUNT") })
        #expect(lines[i + 1].contains("value: \"\(completions.first ?? "?")\""))
        #expect(y.contains("\"--expect-shards\", \"\(completions.first ?? "?")\""))
        #expect(y.contains("\"loadkit\", \"merge\""))
        #expect(y.contains("ReadWriteMany") && y.contains("LOADKIT_REPORT_DIR"))
    }

    @Test func githubMatrixIsConsistent() throws {
        let y = try Self.text("github-actions-matrix.yml")
        #expect(Self.sanityProblems(y) == [])
        let count = try #require(Self.values("LOADKIT_SHARD_COUNT", in: y).first)
        #expect(Self.values("SHARDS", in: y) == [count])
        let matrix = try #require(Self.values("shard", in: y).first { $0.hasPrefix("[") })
        #expect(matrix.dropFirst().dropLast().split(separator: ",").count == Int(count))
        #expect(y.contains("LOADKIT_SHARD_INDEX: ${{ matrix.shard }}"))
        #expect(y.contains("actions/upload-artifact") && y.contains("actions/download-artifact"))
        #expect(y.contains("loadkit merge shards/ --expect-shards \"$SHARDS\""))
    }

    @Test func sanityCheckCatchesBrokenYAML() {
        #expect(!Self.sanityProblems("a:\n   b: 1\n").isEmpty)     // odd indentation
        #expect(!Self.sanityProblems("a:\n\tb: 1\n").isEmpty)      // tab
        #expect(!Self.sanityProblems("a:\n  just words\n").isEmpty)
        #expect(Self.sanityProblems("a: |\n  any text\n   here\nb:\n  - c: 1\n").isEmpty)
    }

    @Test(.enabled(if: ShardDeployTests.pythonYAML, "PyYAML not installed (`pip install pyyaml`); the Swift checks above still run"))
    func filesParseAsYAML() async throws {
        let script = """
            import sys, yaml
            d = sys.argv[1]
            docs = list(yaml.safe_load_all(open(d + "/k8s-indexed-job.yaml")))
            jobs = [x for x in docs if x["kind"] == "Job"]
            shards = [j for j in jobs if j["spec"].get("completionMode") == "Indexed"][0]
            n = shards["spec"]["completions"]
            assert shards["spec"]["parallelism"] == n
            env = {e["name"]: e["value"] for e in shards["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert int(env["LOADKIT_SHARD_COUNT"]) == n, env
            merge = [j for j in jobs if j is not shards][0]["spec"]["template"]["spec"]["containers"][0]["command"]
            assert merge[:2] == ["loadkit", "merge"] and merge[merge.index("--expect-shards") + 1] == str(n), merge
            gh = yaml.safe_load(open(d + "/github-actions-matrix.yml"))
            s = gh["jobs"]["shard"]
            assert len(s["strategy"]["matrix"]["shard"]) == int(s["env"]["LOADKIT_SHARD_COUNT"]) == int(gh["env"]["SHARDS"])
            assert gh["jobs"]["merge"]["needs"] == "shard"
            assert any("loadkit merge" in st.get("run", "") and "--expect-shards" in st["run"] for st in gh["jobs"]["merge"]["steps"])
            print("deploy files OK", n)
            """
        let out = try await ShardProcessTests.run("/usr/bin/env", ["python3", "-c", script, Self.deployDir], timeout: .seconds(30))
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.contains("deploy files OK 3"))
    }
}
