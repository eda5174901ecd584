import Foundation
import Testing
import LoadKit

/// Independent peers for the interop tests (Python `websockets`, `stomp.py`, coilmq from PyPI;
/// `.ci/run` installs them). `LOADKIT_INTEROP`: unset → the tests run when the Python packages
/// import, and are skipped otherwise; `1` (what `.ci/run` sets) → they run and *fail* with a
/// clear message when a package is missing; `0` → skipped on purpose. `LOADKIT_WS_INTEROP=1`
/// (the old switch) counts as `1`.
enum InteropPeers {
    static let env = ProcessInfo.processInfo.environment
    static let required = env["LOADKIT_INTEROP"] == "1" || env["LOADKIT_WS_INTEROP"] != nil
    static let off = env["LOADKIT_INTEROP"] == "0"
    static let scripts = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Benchmarks")

    /// Whether `python3` can import every module.
    static func available(_ modules: [String]) -> Bool {
        if off { return false }
        return required || missing(modules).isEmpty
    }

    /// The peers' modules that import, asked of `python3` once per process (a blocking call, made
    /// when the suites are planned, not while tests run).
    static let importable: Set<String> = {
        let probe = "import importlib.util as u\nfor m in ['websockets', 'stomp', 'coilmq']:\n    print(m if u.find_spec(m) else '')"
        return Set(run(["python3", "-c", probe]).output.split(separator: "\n").map(String.init).filter { !$0.isEmpty })
    }()

    /// The modules of `modules` that do not import.
    static func missing(_ modules: [String]) -> [String] {
        modules.filter { !importable.contains($0) }
    }

    /// Throws a clear error when a module is missing (the tests run only when required or present).
    static func require(_ modules: [String]) throws {
        let m = missing(modules)
        guard m.isEmpty else {
            throw ScriptFailure("interop peers missing: Python module(s) \(m.joined(separator: ", ")) do not import; "
                + "install them with `python3 -m pip install websockets stomp.py coilmq` (what .ci/run does), or set LOADKIT_INTEROP=0 to skip on purpose",
                kind: "interop_unavailable", source: .loadGenerator)
        }
    }

    /// Runs a command to its end (bounded by the command itself); status and combined output.
    static func run(_ args: [String]) -> (status: Int32, output: String) {
        guard let (p, out) = try? start(args) else { return (-1, "could not start \(args)") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Runs a command in the background (`async`, killed after `seconds`): status and output.
    static func runDetached(_ args: [String], seconds: Double = 30) async throws -> (status: Int32, output: String) {
        let (p, out) = try start(args)
        let killer = Task { try await Task.sleep(for: .seconds(seconds)); kill(p.processIdentifier, SIGKILL) }
        let data = try await offThePool {
            let d = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return d
        }
        killer.cancel()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    private static func start(_ args: [String]) throws -> (Process, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        return (p, out)
    }
}
