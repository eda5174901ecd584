#if TLS && canImport(COpenSSL)
import COpenSSL
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The TLS layer of a TCPConnection: between the socket and the delegate, so protocol code sees
// plaintext through the same `didRead` / `write` API. Everything here runs on the connection's loop.

extension TCPConnection {
    /// True when the connection runs TLS.
    public var isTLS: Bool {
        #if TLS && canImport(COpenSSL)
        tlsSession != nil
        #else
        false
        #endif
    }

    /// How long the TLS handshake took (nanoseconds, from the end of the TCP connect or the
    /// accept to the handshake's completion), for the `tls_handshake` metric; nil without TLS
    /// or before the handshake completed. Read on the loop (or after `connect` returned).
    public var tlsHandshakeNanos: UInt64? {
        #if TLS && canImport(COpenSSL)
        tlsSession?.handshakeNanos
        #else
        nil
        #endif
    }

    /// The ALPN protocol the peers agreed on (e.g. `http/1.1`), nil when none.
    public var tlsNegotiatedALPN: String? {
        #if TLS && canImport(COpenSSL)
        tlsSession?.negotiatedALPN
        #else
        nil
        #endif
    }

    /// The negotiated protocol version (`TLSv1.3`, `TLSv1.2`), nil without TLS.
    public var tlsVersion: String? {
        #if TLS && canImport(COpenSSL)
        tlsSession?.negotiatedVersion
        #else
        nil
        #endif
    }
}

#if TLS && canImport(COpenSSL)
// The loop's 128 KB read buffer is split in three regions so that no connection allocates its
// own: [0, 3/8) plaintext handed to the delegate, [3/8, 6/8) ciphertext read from the socket,
// [6/8, 1) ciphertext taken out of the write BIO on its way to the socket.
private let feedChunk = 8192  // ciphertext fed to the read BIO at a time (bounds the BIO's buffer)
private let writeChunk = 16384  // plaintext per SSL_write (one full record)
private let idleBIOLimit = 4096  // larger empty BIO buffers are released after each read or write

extension TCPConnection {
    // MARK: setting up

    /// Runs the client side of the handshake on the loop; returns once established.
    func handshakeAsClient(context: TLSContext, serverName: String, timeout: Duration) async throws {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            loop.execute { [self] in
                guard isOpen else { cont.resume(throwing: TransportError.closedLocally); return }
                let tls: TLSSession
                do throws(TLSError) {
                    tls = try TLSSession(context: context, serverName: serverName)
                } catch {
                    closeWith(.tls(error))
                    cont.resume(throwing: TransportError.tls(error))
                    return
                }
                tlsSession = tls
                tls.handshakeWaiter = cont
                tls.handshakeTimer = loop.schedule(after: timeout) { [self] in
                    guard tls.state == .handshaking, isOpen else { return }
                    closeWith(.timedOut(endpoint: remote.description, operation: "TLS handshake"))
                }
                armReading()
                tlsPumpHandshake(tls)  // sends the ClientHello
            }
        }
    }

    /// Server side: attaches a session to an accepted connection and starts reading the ClientHello.
    func startServerTLS(context: TLSContext) {
        do throws(TLSError) {
            tlsSession = try TLSSession(context: context, serverName: nil)
        } catch {
            closeWith(.tls(error))
            return
        }
        armReading()
    }

    // MARK: reading

    func tlsHandleReadable(_ tls: TLSSession, untilEnd: Bool) {
        let buf = loop.readBuffer
        let q = buf.count / 8
        let input = buf.baseAddress! + 3 * q
        let cap = 3 * q
        var rounds = 0
        defer { if isOpen { tls.trimBuffers(limit: idleBIOLimit) } }
        while isOpen {
            // Established but nobody to read yet (client between connect and start): leave the
            // rest (and any EOF or error) in the socket until start(delegate:) re-arms reading.
            if delegate == nil && tls.state == .established { stopReading(); return }
            let n = read(fd, input, cap)
            if n > 0 {
                var off = 0
                while off < n && isOpen {
                    let c = min(feedChunk, n - off)
                    _ = BIO_write(tls.rbio, input + off, Int32(c))
                    off += c
                    tlsProcess(tls)
                }
                rounds += 1
                if n < cap && !untilEnd { return }
                if rounds >= 4 { queueReadAgain(); return }
                continue
            }
            if n == 0 {
                if tls.state == .handshaking {
                    closeWith(.tls(.protocolFailure(reason: "the peer closed the connection during the TLS handshake",
                                                    endpoint: remote.description)))
                } else {
                    closeWith(.closedByPeer(endpoint: remote.description))
                }
                return
            }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return }
            closeWith(TransportError.from(errno: e, call: "read", endpoint: remote.description))
            return
        }
    }

    /// Advances the handshake, then hands any plaintext to the delegate (if one is attached).
    func tlsProcess(_ tls: TLSSession) {
        guard isOpen else { return }
        if tls.state == .handshaking {
            tlsPumpHandshake(tls)
        }
        guard tls.state == .established, delegate != nil else { return }
        tlsReadPlaintext(tls)
    }

    func tlsPumpHandshake(_ tls: TLSSession) {
        ERR_clear_error()
        let rc = SSL_do_handshake(tls.ssl)
        if rc == 1 {
            tls.markEstablished()
            tlsFlushOutput(tls)
            tls.trimBuffers(limit: 0)  // the handshake flights' buffers are not needed any more
            tls.handshakeTimer?.cancel()
            tls.handshakeTimer = nil
            if let w = tls.handshakeWaiter {
                tls.handshakeWaiter = nil
                w.resume()
            }
            if !tls.earlyPlaintext.isEmpty {
                let early = tls.earlyPlaintext
                tls.earlyPlaintext = []
                early.withUnsafeBytes { tlsWrite(tls, $0) }
            }
            return
        }
        let err = SSL_get_error(tls.ssl, rc)
        if err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE {
            tlsFlushOutput(tls)
            return
        }
        let failure = tls.failure(endpoint: remote.description)
        tls.state = .failed
        tlsFlushOutput(tls)  // our alert, so the peer learns why
        closeWith(.tls(failure))
    }

    private func tlsReadPlaintext(_ tls: TLSSession) {
        let buf = loop.readBuffer
        let plain = buf.baseAddress!
        let cap = Int32(3 * (buf.count / 8))
        while isOpen, let d = delegate {
            let r = SSL_read(tls.ssl, plain, cap)
            if r > 0 {
                d.connection(self, didRead: UnsafeRawBufferPointer(start: plain, count: Int(r)))
                continue
            }
            let err = SSL_get_error(tls.ssl, r)
            if err == SSL_ERROR_WANT_READ { break }
            if err == SSL_ERROR_ZERO_RETURN {
                // close_notify: answered in tlsWillClose, then an orderly close like a FIN.
                tls.receivedCloseNotify = true
                ERR_clear_error()
                closeWith(.closedByPeer(endpoint: remote.description))
                return
            }
            let failure = tls.failure(endpoint: remote.description)
            tls.state = .failed
            tlsFlushOutput(tls)
            closeWith(.tls(failure))
            return
        }
        // Post-handshake messages (key updates) may need an answer.
        if isOpen && BIO_ctrl_pending(tls.wbio) > 0 { tlsFlushOutput(tls) }
    }

    // MARK: writing

    /// Encrypts `bytes` and sends the records (server: queues them until the handshake is done).
    func tlsWrite(_ tls: TLSSession, _ bytes: UnsafeRawBufferPointer) {
        guard isOpen, bytes.count > 0, !tls.sentCloseNotify else { return }
        guard tls.state == .established else {
            if tls.state == .handshaking { tls.earlyPlaintext.append(contentsOf: bytes) }
            return
        }
        let buf = loop.readBuffer
        if let p = bytes.baseAddress, p + bytes.count > buf.baseAddress! + 6 * (buf.count / 8),
           p < buf.baseAddress! + buf.count {
            // The bytes lie in the loop buffer region tlsFlushOutput writes ciphertext into (a plain
            // connection's read forwarded here): encrypt from a copy.
            let copy = Array(bytes)
            copy.withUnsafeBytes { tlsWrite(tls, $0) }
            return
        }
        var off = 0
        while off < bytes.count && isOpen {
            let n = min(writeChunk, bytes.count - off)
            let r = SSL_write(tls.ssl, bytes.baseAddress! + off, Int32(n))
            if r <= 0 {
                let failure = tls.failure(endpoint: remote.description)
                tls.state = .failed
                closeWith(.tls(failure))
                return
            }
            off += Int(r)
            tlsFlushOutput(tls)
        }
        if bytes.count > idleBIOLimit { tls.trimBuffers(limit: idleBIOLimit) }
    }

    /// Moves ciphertext from the write BIO to the socket (or the connection's send queue).
    func tlsFlushOutput(_ tls: TLSSession) {
        let buf = loop.readBuffer
        let q = buf.count / 8
        let out = buf.baseAddress! + 6 * q
        let cap = 2 * q
        while isOpen && BIO_ctrl_pending(tls.wbio) > 0 {
            let n = BIO_read(tls.wbio, out, Int32(cap))
            if n <= 0 { break }
            socketWrite(UnsafeRawBufferPointer(start: out, count: Int(n)))
        }
    }

    // MARK: closing

    /// Half-close: queues close_notify behind the unsent bytes.
    func tlsSendCloseNotify(_ tls: TLSSession) {
        guard tls.state == .established, !tls.sentCloseNotify else { return }
        tls.sentCloseNotify = true
        ERR_clear_error()
        _ = SSL_shutdown(tls.ssl)
        ERR_clear_error()
        tlsFlushOutput(tls)
    }

    /// Called by `closeWith` before the socket closes: fails a pending handshake and, on an
    /// orderly close, sends close_notify with one non-blocking send. It never waits for the
    /// peer's close_notify, so closing cannot hang on a slow or silent peer.
    func tlsWillClose(_ tls: TLSSession, _ error: TransportError?) {
        tls.handshakeTimer?.cancel()
        tls.handshakeTimer = nil
        if let w = tls.handshakeWaiter {
            tls.handshakeWaiter = nil
            w.resume(throwing: error ?? TransportError.closedLocally)
        }
        guard tls.state == .established, !tls.sentCloseNotify,
              error == nil || tls.receivedCloseNotify, bufferedBytes == 0 else { return }
        tls.sentCloseNotify = true
        ERR_clear_error()
        _ = SSL_shutdown(tls.ssl)
        ERR_clear_error()
        let buf = loop.readBuffer
        let q = buf.count / 8
        let out = buf.baseAddress! + 6 * q
        let n = BIO_read(tls.wbio, out, Int32(2 * q))
        if n > 0 { _ = systemSend(fd, out, Int(n)) }
    }
}
#endif
