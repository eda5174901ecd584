#if TLS && canImport(COpenSSL)
import COpenSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The loop's 128 KB read buffer is split in three regions so that no connection allocates its
// own: [0, 3/8) plaintext handed to the delegate, [3/8, 6/8) ciphertext read from the socket
// (the TCP connection beneath reads there: `ReadRegion.tlsCiphertext`), [6/8, 1) ciphertext taken
// out of the write BIO on its way to the socket.
private let feedChunk = 8192  // ciphertext fed to the read BIO at a time (bounds the BIO's buffer)
private let writeChunk = 16384  // plaintext per SSL_write (one full record)
private let idleBIOLimit = 4096  // larger empty BIO buffers are released after each read or write

/// TLS as a layer over a ``TCPConnection``: the TCP connection's delegate below, a ``Transport``
/// above, so protocol drivers see plaintext through the same `didRead` / `write` API as plain TCP.
/// Everything here runs on the connection's loop.
///
/// Closing always goes through the TCP connection, which reports it back here
/// (``connection(_:didCloseWith:)``): that one place ends a pending handshake and tells the
/// delegate above, so a close is reported once whichever side started it.
package final class TLSTransport: Transport, ConnectionDelegate, @unchecked Sendable {
    /// The TCP connection beneath (ciphertext).
    let tcp: TCPConnection
    /// The OpenSSL state: handshake, memory BIOs, negotiated parameters.
    let session: TLSSession
    private var delegate: (any ConnectionDelegate)?

    public var loop: EventLoop { tcp.loop }
    public var isOpen: Bool { tcp.isOpen }
    public var peerAddress: SocketAddress? { tcp.remote }
    public var peerDescription: String { tcp.remote.description }
    /// Plaintext accepted by ``write(rawBytes:)`` and not yet handed to the kernel, in the units
    /// every other byte count uses (drivers count plaintext and ``takeWireOverhead()`` adds TLS's:
    /// a failed upgrade's `data_sent` is its request less this, plus that): the plaintext of the
    /// records still (partly) in the TCP connection's queue — a record partly handed over counts as unsent, the peer can read
    /// none of it yet — and, on a server, what waits for the handshake. On the loop.
    public var bufferedBytes: Int {
        guard tcp.bufferedBytes > 0 else { return session.earlyPlaintext.count }
        let handedOver = queuedCiphertext - tcp.bufferedBytes
        while queuedHead < queuedRecords.count && queuedRecords[queuedHead].ciphertextEnd <= handedOver {
            queuedPlaintext -= queuedRecords[queuedHead].plaintext
            queuedHead += 1
        }
        return queuedPlaintext + session.earlyPlaintext.count
    }
    // The TCP queue in plaintext (``bufferedBytes``): ciphertext handed to `tcp` since its queue
    // was last empty, and for each record written since whose ciphertext was not all taken by
    // the kernel at once, where its ciphertext ends in that count and how much plaintext it holds
    // (`queuedPlaintext`: their sum from `queuedHead` on). Nothing is kept while the kernel keeps up.
    private var queuedCiphertext = 0
    private var queuedRecords: [(ciphertextEnd: Int, plaintext: Int)] = []
    private var queuedHead = 0
    private var queuedPlaintext = 0
    // Bytes on the wire (``takeWireOverhead()``): ciphertext handed to the TCP connection and
    // read from it, plaintext encrypted and handed to the delegate, and the overhead taken so far.
    private var ciphertextOut = 0
    private var plaintextOut = 0
    private var ciphertextIn = 0
    private var plaintextIn = 0
    private var overheadTaken = (sent: 0, received: 0)
    /// Ciphertext this side put on the wire (handed to the kernel) and read from it, for tests
    /// that compare a peer's view with a client's figures.
    package var wireBytes: (sent: Int, received: Int) { (ciphertextOut - tcp.bufferedBytes, ciphertextIn) }
    public var isTLS: Bool { true }
    public var tlsHandshakeNanos: UInt64? { session.handshakeNanos }
    public var tlsVersion: String? { session.negotiatedVersion }
    public var tlsNegotiatedALPN: String? { session.negotiatedALPN }

    /// The TLS bytes beyond the plaintext since the last call. Sent: the ciphertext made less
    /// the plaintext encrypted, as drivers count what they write when they write it (a caller
    /// that wants only what left takes ``bufferedWireBytes`` off). Received: the ciphertext read
    /// less the plaintext delivered — a record still incomplete counts now, its plaintext takes
    /// it back when delivered, so a driver adding this to the plaintext of one read counts that
    /// read's ciphertext.
    public func takeWireOverhead() -> (sent: Int, received: Int) {
        let sent = ciphertextOut - plaintextOut, received = ciphertextIn - plaintextIn
        defer { overheadTaken = (sent, received) }
        return (sent - overheadTaken.sent, received - overheadTaken.received)
    }

    /// The ciphertext still in the TCP connection's queue.
    public var bufferedWireBytes: Int { tcp.bufferedBytes }

    private init(tcp: TCPConnection, session: TLSSession) {
        self.tcp = tcp
        self.session = session
    }

    /// Puts the layer under `tcp`'s reads. On the loop.
    private func attach() {
        tcp.readRegion = .tlsCiphertext
        tcp.attach(delegate: self)
    }

    // MARK: setting up

    /// Runs the client side of the handshake over a connected `tcp`; returns once established
    /// (closing `tcp` when it fails, with the bytes it wrote and read in `failed`).
    static func handshakeAsClient(over tcp: TCPConnection, context: TLSContext, serverName: String,
                                  timeout: Duration, failed: WireBytes? = nil) async throws -> TLSTransport {
        let session: TLSSession
        do throws(TLSError) {
            session = try TLSSession(context: context, serverName: serverName)
        } catch {
            tcp.close()
            throw TransportError.tls(error)
        }
        let tls = TLSTransport(tcp: tcp, session: session)
        do {
            try await handshake(tls, timeout: timeout)
        } catch {
            // Resumed from the loop once closed: nothing moves any more, the counts are final.
            if let failed { (failed.sent, failed.received) = tls.wireBytes }
            throw error
        }
        return tls
    }

    private static func handshake(_ tls: TLSTransport, timeout: Duration) async throws {
        let tcp = tls.tcp, session = tls.session
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            tls.loop.execute {
                guard tcp.isOpen else { cont.resume(throwing: TransportError.closedLocally); return }
                tls.attach()
                session.handshakeWaiter = cont
                session.handshakeTimer = tls.loop.schedule(after: timeout) {
                    guard session.state == .handshaking, tls.isOpen else { return }
                    tls.closeWith(.timedOut(endpoint: tls.peerDescription, operation: "TLS handshake"))
                }
                tcp.armReading()
                tls.pumpHandshake()  // sends the ClientHello
            }
        }
    }

    /// Server side: layers a session over an accepted connection and starts reading the
    /// ClientHello; nil (the connection closed) when no session could be made. On the loop.
    static func acceptAsServer(_ tcp: TCPConnection, context: TLSContext) -> TLSTransport? {
        let session: TLSSession
        do throws(TLSError) {
            session = try TLSSession(context: context, serverName: nil)
        } catch {
            tcp.close(reason: .tls(error))
            return nil
        }
        let tls = TLSTransport(tcp: tcp, session: session)
        tls.attach()
        tcp.armReading()
        return tls
    }

    /// Sets the delegate and starts delivering plaintext. Thread-safe.
    public func start(delegate: any ConnectionDelegate) {
        loop.runOrExecute { [self] in
            self.delegate = delegate
            guard isOpen else { return }
            // Plaintext that arrived with the end of the handshake waits in the session until now.
            loop.executeLocal { [self] in process() }
            tcp.armReading()
        }
    }

    // MARK: reading (ciphertext from the TCP connection)

    public func connection(_ connection: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        ciphertextIn += bytes.count
        var off = 0
        while off < bytes.count && isOpen {
            let c = min(feedChunk, bytes.count - off)
            _ = BIO_write(session.rbio, bytes.baseAddress! + off, Int32(c))
            off += c
            process()
        }
        guard isOpen else { return }
        session.trimBuffers(limit: idleBIOLimit)
        // Established but nobody to read yet (client between connect and start): leave the rest
        // (and any EOF or error) in the socket until start(delegate:) re-arms reading.
        if delegate == nil && session.state == .established { tcp.stopReading() }
    }

    public func connection(_ connection: any Transport, didCloseWith error: TransportError?) {
        var error = error
        if session.state == .handshaking, case .closedByPeer? = error {
            error = .tls(.protocolFailure(reason: "the peer closed the connection during the TLS handshake",
                                          endpoint: peerDescription))
        }
        session.handshakeTimer?.cancel()
        session.handshakeTimer = nil
        if let w = session.handshakeWaiter {
            session.handshakeWaiter = nil
            w.resume(throwing: error ?? TransportError.closedLocally)
        }
        let d = delegate
        delegate = nil  // break the delegate <-> transport cycle
        d?.connection(self, didCloseWith: error)
    }

    public func connectionDidDrain(_ connection: any Transport) {
        delegate?.connectionDidDrain(self)
    }

    /// Advances the handshake, then hands any plaintext to the delegate (if one is attached).
    private func process() {
        guard isOpen else { return }
        if session.state == .handshaking {
            pumpHandshake()
        }
        guard session.state == .established, delegate != nil else { return }
        readPlaintext()
    }

    private func pumpHandshake() {
        ERR_clear_error()
        let rc = SSL_do_handshake(session.ssl)
        if rc == 1 {
            session.markEstablished()
            flushOutput()
            session.trimBuffers(limit: 0)  // the handshake flights' buffers are not needed any more
            session.handshakeTimer?.cancel()
            session.handshakeTimer = nil
            if let w = session.handshakeWaiter {
                session.handshakeWaiter = nil
                w.resume()
            }
            if !session.earlyPlaintext.isEmpty {
                let early = session.earlyPlaintext
                session.earlyPlaintext = []
                early.withUnsafeBytes { write(rawBytes: $0) }
            }
            return
        }
        let err = SSL_get_error(session.ssl, rc)
        if err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE {
            flushOutput()
            return
        }
        let failure = session.failure(endpoint: peerDescription)
        session.state = .failed
        flushOutput()  // our alert, so the peer learns why
        closeWith(.tls(failure))
    }

    private func readPlaintext() {
        let buf = loop.readBuffer
        let plain = buf.baseAddress!
        let cap = Int32(3 * (buf.count / 8))
        while isOpen, let d = delegate {
            let r = SSL_read(session.ssl, plain, cap)
            if r > 0 {
                plaintextIn += Int(r)
                d.connection(self, didRead: UnsafeRawBufferPointer(start: plain, count: Int(r)))
                continue
            }
            let err = SSL_get_error(session.ssl, r)
            if err == SSL_ERROR_WANT_READ { break }
            if err == SSL_ERROR_ZERO_RETURN {
                // close_notify: answered in closeWith, then an orderly close like a FIN.
                session.receivedCloseNotify = true
                ERR_clear_error()
                closeWith(.closedByPeer(endpoint: peerDescription))
                return
            }
            let failure = session.failure(endpoint: peerDescription)
            session.state = .failed
            flushOutput()
            closeWith(.tls(failure))
            return
        }
        // Post-handshake messages (key updates) may need an answer.
        if isOpen && BIO_ctrl_pending(session.wbio) > 0 { flushOutput() }
    }

    // MARK: writing

    /// Encrypts `bytes` and sends the records (server: queues them until the handshake is done).
    public func write(rawBytes bytes: UnsafeRawBufferPointer) {
        // Off the loop, SSL_write would race the loop's use of the session (trimBuffers frees the BIOs).
        assert(loop.inLoop, "TLSTransport.write off its loop")
        guard isOpen, bytes.count > 0, !session.sentCloseNotify else { return }
        guard session.state == .established else {
            if session.state == .handshaking { session.earlyPlaintext.append(contentsOf: bytes) }
            return
        }
        let buf = loop.readBuffer
        if let p = bytes.baseAddress, p + bytes.count > buf.baseAddress! + 6 * (buf.count / 8),
           p < buf.baseAddress! + buf.count {
            // The bytes lie in the loop buffer region flushOutput writes ciphertext into (a plain
            // connection's read forwarded here): encrypt from a copy.
            let copy = Array(bytes)
            copy.withUnsafeBytes { write(rawBytes: $0) }
            return
        }
        var off = 0
        while off < bytes.count && isOpen {
            let n = min(writeChunk, bytes.count - off)
            let r = SSL_write(session.ssl, bytes.baseAddress! + off, Int32(n))
            if r <= 0 {
                let failure = session.failure(endpoint: peerDescription)
                session.state = .failed
                closeWith(.tls(failure))
                return
            }
            off += Int(r)
            plaintextOut += Int(r)
            flushOutput()
            if tcp.bufferedBytes > 0 {
                if queuedHead > 1024 && queuedHead * 2 > queuedRecords.count {
                    queuedRecords.removeFirst(queuedHead)
                    queuedHead = 0
                }
                queuedRecords.append((queuedCiphertext, Int(r)))
                queuedPlaintext += Int(r)
            }
        }
        if bytes.count > idleBIOLimit { session.trimBuffers(limit: idleBIOLimit) }
    }

    /// Once the ciphertext of everything written so far is handed to the kernel.
    public func resumeWhenFlushed(_ cont: CheckedContinuation<Void, any Error>) { tcp.resumeWhenFlushed(cont) }

    /// Moves ciphertext from the write BIO to the socket (or the connection's send queue); with
    /// `bestEffort`, only what the kernel takes at once, errors ignored (a last word before closing).
    private func flushOutput(bestEffort: Bool = false) {
        let buf = loop.readBuffer
        let q = buf.count / 8
        let out = buf.baseAddress! + 6 * q
        let cap = 2 * q
        if queuedCiphertext != 0 && tcp.bufferedBytes == 0 {
            // The kernel took everything queued: start counting afresh.
            queuedCiphertext = 0
            queuedRecords.removeAll(keepingCapacity: queuedRecords.count <= 1024)
            queuedHead = 0
            queuedPlaintext = 0
        }
        while isOpen && BIO_ctrl_pending(session.wbio) > 0 {
            let n = BIO_read(session.wbio, out, Int32(cap))
            if n <= 0 { break }
            let bytes = UnsafeRawBufferPointer(start: out, count: Int(n))
            if bestEffort { tcp.sendBestEffort(bytes) } else {
                queuedCiphertext += Int(n)
                ciphertextOut += Int(n)
                tcp.write(rawBytes: bytes)
            }
        }
    }

    /// close_notify, once, on an established session.
    private func sendCloseNotify(bestEffort: Bool) {
        guard session.state == .established, !session.sentCloseNotify else { return }
        session.sentCloseNotify = true
        ERR_clear_error()
        _ = SSL_shutdown(session.ssl)
        ERR_clear_error()
        flushOutput(bestEffort: bestEffort)
    }

    // MARK: closing

    /// Half-close: queues close_notify behind the unsent bytes, then the TCP FIN.
    public func shutdownOutput() {
        guard isOpen else { return }
        sendCloseNotify(bestEffort: false)
        tcp.shutdownOutput()
    }

    public func close() {
        loop.runOrExecute { [self] in closeWith(nil) }
    }

    public func close(reason: TransportError?) { closeWith(reason) }

    /// A TCP reset, no close_notify: the peer sees the connection dropped.
    public func abort() { tcp.abort() }

    public func waitClosed() async { await tcp.waitClosed() }

    /// A close decided on this side: on an orderly close (or an answer to the peer's), sends
    /// close_notify when it can go at once — it never waits for the peer's close_notify, so
    /// closing cannot hang on a slow or silent peer — then closes the TCP connection, which
    /// reports back to ``connection(_:didCloseWith:)``.
    private func closeWith(_ error: TransportError?) {
        guard isOpen else { return }
        // Best effort, as a send that fails must not turn an orderly close into an error.
        if error == nil || session.receivedCloseNotify, tcp.bufferedBytes == 0 { sendCloseNotify(bestEffort: true) }
        tcp.close(reason: error)
    }
}
#endif
