#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A classified socket-level failure. Resource exhaustion on our side is marked
/// ``FailureSource/loadGenerator`` so a report never blames the server for it.
public enum TransportError: ClassifiedError, Sendable, Equatable {
    /// The server actively refused the connection (`ECONNREFUSED`).
    case refused(endpoint: String)
    /// The server reset the connection (`ECONNRESET`, `EPIPE`).
    case reset(endpoint: String)
    /// Connecting, reading or writing took longer than allowed.
    case timedOut(endpoint: String, operation: String)
    /// The peer closed the connection (end of stream) while we still expected data.
    case closedByPeer(endpoint: String)
    /// The host name did not resolve or the address is not usable.
    case addressing(String)
    /// The network or host is unreachable.
    case unreachable(endpoint: String)
    /// This process ran out of file descriptors (`EMFILE`, `ENFILE`).
    case outOfFileDescriptors(errno: Int32)
    /// No local port or source address was free (`EADDRNOTAVAIL`, `EADDRINUSE` on connect).
    case noEphemeralPort(endpoint: String)
    /// Any other system error, with the call that failed.
    case system(call: String, errno: Int32)
    /// The connection was closed locally before the operation finished.
    case closedLocally
    /// A TLS failure (handshake, certificate, alert); kind and source are the ``TLSError``'s.
    case tls(TLSError)

    public var kind: String {
        switch self {
        case .refused: "refused"
        case .reset: "reset"
        case .timedOut: "timeout"
        case .closedByPeer: "closed_by_peer"
        case .addressing: "addressing"
        case .unreachable: "unreachable"
        case .outOfFileDescriptors(let e): e == ENFILE ? "client_enfile" : "client_emfile"
        case .noEphemeralPort: "client_no_ephemeral_port"
        case .system(let call, let e): "system_\(call)_\(e)"
        case .closedLocally: "closed_locally"
        case .tls(let e): e.kind
        }
    }

    public var source: FailureSource {
        switch self {
        case .refused, .reset, .closedByPeer: .server
        case .timedOut: .server
        case .addressing, .unreachable: .network
        case .outOfFileDescriptors, .noEphemeralPort, .system, .closedLocally: .loadGenerator
        case .tls(let e): e.source
        }
    }

    public var description: String {
        switch self {
        case .refused(let e): "connection refused by \(e) (server)"
        case .reset(let e): "connection reset by \(e) (server)"
        case .timedOut(let e, let op): "\(op) to \(e) timed out"
        case .closedByPeer(let e): "\(e) closed the connection (server)"
        case .addressing(let m): "address error: \(m)"
        case .unreachable(let e): "\(e) is unreachable (network)"
        case .outOfFileDescriptors(let e):
            "load generator out of file descriptors (\(e == ENFILE ? "ENFILE: system-wide" : "EMFILE: per-process limit")); lower the planned connections or raise `ulimit -n`"
        case .noEphemeralPort(let e):
            "load generator has no free local port to reach \(e) (EADDRNOTAVAIL); spread connections over more source addresses in 127.0.0.0/8"
        case .system(let call, let e): "\(call) failed: \(String(cString: strerror(e))) (errno \(e), load generator)"
        case .closedLocally: "connection closed locally"
        case .tls(let e): e.description
        }
    }

    /// Maps an `errno` from `connect`, `read`, `write` or `socket` to a classified error.
    static func from(errno e: Int32, call: String, endpoint: String) -> TransportError {
        if e == EMFILE || e == ENFILE { ResourcePressure.noteDescriptorExhaustion() }
        return switch e {
        case ECONNREFUSED: .refused(endpoint: endpoint)
        case ECONNRESET, EPIPE, ECONNABORTED: .reset(endpoint: endpoint)
        case ETIMEDOUT: .timedOut(endpoint: endpoint, operation: call)
        case EMFILE, ENFILE: .outOfFileDescriptors(errno: e)
        case EADDRNOTAVAIL, EADDRINUSE: .noEphemeralPort(endpoint: endpoint)
        case ENETUNREACH, EHOSTUNREACH, ENETDOWN, EHOSTDOWN: .unreachable(endpoint: endpoint)
        default: .system(call: call, errno: e)
        }
    }
}
