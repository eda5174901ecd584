import LoadKitTransport

extension StompClient {
    /// The subprotocols offered by default in the WebSocket handshake.
    public static let webSocketSubprotocols = ["v12.stomp", "v11.stomp", "v10.stomp"]

    /// Connects to a STOMP broker over WebSocket (`ws://host:port/path?query`): the WebSocket
    /// handshake (with `wsHeaders`, e.g. `Authorization`, and the STOMP subprotocols offered),
    /// then CONNECT → CONNECTED, all within `timeout`. Frames travel one per WebSocket message;
    /// several frames in one message and frames split over messages are parsed as well.
    ///
    /// Measures ``webSocketConnectNanos`` (TCP + upgrade) and ``stompConnectNanos``. Throws a
    /// ``TransportError``, a ``WebSocketError`` (e.g. `ws_handshake_401`) or a ``StompError``.
    public static func connect(webSocket url: String, connectHeaders: [(String, String)] = [], host: String? = nil,
                               heartBeat: (send: Duration, receive: Duration) = (.seconds(10), .seconds(10)),
                               timeout: Duration = .seconds(10), wsHeaders: [(String, String)] = [],
                               subprotocols: [String] = StompClient.webSocketSubprotocols,
                               source: SocketAddress? = nil, tls: TLSConfiguration? = nil,
                               on loop: EventLoop = EventLoop.current ?? EventLoopGroup.shared.next()) async throws -> StompClient {
        let config = StompClientConfiguration(host: host, connectHeaders: connectHeaders, heartBeat: heartBeat)
        return try await connect(webSocket: url, configuration: config, timeout: timeout, wsHeaders: wsHeaders,
                                 subprotocols: subprotocols, source: source, tls: tls, on: loop)
    }

    /// Connects over WebSocket with a full ``StompClientConfiguration``; see
    /// ``connect(webSocket:connectHeaders:host:heartBeat:timeout:wsHeaders:subprotocols:source:on:)``.
    package static func connect(webSocket url: String, configuration: StompClientConfiguration,
                               timeout: Duration = .seconds(10), wsHeaders: [(String, String)] = [],
                               subprotocols: [String] = StompClient.webSocketSubprotocols,
                               source: SocketAddress? = nil, limits: StompFrameParser.Limits = .init(),
                               tls: TLSConfiguration? = nil,
                               on loop: EventLoop = EventLoop.current ?? EventLoopGroup.shared.next()) async throws -> StompClient {
        // In a task of its own: the deep connect path's frames are freed when it ends instead of
        // staying in the (long-lived) caller's task allocator.
        try await inShortTask(on: loop) {
            try await connectNow(webSocket: url, configuration: configuration, timeout: timeout, wsHeaders: wsHeaders,
                                 subprotocols: subprotocols, source: source, limits: limits, tls: tls.map(TLSSettings.init), on: loop)
        }
    }

    /// ``connect(webSocket:configuration:timeout:wsHeaders:subprotocols:source:limits:tls:on:)`` in
    /// the caller's task, for a caller that is itself a short task (a second one nested in it
    /// would only add its memory to every connect in flight). `tls`: the configuration by
    /// reference (``TLSSettings``), nil for the default client configuration.
    package static func connectNow(webSocket url: String, configuration: StompClientConfiguration,
                                   timeout: Duration, wsHeaders: [(String, String)] = [], subprotocols: [String] = StompClient.webSocketSubprotocols,
                                   source: SocketAddress? = nil, limits: StompFrameParser.Limits = .init(), tls: TLSSettings? = nil,
                                   on loop: EventLoop) async throws -> StompClient {
        let start = monotonicNanos()
        let ws = try await WebSocketClient.connectNow(try Endpoint(url, defaultScheme: .ws), headers: wsHeaders, subprotocols: subprotocols, timeout: timeout,
                                                   maxMessageSize: limits.maxBodySize + limits.maxLineLength * 4,
                                                   source: source, tls: tls, countsOperation: false, on: loop)
        return try await handshake(over: ws, configuration: configuration, limits: limits, timeout: timeout, start: start)
    }

    /// The STOMP handshake (CONNECT → CONNECTED) over an open WebSocket (over TCP, TLS, or an
    /// in-memory pair in tests), within what is left of `timeout` since `start`; when it fails
    /// the WebSocket's closing handshake (started by the failure) is left to finish.
    @inline(never)
    static func handshake(over ws: WebSocketClient, configuration: StompClientConfiguration,
                          limits: StompFrameParser.Limits, timeout: Duration, start: UInt64) async throws -> StompClient {
        let client = StompClient(loop: ws.loop, configuration: configuration, limits: limits)
        client.webSocketConnectNanos = ws.handshakeNanos
        client.tlsHandshakeNanos = ws.tlsHandshakeNanos
        client.transportConnectNanos = ws.handshakeNanos
        client.webSocketSubprotocol = ws.subprotocol
        let spent = monotonicNanos() &- start
        let remaining = Duration.nanoseconds(Int64(max(1_000_000, timeout.nanoseconds &- min(spent, timeout.nanoseconds))))
        let connection = ws.connection
        do {
            try await client.handshake(timeout: remaining) {
                client.transport = .webSocket(connection)
                connection.setHandler(client)
            }
        } catch {
            // The failure closed the session already (`fail` starts the WebSocket's closing
            // handshake, bounded by its close time-out): let it finish, so the server's close
            // frame is read and counted; dropping TCP here left it unread (a held-out user's server
            // sent 4 bytes a refused login more than LoadKit counted). Close only what is still open.
            connection.loop.runOrExecute { if connection.isOpen { connection.closeOnLoop(code: WebSocketCloseCode.normal) } }
            throw error
        }
        return client
    }
}

/// The client is its WebSocket's handler: messages feed its STOMP parser on the loop, without
/// copies (no adapter object per connection). Like any handler it is dropped by the connection
/// when it closes, which ends the client ↔ connection cycle.
extension StompClient: WebSocketHandler {
    package func webSocket(_ ws: WebSocketConnection, didReceive opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) {
        handleBytes(payload)
    }

    package func webSocket(_ ws: WebSocketConnection, didCloseWith info: WebSocketCloseInfo) {
        transportClosed(error: WebSocketConnection.error(for: info, role: ws.role))
    }

    /// The runner closes the session (the script left it open): over now — no failure, and a
    /// client kept with `user.once` reads as ended at once (the next iteration makes a new one).
    package func webSocketAbandoned(_ ws: WebSocketConnection) {
        // The script's doing (it left the session open), as the WebSocket's own `ws_closed [script]`.
        closeTransport(cause: StompError(kind: "stomp_closed", source: .script,
                                         message: "STOMP session closed by the runner: the script left it open"))
    }
}
