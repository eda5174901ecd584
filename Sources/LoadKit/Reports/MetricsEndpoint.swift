/// A tiny HTTP endpoint serving `GET /metrics` (Prometheus text, format 0.0.4) while a run is
/// live. Built on ``TCPListener`` and ``HTTPRequestHeadParser``; one response per connection
/// (`Connection: close`), 404 for other paths, 405 for other methods.
package final class MetricsEndpoint: Sendable {
    /// The bound port (useful when 0 was asked for).
    public let port: Int
    private let listener: TCPListener

    /// Listens on `host:port` (default `127.0.0.1:2112`, seed 001's) and answers with `render()`.
    public init(host: String = "127.0.0.1", port: Int = 2112, render: @escaping @Sendable () -> String) throws {
        listener = try TCPListener(host: host, port: port, backlog: 64) { conn in
            conn.start(delegate: MetricsEndpointHandler(render: render))
        }
        self.port = listener.address.port
    }

    /// Serves the merged snapshot of `registry` (without per-call cost when nobody scrapes).
    public convenience init(registry: MetricsRegistry, options: PrometheusExposition.Options = .init(),
                            host: String = "127.0.0.1", port: Int = 2112) throws {
        try self.init(host: host, port: port) {
            PrometheusExposition.render(registry.snapshot(perSecond: false), options: options)
        }
    }

    /// Stops listening.
    public func close() { listener.close() }

    deinit { listener.close() }
}

/// Per-connection state, confined to the connection's loop.
final class MetricsEndpointHandler: ConnectionDelegate, @unchecked Sendable {
    private var parser = HTTPRequestHeadParser(limits: HTTPHeadLimits(maxHeadBytes: 16 * 1024, maxLines: 100))
    private var answered = false
    private let render: @Sendable () -> String

    init(render: @escaping @Sendable () -> String) { self.render = render }

    func connection(_ connection: TCPConnection, didRead bytes: UnsafeRawBufferPointer) {
        guard !answered else { return }
        switch parser.parse(bytes) {
        case .needMore: return
        case .failure:
            respond(connection, status: "400 Bad Request", body: "bad request\n", head: false)
        case .done(let head, _):
            let path = head.target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.target
            if head.method != .GET && head.method != .HEAD {
                respond(connection, status: "405 Method Not Allowed", body: "only GET\n", head: false)
            } else if path != "/metrics" {
                respond(connection, status: "404 Not Found", body: "try /metrics\n", head: head.method == .HEAD)
            } else {
                respond(connection, status: "200 OK", body: render(), head: head.method == .HEAD,
                        contentType: PrometheusExposition.contentType)
            }
        }
    }

    private func respond(_ c: TCPConnection, status: String, body: String, head: Bool,
                         contentType: String = "text/plain; charset=utf-8") {
        answered = true
        let bodyBytes = Array(body.utf8)
        var text = "HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(bodyBytes.count)\r\n"
        text += "Connection: close\r\n\r\n"
        c.write(Array(text.utf8) + (head ? [] : bodyBytes))
        c.shutdownOutput()
        // The client closes after reading; do not keep a silent one forever.
        _ = c.loop.schedule(after: .seconds(10)) { c.close() }
    }

    func connection(_ connection: TCPConnection, didCloseWith error: TransportError?) {}
}
