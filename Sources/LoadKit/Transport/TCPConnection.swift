#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// Receives a connection's events, always on the connection's ``EventLoop``.
///
/// Implementations are protocol drivers (HTTP, WebSocket, STOMP) confined to that loop.
public protocol ConnectionDelegate: AnyObject, Sendable {
    /// Bytes arrived. The buffer belongs to the loop and is reused after this returns:
    /// parse it or copy what must be kept.
    func connection(_ connection: TCPConnection, didRead bytes: UnsafeRawBufferPointer)
    /// The connection closed; `error` is nil for a local, orderly close.
    func connection(_ connection: TCPConnection, didCloseWith error: TransportError?)
    /// Everything queued has been handed to the kernel (back-pressure relief).
    func connectionDidDrain(_ connection: TCPConnection)
}

extension ConnectionDelegate {
    /// Default: nothing to do when the send queue drains.
    public func connectionDidDrain(_ connection: TCPConnection) {}
}

/// A non-blocking TCP connection driven by DispatchSources on one ``EventLoop``.
///
/// All methods not marked thread-safe must be called on ``loop``. Connect with
/// ``connect(to:from:timeout:on:)``, then call ``start(delegate:)`` to begin reading.
public final class TCPConnection: @unchecked Sendable, CustomStringConvertible {
    /// The loop that owns this connection.
    public let loop: EventLoop
    /// The peer's address.
    public let remote: SocketAddress
    let fd: Int32

    /// The current delegate (set through ``start(delegate:)``).
    public private(set) var delegate: (any ConnectionDelegate)?
    /// False once the connection is closed (locally or by the peer).
    public private(set) var isOpen = true

    #if TLS && canImport(COpenSSL)
    /// The TLS layer between the socket and the delegate; nil for plain TCP.
    var tlsSession: TLSSession?
    #endif

    private var readSource: (any DispatchSourceRead)?
    private var writeSource: (any DispatchSourceWrite)?
    private var liveSources = 0
    private var fdClosed = false

    // Unsent bytes: `pending[pendingStart...]`.
    private var pending: [UInt8] = []
    private var pendingStart = 0
    private var queuedTotal: UInt64 = 0
    private var writtenTotal: UInt64 = 0
    private var flushWaiters: [(mark: UInt64, cont: CheckedContinuation<Void, any Error>)] = []
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    private var shutdownAfterFlush = false

    /// Bytes queued but not yet accepted by the kernel.
    public var bufferedBytes: Int { pending.count - pendingStart }

    public var description: String { "TCPConnection(fd: \(fd), remote: \(remote))" }

    init(fd: Int32, remote: SocketAddress, loop: EventLoop) {
        self.fd = fd
        self.remote = remote
        self.loop = loop
    }

    deinit {
        if !fdClosed && liveSources == 0 { _ = systemClose(fd) }
    }

    // MARK: connecting

    /// Opens a TCP connection to `address`, optionally from a given local `source` address
    /// (any 127.x.y.z for loopback fan-out), failing with a classified ``TransportError``.
    ///
    /// With `tls`, the TLS handshake runs on the loop after the TCP connect (within another
    /// `timeout`), verifying the certificate for `tls.serverName` or else the address's IP; the
    /// delegate then reads and writes plaintext. Without TLS support in the build this throws
    /// ``TransportError/tls(_:)`` with ``TLSError/unavailable(_:)`` before connecting.
    public static func connect(to address: SocketAddress, from source: SocketAddress? = nil,
                               timeout: Duration = .seconds(10), tls: TLSConfiguration? = nil,
                               on loop: EventLoop = EventLoopGroup.shared.next()) async throws -> TCPConnection {
        guard let tls else { return try await connectTCP(to: address, from: source, timeout: timeout, on: loop) }
        #if TLS && canImport(COpenSSL)
        let context = try TLSContext.shared(for: tls)
        let conn = try await connectTCP(to: address, from: source, timeout: timeout, on: loop)
        try await conn.handshakeAsClient(context: context, serverName: tls.serverName ?? address.host, timeout: timeout)
        return conn
        #else
        throw TransportError.tls(.unavailable("TLS (https/wss) to \(tls.serverName ?? address.description)"))
        #endif
    }

    private static func connectTCP(to address: SocketAddress, from source: SocketAddress?, timeout: Duration,
                                   on loop: EventLoop) async throws -> TCPConnection {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<TCPConnection, any Error>) in
            loop.execute {
                let endpoint = address.description
                let fd: Int32
                do { fd = try makeSocket(family: address.family) } catch {
                    cont.resume(throwing: error); return
                }
                if let source {
                    #if os(Linux)
                    // Let connect() pick the port per destination, so 28k ports are available per
                    // (source, destination) pair instead of per source address.
                    var one: Int32 = 1
                    _ = setsockopt(fd, Int32(IPPROTO_IP), 24 /* IP_BIND_ADDRESS_NO_PORT */, &one, socklen_t(MemoryLayout<Int32>.size))
                    #endif
                    let rc = source.withPort(0).withSockAddr { bind(fd, $0, $1) }
                    if rc != 0 {
                        let e = errno
                        _ = systemClose(fd)
                        cont.resume(throwing: e == EADDRNOTAVAIL
                            ? TransportError.addressing("source address \(source.host) is not local")
                            : TransportError.from(errno: e, call: "bind", endpoint: endpoint))
                        return
                    }
                }
                let rc = address.withSockAddr { systemConnect(fd, $0, $1) }
                let conn = TCPConnection(fd: fd, remote: address, loop: loop)
                if rc == 0 { cont.resume(returning: conn); return }
                let e = errno
                guard e == EINPROGRESS else {
                    conn.fdClosed = true
                    conn.isOpen = false
                    _ = systemClose(fd)
                    cont.resume(throwing: TransportError.from(errno: e, call: "connect", endpoint: endpoint))
                    return
                }
                conn.awaitConnect(timeout: timeout, cont: cont)
            }
        }
    }

    /// Resolves `host` and connects; see ``connect(to:from:timeout:tls:on:)``. With `tls`, SNI
    /// and the certificate check use `host` unless `tls.serverName` says otherwise.
    public static func connect(host: String, port: Int, from source: SocketAddress? = nil,
                               timeout: Duration = .seconds(10), tls: TLSConfiguration? = nil,
                               on loop: EventLoop = EventLoopGroup.shared.next()) async throws -> TCPConnection {
        if let tls, !tlsAvailable { throw TransportError.tls(.unavailable("TLS (https/wss) to \(tls.serverName ?? host)")) }
        let address = try await SocketAddress.resolve(host: host, port: port)
        return try await connect(to: address, from: source, timeout: timeout,
                                 tls: tls.map { $0.serverName == nil ? $0.withServerName(host) : $0 }, on: loop)
    }

    // Waits for a non-blocking connect with a write source alone (a read source armed at the
    // same time can miss its only wake-up on Linux libdispatch; PLATFORM.md).
    private func awaitConnect(timeout: Duration, cont: CheckedContinuation<TCPConnection, any Error>) {
        var done = false
        let started = monotonicNanos()
        let ws = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: loop.queue)
        liveSources += 1
        ws.setCancelHandler { [self] in sourceCancelled() }
        let timer = loop.schedule(after: timeout) { [self] in
            guard !done else { return }
            done = true
            ws.cancel()
            isOpen = false
            fdClosed = false
            closeFDWhenSourcesGone()
            cont.resume(throwing: ResourcePressure.attribute(TransportError.timedOut(endpoint: remote.description, operation: "connect"),
                                                             operationStart: started))
        }
        ws.setEventHandler { [self] in
            guard !done else { return }
            done = true
            timer.cancel()
            ws.cancel()
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err == 0 {
                cont.resume(returning: self)
            } else {
                isOpen = false
                closeFDWhenSourcesGone()
                cont.resume(throwing: TransportError.from(errno: err, call: "connect", endpoint: remote.description))
            }
        }
        ws.resume()
    }

    // MARK: reading

    /// Sets the delegate and starts reading. Thread-safe.
    public func start(delegate: any ConnectionDelegate) {
        if loop.inLoop { startOnLoop(delegate) } else { loop.execute { self.startOnLoop(delegate) } }
    }

    private func startOnLoop(_ delegate: any ConnectionDelegate) {
        self.delegate = delegate
        guard isOpen else { return }
        #if TLS && canImport(COpenSSL)
        // Plaintext that arrived with the end of the handshake waits in the session until now.
        if let tls = tlsSession { loop.execute { [self] in tlsProcess(tls) } }
        #endif
        armReadSource()
    }

    func armReadSource() {
        guard isOpen, readSource == nil else { return }
        let rs = DispatchSource.makeReadSource(fileDescriptor: fd, queue: loop.queue)
        liveSources += 1
        rs.setEventHandler { [self] in handleReadable() }
        rs.setCancelHandler { [self] in sourceCancelled() }
        readSource = rs
        rs.resume()
    }

    /// Stops reading until the next ``start(delegate:)`` (TLS: after the handshake, nothing is
    /// read from the socket until a delegate can take it, as with plain TCP).
    func stopReading() {
        readSource?.cancel()
        readSource = nil
    }

    private func handleReadable() {
        #if TLS && canImport(COpenSSL)
        if let tls = tlsSession { tlsHandleReadable(tls); return }
        #endif
        let buf = loop.readBuffer
        var rounds = 0
        while isOpen {
            let n = read(fd, buf.baseAddress, buf.count)
            if n > 0 {
                delegate?.connection(self, didRead: UnsafeRawBufferPointer(rebasing: buf[0..<n]))
                rounds += 1
                // A short read means the socket is drained; more than a few rounds would starve others.
                if n < buf.count || rounds >= 4 { return }
                continue
            }
            if n == 0 { closeWith(.closedByPeer(endpoint: remote.description)); return }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return }
            closeWith(TransportError.from(errno: e, call: "read", endpoint: remote.description))
            return
        }
    }

    // MARK: writing

    /// Queues `bytes` for sending; sends at once when the kernel takes them.
    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write(rawBytes: $0) }
    }

    /// Queues raw bytes for sending (copied if they cannot be sent at once).
    public func write(rawBytes bytes: UnsafeRawBufferPointer) {
        #if TLS && canImport(COpenSSL)
        if let tls = tlsSession { tlsWrite(tls, bytes); return }
        #endif
        socketWrite(bytes)
    }

    /// Writes bytes to the socket as they are (ciphertext when TLS is on).
    @inline(__always)
    func socketWrite(_ bytes: UnsafeRawBufferPointer) {
        guard isOpen, bytes.count > 0 else { return }
        queuedTotal &+= UInt64(bytes.count)
        if pendingStart == pending.count {
            let n = systemSend(fd, bytes.baseAddress, bytes.count)
            if n == bytes.count {
                writtenTotal &+= UInt64(n)
                if !flushWaiters.isEmpty { resolveFlushWaiters() }
                return
            }
            var sent = 0
            if n < 0 {
                let e = errno
                if e != EAGAIN && e != EWOULDBLOCK && e != EINTR {
                    closeWith(TransportError.from(errno: e, call: "write", endpoint: remote.description))
                    return
                }
            } else { sent = n }
            writtenTotal &+= UInt64(sent)
            pending.removeAll(keepingCapacity: true)
            pendingStart = 0
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[sent...]))
            armWriteSource()
        } else {
            pending.append(contentsOf: bytes)
        }
    }

    /// Thread-safe write that resumes once the bytes are handed to the kernel
    /// (back-pressure for scripts); throws if the connection closes first.
    public func writeAndFlush(_ bytes: [UInt8]) async throws {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            loop.execute { [self] in
                guard isOpen else { cont.resume(throwing: TransportError.closedLocally); return }
                write(bytes)
                guard isOpen else { cont.resume(throwing: TransportError.closedLocally); return }
                if writtenTotal >= queuedTotal { cont.resume() } else { flushWaiters.append((queuedTotal, cont)) }
            }
        }
    }

    private func armWriteSource() {
        guard writeSource == nil, isOpen else { return }
        let ws = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: loop.queue)
        liveSources += 1
        ws.setEventHandler { [self] in flushPending() }
        ws.setCancelHandler { [self] in sourceCancelled() }
        writeSource = ws
        ws.resume()
    }

    private func flushPending() {
        while isOpen && pendingStart < pending.count {
            let n = pending.withUnsafeBytes { p in
                systemSend(fd, p.baseAddress! + pendingStart, p.count - pendingStart)
            }
            if n > 0 {
                pendingStart += n
                writtenTotal &+= UInt64(n)
                continue
            }
            let e = errno
            if n < 0 && e == EINTR { continue }
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { break }
            closeWith(TransportError.from(errno: e, call: "write", endpoint: remote.description))
            return
        }
        if !flushWaiters.isEmpty { resolveFlushWaiters() }
        if pendingStart >= pending.count {
            pending.removeAll(keepingCapacity: pending.capacity <= 64 * 1024)
            pendingStart = 0
            writeSource?.cancel()
            writeSource = nil
            if shutdownAfterFlush { _ = shutdown(fd, Int32(SHUT_WR)) }
            delegate?.connectionDidDrain(self)
        } else if pendingStart > 64 * 1024 && pendingStart * 2 > pending.count {
            pending.removeFirst(pendingStart)
            pendingStart = 0
        }
    }

    private func resolveFlushWaiters() {
        while let first = flushWaiters.first, first.mark <= writtenTotal {
            flushWaiters.removeFirst()
            first.cont.resume()
        }
    }

    // MARK: closing

    /// Half-closes: sends FIN once queued bytes are written; reading continues.
    public func shutdownOutput() {
        guard isOpen else { return }
        #if TLS && canImport(COpenSSL)
        if let tls = tlsSession { tlsSendCloseNotify(tls) }
        #endif
        if pendingStart >= pending.count { _ = shutdown(fd, Int32(SHUT_WR)) } else { shutdownAfterFlush = true }
    }

    /// Closes the connection (thread-safe). The delegate sees `didCloseWith(nil)`.
    public func close() {
        if loop.inLoop { closeWith(nil) } else { loop.execute { self.closeWith(nil) } }
    }

    /// Closes with an error as the reason (for protocol layers that detect a violation); on the loop.
    public func close(reason: TransportError?) { closeWith(reason) }

    /// Resumes once the connection is closed (thread-safe).
    public func waitClosed() async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            loop.execute { [self] in
                if isOpen { closeWaiters.append(cont) } else { cont.resume() }
            }
        }
    }

    func closeWith(_ error: TransportError?) {
        guard isOpen else { return }
        #if TLS && canImport(COpenSSL)
        if let tls = tlsSession { tlsWillClose(tls, error) }
        #endif
        isOpen = false
        readSource?.cancel()
        readSource = nil
        writeSource?.cancel()
        writeSource = nil
        closeFDWhenSourcesGone()
        let waiters = flushWaiters
        flushWaiters.removeAll()
        for w in waiters { w.cont.resume(throwing: error ?? TransportError.closedLocally) }
        let d = delegate
        delegate = nil  // break the delegate <-> connection cycle
        d?.connection(self, didCloseWith: error)
        let cw = closeWaiters
        closeWaiters.removeAll()
        for c in cw { c.resume() }
    }

    private func sourceCancelled() {
        liveSources -= 1
        closeFDWhenSourcesGone()
    }

    // The fd may only be closed after every DispatchSource on it is cancelled, or a new socket
    // reusing the number could receive the old source's events.
    private func closeFDWhenSourcesGone() {
        guard !isOpen, !fdClosed, liveSources == 0 else { return }
        fdClosed = true
        _ = systemClose(fd)
    }
}

// MARK: thin system-call wrappers

func makeSocket(family: Int32) throws -> Int32 {
    #if canImport(Glibc)
    let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    #else
    let fd = socket(family, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw TransportError.from(errno: errno, call: "socket", endpoint: "") }
    configureSocket(fd)
    return fd
}

func configureSocket(_ fd: Int32) {
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    #if canImport(Darwin)
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
    #endif
}

@inline(__always) func systemSend(_ fd: Int32, _ p: UnsafeRawPointer?, _ n: Int) -> Int {
    #if canImport(Glibc)
    return send(fd, p, n, Int32(MSG_NOSIGNAL))
    #else
    return send(fd, p, n, 0)
    #endif
}

@inline(__always) func systemClose(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    return Glibc.close(fd)
    #else
    return Darwin.close(fd)
    #endif
}

@inline(__always) func systemConnect(_ fd: Int32, _ a: UnsafePointer<sockaddr>, _ l: socklen_t) -> Int32 {
    #if canImport(Glibc)
    return Glibc.connect(fd, a, l)
    #else
    return Darwin.connect(fd, a, l)
    #endif
}
