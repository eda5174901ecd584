#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension TCPConnection {
    /// Closes abruptly: `SO_LINGER` 0 makes the kernel send a TCP reset instead of FIN, so the
    /// peer sees ECONNRESET (a WebSocket client sees 1006). Used by fixtures to inject dropped
    /// connections. Must be called on the connection's loop.
    public func abort() {
        guard isOpen else { return }
        var l = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        close(reason: .reset(endpoint: remote.description))
    }
}
