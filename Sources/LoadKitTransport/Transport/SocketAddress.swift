#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// An IPv4 or IPv6 socket address (host and port), resolved and ready for `connect`/`bind`.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    enum Storage: @unchecked Sendable {
        case v4(sockaddr_in)
        case v6(sockaddr_in6)
    }
    let storage: Storage

    /// The port in host byte order.
    public var port: Int {
        switch storage {
        case .v4(let a): Int(UInt16(bigEndian: a.sin_port))
        case .v6(let a): Int(UInt16(bigEndian: a.sin6_port))
        }
    }

    /// The numeric host (`127.0.0.1`, `::1`).
    public var host: String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch storage {
        case .v4(var a): _ = inet_ntop(AF_INET, &a.sin_addr, &buf, socklen_t(buf.count))
        case .v6(var a): _ = inet_ntop(AF_INET6, &a.sin6_addr, &buf, socklen_t(buf.count))
        }
        return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool {
        a.family == b.family && a.port == b.port && a.host == b.host
    }

    public func hash(into h: inout Hasher) {
        h.combine(family)
        h.combine(port)
        h.combine(host)
    }

    public var description: String {
        if case .v6 = storage { return "[\(host)]:\(port)" }
        return "\(host):\(port)"
    }

    /// True for 127.0.0.0/8 and ::1.
    public var isLoopback: Bool {
        switch storage {
        case .v4(let a): (UInt32(bigEndian: a.sin_addr.s_addr) >> 24) == 127
        case .v6: host == "::1"
        }
    }

    var family: Int32 {
        switch storage {
        case .v4: AF_INET
        case .v6: AF_INET6
        }
    }

    /// Parses a numeric IPv4 or IPv6 address; `nil` for a host name.
    public init?(ip: String, port: Int) {
        guard (0...65535).contains(port) else { return nil }
        var a4 = sockaddr_in()
        if inet_pton(AF_INET, ip, &a4.sin_addr) == 1 {
            a4.sin_family = sa_family_t(AF_INET)
            a4.sin_port = UInt16(port).bigEndian
            storage = .v4(a4)
            return
        }
        var a6 = sockaddr_in6()
        let bare = ip.hasPrefix("[") && ip.hasSuffix("]") ? String(ip.dropFirst().dropLast()) : ip
        if inet_pton(AF_INET6, bare, &a6.sin6_addr) == 1 {
            a6.sin6_family = sa_family_t(AF_INET6)
            a6.sin6_port = UInt16(port).bigEndian
            storage = .v6(a6)
            return
        }
        return nil
    }

    init(storage: Storage) { self.storage = storage }

    /// Calls `body` with the address as a `sockaddr` pointer and its length.
    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch storage {
        case .v4(var a):
            return withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(var a):
            return withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    /// The address with another port.
    public func withPort(_ port: Int) -> SocketAddress {
        switch storage {
        case .v4(var a): a.sin_port = UInt16(port).bigEndian; return SocketAddress(storage: .v4(a))
        case .v6(var a): a.sin6_port = UInt16(port).bigEndian; return SocketAddress(storage: .v6(a))
        }
    }

    static func from(_ sa: UnsafePointer<sockaddr>) -> SocketAddress? {
        switch Int32(sa.pointee.sa_family) {
        case AF_INET: return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress(storage: .v4($0.pointee)) }
        case AF_INET6: return sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress(storage: .v6($0.pointee)) }
        default: return nil
        }
    }

    /// Resolves `host` (a name or a numeric address) for TCP. Numeric hosts never touch the
    /// resolver; names go through `getaddrinfo` off the event loops (it blocks).
    public static func resolve(host: String, port: Int) async throws -> SocketAddress {
        if let a = SocketAddress(ip: host, port: port) { return a }
        if host == "localhost" { return SocketAddress(ip: "127.0.0.1", port: port)! }
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<SocketAddress, any Error>) in
            DispatchQueue.global().async {
                var hints = addrinfo()
                hints.ai_family = AF_UNSPEC
                #if canImport(Glibc)
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                #else
                hints.ai_socktype = SOCK_STREAM
                #endif
                var res: UnsafeMutablePointer<addrinfo>?
                let rc = getaddrinfo(host, String(port), &hints, &res)
                guard rc == 0, let first = res else {
                    let msg = rc == 0 ? "no address" : String(cString: gai_strerror(rc))
                    cont.resume(throwing: TransportError.addressing("cannot resolve host '\(host)': \(msg)"))
                    return
                }
                defer { freeaddrinfo(res) }
                var p: UnsafeMutablePointer<addrinfo>? = first
                while let cur = p {
                    if let sa = cur.pointee.ai_addr, let addr = SocketAddress.from(sa) {
                        cont.resume(returning: addr)
                        return
                    }
                    p = cur.pointee.ai_next
                }
                cont.resume(throwing: TransportError.addressing("cannot resolve host '\(host)': no IPv4/IPv6 address"))
            }
        }
    }
}
