import LoadKitTransport
import LoadKitProtocols

/// A tiny HTTP endpoint serving `GET /metrics` (Prometheus text, format 0.0.4) while a run is
/// live: the package's one ``HTTPServer`` with a two-line handler (404 for other paths, 405 for
/// other methods; HEAD answered without a body by the server).
package final class MetricsEndpoint: Sendable {
    /// The bound port (useful when 0 was asked for).
    public var port: Int { server.port }
    private let server: HTTPServer

    /// Listens on `host:port` (default `127.0.0.1:2112`, seed 001's) and answers with `render()`.
    public init(host: String = "127.0.0.1", port: Int = 2112, render: @escaping @Sendable () -> String) throws {
        server = try HTTPServer(host: host, port: port) { request in
            guard request.method == .GET || request.method == .HEAD else { return .text("only GET\n", status: 405) }
            guard request.path == "/metrics" else { return .text("try /metrics\n", status: 404) }
            var response = HTTPServerResponse.text(render())
            response.headers.set("Content-Type", PrometheusExposition.contentType)
            return response
        }
    }

    /// Serves the merged snapshot of `registry` (without per-call cost when nobody scrapes).
    public convenience init(registry: MetricsRegistry, options: PrometheusExposition.Options = .init(),
                            host: String = "127.0.0.1", port: Int = 2112) throws {
        try self.init(host: host, port: port) {
            PrometheusExposition.render(registry.snapshot(perSecond: false), options: options)
        }
    }

    /// Stops listening and closes open scrape connections.
    public func close() { server.stop() }
}
