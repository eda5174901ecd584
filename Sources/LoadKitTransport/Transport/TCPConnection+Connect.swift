#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLoadKit
import Synchronization

extension TCPConnection {
    // MARK: connecting

    /// Opens a TCP connection to `address`, optionally from a given local `source` address
    /// (any 127.x.y.z for loopback fan-out), failing with a classified ``TransportError``.
    /// ``TransportConnector`` opens TLS over it.
    ///
    /// By default the connection goes to the caller's loop when the caller runs on one (a virtual
    /// user), else to the next loop of the shared group.
    public static func connect(to address: SocketAddress, from source: SocketAddress? = nil,
                               timeout: Duration = .seconds(10),
                               on loop: EventLoop = EventLoop.current ?? EventLoopGroup.shared.next()) async throws -> TCPConnection {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<TCPConnection, any Error>) in
            loop.runOrExecute { startConnect(to: address, from: source, timeout: timeout, on: loop, cont) }
        }
    }

    /// Creates the socket and starts a non-blocking connect. On the loop.
    private static func startConnect(to address: SocketAddress, from source: SocketAddress?, timeout: Duration,
                                     on loop: EventLoop, _ cont: CheckedContinuation<TCPConnection, any Error>) {
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
        guard e == EINPROGRESS, conn.register() else {
            conn.isOpen = false
            conn.fdClosed = true
            _ = systemClose(fd)
            cont.resume(throwing: TransportError.from(errno: e == EINPROGRESS ? errno : e, call: "connect", endpoint: endpoint))
            return
        }
        conn.connecting = Connecting(cont: cont, timer: nil)
        let started = monotonicNanos()
        conn.connecting?.timer = loop.schedule(after: timeout) { [conn] in
            guard let c = conn.connecting else { return }
            conn.connecting = nil
            conn.isOpen = false
            conn.closeSocket()
            c.cont.resume(throwing: ResourcePressure.attribute(TransportError.timedOut(endpoint: conn.remote.description, operation: "connect"),
                                                               operationStart: started))
        }
    }

    /// The connect finished (writable, error or hang-up). On the loop.
    func finishConnect() {
        guard let c = connecting else { return }
        connecting = nil
        c.timer?.cancel()
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        if err == 0 {
            // Not read until a delegate is attached: the loop stops holding the connection (a
            // caller that drops it unused closes the socket), start() registers it again.
            deregister()
            c.cont.resume(returning: self)
        } else {
            isOpen = false
            closeSocket()
            c.cont.resume(throwing: TransportError.from(errno: err, call: "connect", endpoint: remote.description))
        }
    }

    /// Resolves `host` and connects; see ``connect(to:from:timeout:on:)``.
    public static func connect(host: String, port: Int, from source: SocketAddress? = nil,
                               timeout: Duration = .seconds(10),
                               on loop: EventLoop = EventLoop.current ?? EventLoopGroup.shared.next()) async throws -> TCPConnection {
        let address = try await SocketAddress.resolve(host: host, port: port)
        return try await connect(to: address, from: source, timeout: timeout, on: loop)
    }
}
