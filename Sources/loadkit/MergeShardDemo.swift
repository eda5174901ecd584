import Foundation
import LoadKit
import Synchronization

/// `loadkit shard-demo --url URL [--users N] [--requests K] [--fail-users F] [--max-errors E]
/// [--raw FILE] [--source IP]`: a tiny sharded scenario for the multi-process merge test and
/// for trying a sharded set-up by hand. Its shard comes from the environment like any sharded
/// test (`LOADKIT_SHARD_INDEX`/`LOADKIT_SHARD_COUNT`, `JOB_COMPLETION_INDEX`, …), its reports go to
/// `LOADKIT_REPORT_DIR/shard-<i>/shard-demo/` with `shard.json`.
///
/// A burst of N users (this shard keeps its striped share); each user sends K `GET`s to
/// `URL/ok?u=<user>&k=<k>` and records the latency in the trend `request`. Users whose run-wide
/// index is below F send their last request to `URL/fail` (a 500, counted as an error). SLA:
/// `request` p95 < 2 s and at most E errors — with the defaults each shard of three passes alone
/// (2 errors) while the whole breaches (6). `--raw FILE` writes every latency recorded, one
/// integer (µs) a line, so a test can compare the merged histogram with the raw samples.
enum ShardDemoCommand {
    struct Arguments {
        var url = ""
        var users = 15
        var requests = 4
        var failUsers = 6
        var maxErrors: Int64 = 3
        var raw: String?
        var source: String?
    }

    static func parse(_ args: [String]) throws -> Arguments {
        var a = Arguments()
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < args.count else { throw ScriptFailure("\(args[i - 1]) needs a value") }
            return args[i]
        }
        func int(_ s: String) throws -> Int {
            guard let n = Int(s), n >= 0 else { throw ScriptFailure("expected a count ≥ 0, not '\(s)'") }
            return n
        }
        while i < args.count {
            switch args[i] {
            case "--url": a.url = try value()
            case "--users": a.users = try int(value())
            case "--requests": a.requests = try int(value())
            case "--fail-users": a.failUsers = try int(value())
            case "--max-errors": a.maxErrors = Int64(try int(value()))
            case "--raw": a.raw = try value()
            case "--source": a.source = try value()
            default: throw ScriptFailure("unknown argument \(args[i])")
            }
            i += 1
        }
        guard a.url.hasPrefix("http://") else { throw ScriptFailure("--url http://host:port is required") }
        return a
    }

    static func run(_ args: [String]) async -> Int32 {
        let a: Arguments
        do { a = try parse(args) } catch { stderrLine("loadkit shard-demo: \(error)"); return 2 }
        do {
            let settings = try Settings.load()
            let shard = try Shard(settings: settings)
            var sources: [SocketAddress] = []
            if let s = a.source {
                guard let addr = SocketAddress(ip: s, port: 0) else { throw ScriptFailure("--source \(s) is not a numeric address") }
                sources = [addr]
            }
            let client = HTTPClient(maxConnectionsPerHost: 64, sourceAddresses: sources)
            defer { client.shutdown() }
            let raw = Mutex<[Int64]>([])
            let test = LoadTest("shard-demo", burst: a.users, hold: .seconds(20))
                .gracefulStop(.seconds(2))
                .settings(settings)
                .sharded(shard)
                .progress(false)
                .sla {
                    SLA.p95("request", below: .seconds(2))
                    SLA.count(Threshold.errorsMetric, atMost: a.maxErrors)
                }
            let result = try await test.run { user in
                for k in 0..<a.requests {
                    let fail = user.index < a.failUsers && k == a.requests - 1
                    let url = a.url + (fail ? "/fail" : "/ok?u=\(user.index)&k=\(k)")
                    let t0 = monotonicNanos()
                    // The client counts each request: an operation, or one `http_500` error for /fail.
                    let response = try await client.get(url, timeout: .seconds(5))
                    let micros = Int64((monotonicNanos() - t0) / 1_000)
                    if response.status < 400 {
                        user.record("request", micros: micros)
                        raw.withLock { $0.append(micros) }
                    }
                }
            }
            if let path = a.raw {
                let text = raw.withLock { $0.map(String.init).joined(separator: "\n") } + "\n"
                try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            }
            stderrLine("loadkit shard-demo: shard \(shard.index)/\(shard.count): \(result.metrics.trends["request"]?.count ?? 0) samples, "
                       + "\(result.metrics.totalErrors) errors")
            return 0
        } catch {
            stderrLine("loadkit shard-demo: error: \(error)")
            return 2
        }
    }
}
