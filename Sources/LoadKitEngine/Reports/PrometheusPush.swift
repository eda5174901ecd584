import Foundation
import LoadKitTransport
import LoadKitProtocols

/// Pushes a run's final values to a Prometheus Pushgateway, for jobs a scraper cannot reach
/// (a CI runner, a short Kubernetes Job): with `LOADKIT_PUSH_URL=http://pushgateway:9091` the
/// end of every run (and `loadkit merge`) sends the exposition with `PUT` to
/// `<url>/metrics/job/loadkit/test/<test>/run_id/<run id>`. The `test` and `run_id` labels come
/// from that grouping key (the Pushgateway refuses pushed samples that repeat them), so queries
/// read the same as against the live `/metrics` endpoint.
///
/// A push that fails is reported on stderr with its cause (server answer or connection error);
/// it never fails the test or loses the run's report files.
package enum PrometheusPush {
    /// The variable naming the Pushgateway.
    public static let variable = "LOADKIT_PUSH_URL"

    /// A push that did not succeed.
    package struct PushError: ClassifiedError, Sendable {
        /// What went wrong.
        public var message: String
        /// `prometheus_push`.
        public var kind: String { "prometheus_push" }
        /// The Pushgateway's side when it answered, else the load generator's configuration/network.
        public var source: FailureSource
        public var description: String { message }
    }

    /// The grouping URL for a run: `<base>/metrics/job/loadkit/test/<test>/run_id/<run id>` (a value
    /// that is not plain `[A-Za-z0-9_.-]` is sent in the `@base64` form the Pushgateway decodes).
    public static func url(base: String, test: String, runID: String) throws -> String {
        if let why = problem(base) {
            throw PushError(message: "\(variable)=\(Endpoint.redact(base)): \(why)", source: .loadGenerator)
        }
        return gateway(base) + groupingPath(test: test, runID: runID)
    }

    /// What is wrong with `base` as the Pushgateway's address (a scheme, no path), nil when
    /// nothing is: the push's check, and the one a run makes before it starts.
    static func problem(_ base: String) -> String? {
        let b = gateway(base)
        guard b.hasPrefix("http://") || b.hasPrefix("https://") else {
            return "expected the Pushgateway's http(s) address, e.g. http://pushgateway:9091"
        }
        // A path, not a host that begins with "metrics" (`http://metrics-gateway:9091`).
        let authorityStart = b.range(of: "://").map(\.upperBound) ?? b.startIndex
        let path = b[authorityStart...].firstIndex(of: "/").map { b[$0...] } ?? ""
        guard !path.contains("/metrics") else {
            return "name the Pushgateway only (http://host:9091); LoadKit adds /metrics/job/loadkit/test/<test>/run_id/<run id>"
        }
        return nil
    }

    /// `base` trimmed, without trailing slashes.
    static func gateway(_ base: String) -> String {
        var b = base.trimmingCharacters(in: .whitespaces)
        while b.hasSuffix("/") { b.removeLast() }
        return b
    }

    /// What ``url(base:test:runID:)`` adds to the gateway's address.
    static func groupingPath(test: String, runID: String) -> String {
        "/metrics/job/loadkit" + segment("test", test) + segment("run_id", runID)
    }

    static func segment(_ label: String, _ value: String) -> String {
        let plain = !value.isEmpty && value.unicodeScalars.allSatisfy {
            ($0.isASCII && (CharacterSet.alphanumerics.contains($0))) || $0 == "_" || $0 == "." || $0 == "-"
        }
        if plain { return "/\(label)/\(value)" }
        let b64 = Data(value.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        return "/\(label)@base64/\(b64.isEmpty ? "=" : b64)"
    }

    /// The run id a result is pushed and labelled under: its `run_id` fact (sharded runs,
    /// `LOADKIT_RUN_ID`), else its run folder's name (its UTC start).
    public static func runID(of result: RunResult) -> String {
        result.environment["run_id"] ?? RunHistory.folderName(startedAtMillis: result.startedAtMillis)
    }

    /// Pushes `result`'s final values to the Pushgateway at `base`.
    public static func push(_ result: RunResult, options: PrometheusExposition.Options, to base: String,
                            timeout: Duration = .seconds(10)) async throws {
        let id = runID(of: result)
        let target = try url(base: base, test: result.name, runID: id)
        // As messages show it: the gateway redacted (a password may hold `/`), LoadKit's own
        // grouping path (its `@base64` segments) as it is.
        let shownTarget = Endpoint.redact(gateway(base)) + groupingPath(test: result.name, runID: id)
        var o = options
        o.labels["test"] = nil
        o.labels["run_id"] = nil
        let body = Array(Secrets.scrub(PrometheusExposition.render(result.metrics, options: o), environment: result.environment).utf8)
        var headers = HTTPHeaders()
        headers.add("Content-Type", PrometheusExposition.contentType)
        let client = HTTPClient(maxConnectionsPerHost: 1)
        defer { client.shutdown() }
        let response: HTTPResponse
        do {
            response = try await client.send(.PUT, target, body: body, headers: headers, timeout: timeout)
        } catch {
            throw PushError(message: "cannot push to \(shownTarget): \(error)", source: error.loadKitSource)
        }
        guard (200..<300).contains(response.status) else {
            throw PushError(message: "the Pushgateway at \(shownTarget) answered HTTP \(response.status): "
                            + (bodyExcerpt(response.body, limit: 300) ?? "(empty body)"), source: .server)
        }
    }

    /// Pushes when `LOADKIT_PUSH_URL` is set; reports the outcome on stderr and never throws.
    public static func pushIfConfigured(_ result: RunResult, options: PrometheusExposition.Options,
                                        base: String? = Settings.current.string(variable)) async {
        guard let base, !base.isEmpty else { return }
        do {
            try await push(result, options: options, to: base)
            FileHandle.standardError.write(Data("loadkit: \(result.name): final metrics pushed to \(Endpoint.redact(base))\n".utf8))
        } catch {
            FileHandle.standardError.write(Data("loadkit: \(result.name): \(error) [\(error.loadKitSource.rawValue)]; the reports are written\n".utf8))
        }
    }
}
