#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLoadKit

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

/// `writev` without SIGPIPE (Linux: `sendmsg` with `MSG_NOSIGNAL`; Darwin sockets have SO_NOSIGPIPE).
@inline(__always) func systemWritev(_ fd: Int32, _ iov: UnsafeMutablePointer<iovec>, _ n: Int32) -> Int {
    #if canImport(Glibc)
    var msg = msghdr()
    msg.msg_iov = iov
    msg.msg_iovlen = Int(n)
    return sendmsg(fd, &msg, Int32(MSG_NOSIGNAL))
    #else
    return Darwin.writev(fd, iov, n)
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
