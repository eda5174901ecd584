#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLoadKit

/// A listening TCP socket (server role, used by the fixtures). Accepted connections are spread
/// over a group's loops; `onAccept` runs on the new connection's loop with the ``Transport`` to
/// serve (the ``TCPConnection``, or the TLS layer over it), where it must call
/// ``Transport/start(delegate:)``.
package final class TCPListener: @unchecked Sendable, LoopSelectable {
    /// The bound address (with the real port when port 0 was asked for).
    public let address: SocketAddress
    private let fd: Int32
    private let acceptLoop: EventLoop
    private let group: EventLoopGroup
    private var token: UInt64?
    private var closed = false
    private var suspended = false
    private let onAccept: @Sendable (any Transport) -> Void
    #if TLS && canImport(COpenSSL)
    private let tlsContext: TLSContext?
    #endif

    /// Binds and listens on `host:port` (port 0 picks a free one). A large backlog lets a fixture
    /// take thousands of connects in a burst (`somaxconn` caps it, 4096 here).
    ///
    /// With `tls` (a ``TLSConfiguration/server(certificateChainFile:privateKeyFile:)``), every
    /// accepted connection runs the server side of a TLS handshake before its delegate sees
    /// plaintext; writes made earlier are sent once the handshake is done.
    public init(host: String = "127.0.0.1", port: Int = 0, backlog: Int32 = 4096,
                group: EventLoopGroup = .shared, tls: TLSConfiguration? = nil,
                onAccept: @escaping @Sendable (any Transport) -> Void) throws {
        #if TLS && canImport(COpenSSL)
        tlsContext = try tls.map { try TLSContext.shared(for: $0) }
        #else
        if tls != nil { throw TransportError.tls(.unavailable("A TLS listener (https/wss fixture)")) }
        #endif
        guard let addr = SocketAddress(ip: host == "localhost" ? "127.0.0.1" : host, port: port) else {
            throw TransportError.addressing("listener host must be a numeric address, got '\(host)'")
        }
        let fd = try makeSocket(family: addr.family)
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if addr.withSockAddr({ bind(fd, $0, $1) }) != 0 {
            let e = errno
            _ = systemClose(fd)
            throw TransportError.system(call: "bind(\(addr))", errno: e)
        }
        if listen(fd, backlog) != 0 {
            let e = errno
            _ = systemClose(fd)
            throw TransportError.system(call: "listen", errno: e)
        }
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress.from($0) }
        }
        self.address = bound ?? addr
        self.fd = fd
        self.group = group
        self.acceptLoop = group.next()
        self.onAccept = onAccept
        acceptLoop.execute { self.arm() }
    }

    private func arm() {
        guard !closed else { return }
        token = acceptLoop.register(fd, self, edge: false)
        if token == nil { writeStderr("loadkit: cannot watch listener \(address) (errno \(errno))\n") }
    }

    func ioReady(_ events: UInt32) { acceptAll() }

    private func acceptAll() {
        for _ in 0..<256 {
            var storage = sockaddr_storage()
            var len = UInt32(MemoryLayout<sockaddr_storage>.size)
            let cfd = withUnsafeMutablePointer(to: &storage) { lk_accept(fd, $0, &len) }
            if cfd < 0 {
                let e = errno
                if e == EINTR || e == ECONNABORTED { continue }
                if e == EMFILE || e == ENFILE { ResourcePressure.noteDescriptorExhaustion() }
                if e == EMFILE || e == ENFILE, let t = token, !suspended {
                    // Out of descriptors: back off instead of spinning on a level-triggered event.
                    suspended = true
                    acceptLoop.setReading(fd, token: t, false)
                    acceptLoop.schedule(after: .milliseconds(50)) { [self] in
                        suspended = false
                        if let t = token { acceptLoop.setReading(fd, token: t, true) }
                    }
                }
                return
            }
            configureSocket(cfd)
            let remote = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress.from($0) }
            } ?? address
            let loop = group.next()
            let conn = TCPConnection(fd: cfd, remote: remote, loop: loop)
            let cb = onAccept
            #if TLS && canImport(COpenSSL)
            if let ctx = tlsContext {
                loop.execute { if let tls = TLSTransport.acceptAsServer(conn, context: ctx) { cb(tls) } }
                continue
            }
            #endif
            loop.execute { cb(conn) }
        }
    }

    /// Stops accepting (existing connections stay open). Thread-safe.
    public func close() {
        acceptLoop.execute { [self] in
            guard !closed else { return }
            closed = true
            if let t = token { acceptLoop.deregister(fd, token: t) }
            token = nil
            _ = systemClose(fd)
        }
    }
}
