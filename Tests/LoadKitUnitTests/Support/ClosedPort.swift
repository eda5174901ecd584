import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import LoadKitTransport

/// A loopback port that refuses connections for as long as this is alive: a TCP socket bound to
/// it that never listens. The kernel answers a SYN there with a reset (`ECONNREFUSED`), and no
/// other socket — another test's listener (port 0) or a client's ephemeral port — can take the
/// port meanwhile. (Binding a listener and closing it left the port free: under a parallel run a
/// listener of another test got it and the "refused" connect succeeded.)
final class ClosedPort: @unchecked Sendable {
    let port: Int
    private let fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TransportError.system(call: "socket", errno: errno) }
        // No SO_REUSEADDR: no other socket may bind this port while we hold it.
        let any = SocketAddress(ip: "127.0.0.1", port: 0)!
        guard any.withSockAddr({ bind(fd, $0, $1) }) == 0 else {
            let e = errno
            _ = close(fd)
            throw TransportError.system(call: "bind", errno: e)
        }
        var storage = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: storage.sin_port))
    }

    var address: SocketAddress { SocketAddress(ip: "127.0.0.1", port: port)! }

    deinit { _ = close(fd) }
}
