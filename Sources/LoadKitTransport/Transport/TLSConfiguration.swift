import Foundation

/// True when this build of LoadKit can speak TLS (https, wss): the package was built with the
/// `TLS` trait on Linux (`swift test --traits TLS`, or `traits: ["TLS"]` on the dependency).
/// Read it as `LoadKit.tlsAvailable`; the trait's compile-time define is not visible to consumers.
#if TLS && canImport(COpenSSL)
public let tlsAvailable = true
#else
public let tlsAvailable = false
#endif

/// How a TLS connection is set up: the role, which certificates are trusted, the server name,
/// ALPN and protocol versions. Exists in every build; connecting with it fails with
/// ``TLSError/unavailable(_:)`` unless ``tlsAvailable``.
///
/// Verification is on by default against the system trust store. Every distinct configuration
/// gets one shared OpenSSL context (created on first use), not one per connection.
///
/// ```swift
/// var configuration = HTTPClient.Configuration()
/// configuration.tls = .trustRoots(caFile: "/etc/staging-ca.pem")
/// let client = HTTPClient(configuration: configuration)  // https://staging.example/… verified by that CA
/// ```
public struct TLSConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// Which side of the handshake this configuration is for.
    public enum Role: String, Sendable, Hashable {
        /// Connects and verifies the server.
        case client
        /// Accepts and presents a certificate (test fixtures).
        case server
    }

    /// Which certificates a client trusts.
    public enum Trust: Sendable, Hashable {
        /// The system store (`/etc/ssl/certs`, the default OpenSSL paths).
        case systemStore
        /// Only the CA certificates in this PEM file (staging or test CAs).
        case caFile(String)
        /// No verification at all: any certificate, any name. See ``insecureNoVerification``.
        case insecureNoVerification
    }

    /// A TLS protocol version.
    public enum Version: Int, Sendable, Hashable, Comparable {
        /// TLS 1.2.
        case tls12 = 0x0303
        /// TLS 1.3.
        case tls13 = 0x0304
        /// Orders versions by number.
        public static func < (a: Version, b: Version) -> Bool { a.rawValue < b.rawValue }
    }

    /// Client or server.
    public var role: Role
    /// Which certificates a client trusts (ignored by servers, which do not ask for client certificates).
    public var trust: Trust
    /// The name sent as SNI and checked against the certificate; nil means the host given to
    /// `connect` (an IP literal is checked against the certificate's IP entries and sends no SNI).
    public var serverName: String?
    /// ALPN protocols to offer (client) or accept (server), e.g. ``http1ALPN``; empty sends none.
    public var alpn: [String]
    /// The lowest version negotiated (default TLS 1.2).
    public var minimumVersion: Version
    /// The highest version negotiated (default TLS 1.3).
    public var maximumVersion: Version
    /// Server only: PEM file with the certificate chain (leaf first).
    public var certificateChainFile: String?
    /// Server only: PEM file with the private key.
    public var privateKeyFile: String?

    /// Creates a configuration; prefer the named presets.
    public init(role: Role = .client, trust: Trust = .systemStore, serverName: String? = nil,
                alpn: [String] = [], minimumVersion: Version = .tls12, maximumVersion: Version = .tls13,
                certificateChainFile: String? = nil, privateKeyFile: String? = nil) {
        self.role = role
        self.trust = trust
        self.serverName = serverName
        self.alpn = alpn
        self.minimumVersion = minimumVersion
        self.maximumVersion = maximumVersion
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
    }

    /// The ALPN list for HTTP/1.1 (`["http/1.1"]`), used for https and wss.
    public static let http1ALPN = ["http/1.1"]

    /// A client that verifies the server against the system trust store (the default).
    public static var client: TLSConfiguration { TLSConfiguration() }

    /// What the HTTP, WebSocket and STOMP clients use for `https`/`wss` when given no
    /// configuration: ALPN `http/1.1`, verification against the CA file named by the environment
    /// variable `LOADKIT_TLS_CA_FILE` (staging certificates) or else the system store.
    public static let defaultClient: TLSConfiguration = {
        let env = ProcessInfo.processInfo.environment
        let base: TLSConfiguration = if let ca = env["LOADKIT_TLS_CA_FILE"], !ca.isEmpty { .trustRoots(caFile: ca) } else { .client }
        return base.withALPN(http1ALPN)
    }()

    /// A client that trusts only the CA certificates in `caFile` (PEM), with full verification.
    public static func trustRoots(caFile: String) -> TLSConfiguration {
        TLSConfiguration(trust: .caFile(caFile))
    }

    /// A client that accepts ANY certificate for ANY name: no protection against interception.
    /// Only for targets whose certificate cannot be verified at all; prefer ``trustRoots(caFile:)``.
    public static var insecureNoVerification: TLSConfiguration {
        TLSConfiguration(trust: .insecureNoVerification)
    }

    /// A server presenting the certificate chain and key in the given PEM files (test fixtures).
    public static func server(certificateChainFile: String, privateKeyFile: String) -> TLSConfiguration {
        TLSConfiguration(role: .server, certificateChainFile: certificateChainFile, privateKeyFile: privateKeyFile)
    }

    /// This configuration with `name` as SNI and verified name.
    public func withServerName(_ name: String?) -> TLSConfiguration {
        var c = self
        c.serverName = name
        return c
    }

    /// This configuration offering (client) or accepting (server) the given ALPN protocols.
    public func withALPN(_ protocols: [String]) -> TLSConfiguration {
        var c = self
        c.alpn = protocols
        return c
    }

    /// True when the peer's certificate is verified.
    public var verifiesPeer: Bool { role == .client && trust != .insecureNoVerification }

    public var description: String {
        let t: String = switch trust {
        case .systemStore: "system store"
        case .caFile(let f): "CA file \(f)"
        case .insecureNoVerification: "NO VERIFICATION"
        }
        return "TLS \(role.rawValue) (\(role == .client ? t : certificateChainFile ?? "no certificate"))"
    }

    /// Throws ``TLSError/unavailable(_:)`` when this build has no TLS. Call it where a URL's
    /// scheme is read (`https`, `wss`) so the run fails at once with instructions.
    public static func requireAvailable(for what: String = "TLS") throws(TLSError) {
        if !tlsAvailable { throw TLSError.unavailable(what) }
    }
}

/// A classified TLS failure. Certificate and protocol failures are the server's
/// (``FailureSource/server``); a missing trait or an unreadable file is the load generator's.
public enum TLSError: ClassifiedError, Sendable, Equatable {
    /// This build has no TLS: the `TLS` trait is off, or the platform has no TLS transport yet.
    case unavailable(String)
    /// The configuration could not be loaded (CA file, certificate or key missing or invalid).
    case configuration(String)
    /// The server's certificate does not chain to a trusted root (verify result in the message).
    case certificateUntrusted(verifyResult: Int, reason: String, endpoint: String)
    /// The server's certificate is expired or not yet valid.
    case certificateExpired(verifyResult: Int, reason: String, endpoint: String)
    /// The certificate is valid but for another host name or IP address.
    case nameMismatch(verifyResult: Int, reason: String, endpoint: String)
    /// The peer sent a TLS alert (RFC 8446 §6 numbering), e.g. 40 handshake_failure, 70 protocol_version.
    case alert(code: Int, reason: String, endpoint: String)
    /// Any other TLS protocol failure (bad record, unexpected message, handshake aborted).
    case protocolFailure(reason: String, endpoint: String)

    public var kind: String {
        switch self {
        case .unavailable: "tls_unavailable"
        case .configuration: "tls_configuration"
        case .certificateUntrusted: "tls_cert_untrusted"
        case .certificateExpired: "tls_cert_expired"
        case .nameMismatch: "tls_name_mismatch"
        case .alert(let code, _, _): "tls_alert_\(code)"
        case .protocolFailure: "tls_protocol"
        }
    }

    public var source: FailureSource {
        switch self {
        case .unavailable, .configuration: .loadGenerator
        case .certificateUntrusted, .certificateExpired, .nameMismatch, .alert, .protocolFailure: .server
        }
    }

    public var description: String {
        switch self {
        case .unavailable(let what):
            #if TLS
            "\(what) is not supported on this platform yet (LoadKit's TLS uses the system OpenSSL on Linux)"
            #else
            "\(what) needs LoadKit's `TLS` trait, which this build does not have: run `swift test --traits TLS` "
                + "(or `swift build --traits TLS`), or enable it on the dependency with "
                + "`.package(url: …, from: …, traits: [\"TLS\"])`; it links the system OpenSSL (apt install libssl-dev)"
            #endif
        case .configuration(let m): "TLS configuration error (load generator): \(m)"
        case .certificateUntrusted(let r, let reason, let e):
            "TLS certificate of \(e) is not trusted: \(reason) (verify result \(r)); trust its CA with TLSConfiguration.trustRoots(caFile:)"
        case .certificateExpired(let r, let reason, let e):
            "TLS certificate of \(e) is out of its validity period: \(reason) (verify result \(r))"
        case .nameMismatch(let r, let reason, let e):
            "TLS certificate of \(e) does not match the name asked for: \(reason) (verify result \(r))"
        case .alert(let code, let reason, let e): "\(e) sent TLS alert \(code) (\(reason))"
        case .protocolFailure(let reason, let e): "TLS protocol failure with \(e): \(reason)"
        }
    }

    /// Classifies an X.509 verify result (OpenSSL `X509_V_ERR_*` numbers) into a failure kind.
    static func fromVerifyResult(_ code: Int, reason: String, endpoint: String) -> TLSError {
        switch code {
        case 9, 10, 11, 12, 13, 14, 15, 16:
            // not yet valid, expired, CRL not yet valid/expired, bad time fields
            .certificateExpired(verifyResult: code, reason: reason, endpoint: endpoint)
        case 62, 63, 64:
            // hostname, email, IP address mismatch
            .nameMismatch(verifyResult: code, reason: reason, endpoint: endpoint)
        default:
            .certificateUntrusted(verifyResult: code, reason: reason, endpoint: endpoint)
        }
    }
}
