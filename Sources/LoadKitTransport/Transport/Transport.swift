/// A byte stream on one ``EventLoop`` that protocol drivers (HTTP, WebSocket, STOMP; clients and
/// fixture servers alike) read and write: plain TCP (``TCPConnection``), TLS as a layer over TCP
/// (`TLSTransport`, with the `TLS` trait), or one end of an in-memory pair (``MemoryTransport``)
/// that lets a driver be tested without sockets.
///
/// Events arrive at the ``ConnectionDelegate`` given to ``start(delegate:)``, always on ``loop``.
/// Methods not marked thread-safe must be called on ``loop``.
package protocol Transport: AnyObject, Sendable {
    /// The loop that owns this transport; its delegate runs there.
    var loop: EventLoop { get }
    /// False once the transport is closed (locally or by the peer).
    var isOpen: Bool { get }
    /// The peer's socket address; nil when there is none (an in-memory pair).
    var peerAddress: SocketAddress? { get }
    /// The peer, as error messages name it (`127.0.0.1:8080`).
    var peerDescription: String { get }
    /// Bytes accepted by ``write(rawBytes:)`` but not yet handed to the kernel (or the peer).
    var bufferedBytes: Int { get }
    /// The bytes not yet handed to the kernel as they will go on the wire (TLS: ciphertext).
    var bufferedWireBytes: Int { get }

    /// Sets the delegate and starts delivering bytes to it. Thread-safe.
    func start(delegate: any ConnectionDelegate)
    /// Queues bytes for sending (copied when they cannot be sent at once). On the loop: the
    /// connection's state (and a TLS session's buffers) belong to its thread; a debug build
    /// traps a write from elsewhere, ``writeAndFlush(_:)`` is the thread-safe form.
    func write(rawBytes bytes: UnsafeRawBufferPointer)
    /// Queues two buffers as one write (a head and a body), without concatenating them. On the loop.
    func write(rawBytes first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer)
    /// Resumes `cont` once everything written so far has left this process (throws if the
    /// transport closes first) — except a TLS server's plaintext written before its handshake
    /// completed, which waits in the session. On the loop; ``writeAndFlush(_:)`` is the
    /// thread-safe form.
    func resumeWhenFlushed(_ cont: CheckedContinuation<Void, any Error>)
    /// Half-closes: the peer sees the end of the stream once queued bytes are sent; reading goes on.
    func shutdownOutput()
    /// Closes (thread-safe). The delegate sees `didCloseWith(nil)`.
    func close()
    /// Closes with `reason` as the cause the delegate sees (a protocol violation found above).
    func close(reason: TransportError?)
    /// Closes abruptly: the peer sees a reset, not an orderly end (fixtures inject dropped
    /// connections with it). On the loop.
    func abort()
    /// Resumes once the transport is closed (thread-safe).
    func waitClosed() async

    /// True when the transport runs TLS.
    var isTLS: Bool { get }
    /// How long the TLS handshake took (nanoseconds), nil without TLS or before it completed.
    var tlsHandshakeNanos: UInt64? { get }
    /// The negotiated TLS version (`TLSv1.3`), nil without TLS.
    var tlsVersion: String? { get }
    /// The ALPN protocol the peers agreed on (`http/1.1`), nil when none.
    var tlsNegotiatedALPN: String? { get }
    /// The bytes this transport's own framing added to what was written to it and took from
    /// what it read, since the last call: a TLS connection's handshake, record headers and tags,
    /// alerts. Drivers count their own bytes and add these for `data_sent` / `data_received`,
    /// the bytes on the wire as k6 counts them. (0, 0) for plain TCP. On the loop.
    func takeWireOverhead() -> (sent: Int, received: Int)
}

extension Transport {
    /// Queues `bytes` for sending.
    package func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write(rawBytes: $0) }
    }

    /// Default: two writes (TCP overrides it with one `writev`).
    package func write(rawBytes first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) {
        write(rawBytes: first)
        write(rawBytes: second)
    }

    /// Thread-safe write that resumes once the bytes have left this process (back-pressure for
    /// scripts); throws if the transport closes first.
    package func writeAndFlush(_ bytes: [UInt8]) async throws {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            loop.runOrExecute { [self] in
                guard isOpen else { cont.resume(throwing: TransportError.closedLocally); return }
                write(bytes)
                resumeWhenFlushed(cont)
            }
        }
    }

    package var isTLS: Bool { false }
    package var tlsHandshakeNanos: UInt64? { nil }
    package var tlsVersion: String? { nil }
    package var tlsNegotiatedALPN: String? { nil }
    /// No framing of its own: the bytes on the wire are the driver's.
    package func takeWireOverhead() -> (sent: Int, received: Int) { (0, 0) }
    package var bufferedWireBytes: Int { bufferedBytes }
}

/// The bytes a connection attempt or an opening handshake that failed wrote and read, for
/// `data_sent` / `data_received` (the transport is gone when the caller hears of it); filled on
/// the loop before the failure resumes the caller, which orders the writes before its reads.
package final class WireBytes: @unchecked Sendable {
    package var sent = 0
    package var received = 0
    package init() {}
}

/// Receives a transport's events, always on the transport's ``EventLoop``.
///
/// Implementations are protocol drivers (HTTP, WebSocket, STOMP) confined to that loop, and the
/// TLS layer (the delegate of the TCP connection beneath it).
package protocol ConnectionDelegate: AnyObject, Sendable {
    /// Bytes arrived. The buffer belongs to the loop and is reused after this returns:
    /// parse it or copy what must be kept.
    func connection(_ connection: any Transport, didRead bytes: UnsafeRawBufferPointer)
    /// The transport closed; `error` is nil for a local, orderly close.
    func connection(_ connection: any Transport, didCloseWith error: TransportError?)
    /// Everything queued has been handed on (back-pressure relief).
    func connectionDidDrain(_ connection: any Transport)
}

extension ConnectionDelegate {
    /// Default: nothing to do when the send queue drains.
    package func connectionDidDrain(_ connection: any Transport) {}
}

/// Opens client transports: TCP, with TLS layered over it when asked.
package enum TransportConnector {
    /// Opens a TCP connection to `address` (optionally from a local `source` address, any
    /// 127.x.y.z for loopback fan-out) and, with `tls`, runs the TLS handshake over it within
    /// another `timeout`, verifying the certificate for `tls.serverName` or else the address's
    /// IP. Fails with a classified ``TransportError``; without TLS support in the build a `tls`
    /// request throws ``TransportError/tls(_:)`` with ``TLSError/unavailable(_:)`` before connecting.
    ///
    /// By default the transport goes to the caller's loop when the caller runs on one (a virtual
    /// user), else to the next loop of the shared group. The caller must `start` or `close` what
    /// it gets: a TLS transport and its TCP connection hold each other until one of the two.
    /// A TLS handshake that fails leaves the bytes it wrote and read in `failedHandshake`.
    @inline(never)  // a small context of its own (see WebSocketClient.connectNow)
    package static func connect(to address: SocketAddress, from source: SocketAddress? = nil,
                                timeout: Duration = .seconds(10), tls: TLSConfiguration? = nil,
                                failedHandshake: WireBytes? = nil,
                                on loop: EventLoop = EventLoop.current ?? EventLoopGroup.shared.next()) async throws -> any Transport {
        guard let tls else { return try await TCPConnection.connect(to: address, from: source, timeout: timeout, on: loop) }
        #if TLS && canImport(COpenSSL)
        let context = try TLSContext.shared(for: tls)
        let tcp = try await TCPConnection.connect(to: address, from: source, timeout: timeout, on: loop)
        return try await TLSTransport.handshakeAsClient(over: tcp, context: context, serverName: tls.serverName ?? address.host,
                                                        timeout: timeout, failed: failedHandshake)
        #else
        throw TransportError.tls(.unavailable("TLS (https/wss) to \(tls.serverName ?? address.description)"))
        #endif
    }

    /// Resolves `host` and connects; see ``connect(to:from:timeout:tls:on:)``. With `tls`, SNI
    /// and the certificate check use `host` unless `tls.serverName` says otherwise.
    package static func connect(host: String, port: Int, from source: SocketAddress? = nil,
                                timeout: Duration = .seconds(10), tls: TLSConfiguration? = nil,
                                on loop: EventLoop = EventLoop.current ?? EventLoopGroup.shared.next()) async throws -> any Transport {
        if let tls, !tlsAvailable { throw TransportError.tls(.unavailable("TLS (https/wss) to \(tls.serverName ?? host)")) }
        let address = try await SocketAddress.resolve(host: host, port: port)
        return try await connect(to: address, from: source, timeout: timeout,
                                 tls: tls.map { $0.serverName == nil ? $0.withServerName(host) : $0 }, on: loop)
    }
}
