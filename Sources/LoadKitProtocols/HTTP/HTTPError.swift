import LoadKitTransport

/// A classified HTTP-layer failure. Transport failures (refused, reset, …) are thrown as
/// ``TransportError`` unchanged; this type covers what HTTP itself decides.
///
/// Messages never contain header values or query strings (they may carry tokens).
public enum HTTPError: ClassifiedError, Sendable, Equatable {
    /// A URL could not be parsed or uses an unsupported scheme (`bad_url`, script: the URL is
    /// the scenario's or its configuration's mistake, neither the server's nor the generator's).
    /// A script that opens a URL a server handed back rethrows it as the server's (a
    /// ``ScriptFailure`` with kind `bad_url` and source `.server`, naming the field).
    case badURL(input: String, reason: String)
    /// `https`/`wss` asked for but no TLS layer is available in this build (`tls_unavailable`).
    case tlsUnavailable(endpoint: String)
    /// The server answered with a status the script did not accept (`http_<code>`, server).
    case status(code: Int, method: String, endpoint: String)
    /// The peer sent bytes that are not valid HTTP/1.1 (`http_malformed`, server).
    case malformed(String)
    /// The message head exceeded the size or line-count limit (`http_head_too_large`).
    case headTooLarge(limit: Int)
    /// The message body exceeded the size limit (`http_body_too_large`).
    case bodyTooLarge(limit: Int)
    /// The whole request (waiting for a connection included) took longer than allowed (`timeout`).
    case timeout(after: Duration, endpoint: String)
    /// The client was shut down while the request was pending (`client_shutdown`).
    case clientShutdown

    public var kind: String {
        switch self {
        case .badURL: "bad_url"
        case .tlsUnavailable: "tls_unavailable"
        case .status(let code, _, _): "http_\(code)"
        case .malformed: "http_malformed"
        case .headTooLarge: "http_head_too_large"
        case .bodyTooLarge: "http_body_too_large"
        case .timeout: "timeout"
        case .clientShutdown: "client_shutdown"
        }
    }

    public var source: FailureSource {
        switch self {
        case .badURL: .script
        case .tlsUnavailable, .clientShutdown: .loadGenerator
        case .status, .malformed, .headTooLarge, .bodyTooLarge, .timeout: .server
        }
    }

    /// What happened, through ``Secrets/redact(_:)`` (a bad URL may carry a ticket or token).
    public var description: String { Secrets.redact(rawDescription) }

    private var rawDescription: String {
        switch self {
        case .badURL(let input, let reason): "bad URL '\(input)': \(reason)"
        case .tlsUnavailable(let e): "\(e): " + TLSError.unavailable("https/wss").description
        case .status(let code, let method, let e): "\(method) \(e) answered HTTP \(code) (server)"
        case .malformed(let why): "malformed HTTP message: \(why) (server)"
        case .headTooLarge(let limit): "HTTP head larger than \(limit) bytes or too many header lines"
        case .bodyTooLarge(let limit): "HTTP body larger than the limit of \(limit) bytes"
        case .timeout(let d, let e): "HTTP request to \(e) timed out after \(d.readable)"
        case .clientShutdown: "HTTP client shut down while the request was pending"
        }
    }
}

/// An HTTP request that timed out in the client's queue, before any connection took it: the
/// host's pool was capped (``HTTPClient/Configuration/maxConnectionsPerHost``) and every
/// connection stayed busy with earlier requests. Kind, side and opening words are the plain
/// time-out's (the server kept the connections busy); the rest says where the time went.
package struct HTTPQueueTimeout: ClassifiedError, Sendable, Equatable {
    /// The time-out as any request's (`HTTPError.timeout`).
    let timeout: HTTPError
    /// The pool's `host:port`.
    let authority: String
    /// The pool's cap.
    let connections: Int
    package var kind: String { timeout.kind }
    package var source: FailureSource { timeout.source }
    package var description: String {
        timeout.description + Secrets.redact(" waiting for a connection: the client's \(connections) connection"
            + "\(connections == 1 ? "" : "s") to \(authority) (maxConnectionsPerHost) stayed busy with earlier requests")
    }
}
