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

/// The failure counted for an answer whose status the request did not expect (`http_<code>`,
/// server): ``HTTPError/status(code:method:endpoint:)``'s kind, side and words, plus the reason
/// phrase and an excerpt of what the server said in the body — an error page usually names its
/// cause. The excerpt is made only when the text is asked for (a run keeps a few examples per
/// kind), redacted before it is cut (``Secrets/excerpt(_:limit:)``): a body may echo a token.
package struct HTTPUnexpectedStatus: ClassifiedError, Sendable {
    let code: Int
    let method: String
    /// The request's URL as ``Endpoint/description`` writes it (no query).
    let endpoint: String
    let reason: String
    let body: [UInt8]

    /// The status error as ``HTTPResponse/requireStatus(_:)`` throws it.
    var status: HTTPError { .status(code: code, method: method, endpoint: endpoint) }
    package var kind: String { status.kind }
    package var source: FailureSource { .server }
    package var description: String {
        let phrase = reason.isEmpty ? "" : " \(reason)"
        return Secrets.redact("\(method) \(endpoint) answered HTTP \(code)\(phrase) (server)") + ", " + Self.excerpt(body)
    }

    /// `body: <text>` (at most 120 characters, one line), `empty body` (none, or only white
    /// space), or `body: 812 bytes, not text` (``bodyExcerpt(_:limit:)``).
    static func excerpt(_ body: [UInt8]) -> String { bodyExcerpt(body, limit: 120).map { "body: " + $0 } ?? "empty body" }
}

/// The start of a peer's body for an error message, on one line — servers put their reason there
/// (`INVALID_TICKET`, `{"error":"db pool exhausted"}`): at most `limit` characters, redacted before
/// they are cut (``Secrets/excerpt(_:limit:)`` over the first 4 KB: a cut never leaves half of a
/// token that redaction would have masked, and a large error page costs the loop little);
/// `812 bytes, not text` when the part shown is not UTF-8 text; nil when empty or white space.
package func bodyExcerpt(_ body: [UInt8], limit: Int) -> String? {
    // Judged on about what is shown: a form feed deep in a page does not hide its start.
    let judged = body.prefix(512)
    let judgedText = String(decoding: judged, as: UTF8.self).unicodeScalars
    // Invalid UTF-8 (a last character split by the cut is tolerated), or control characters
    // other than tab and line breaks.
    let replaced = (body.count > judged.count ? judgedText.dropLast() : judgedText[...]).contains { $0 == "\u{FFFD}" }
    let control = judged.contains { ($0 < 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D) || $0 == 0x7F }
    if replaced || control { return "\(body.count) bytes, not text" }
    let text = String(decoding: body.prefix(4 * 1024), as: UTF8.self)
    return text.allSatisfy(\.isWhitespace) ? nil : Secrets.excerpt(text, limit: limit)
}
