#if TLS && canImport(COpenSSL)
import COpenSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// One OpenSSL `SSL_CTX` per distinct configuration, shared by every connection using it
/// (loading a trust store per connection would cost milliseconds and memory).
final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    let configuration: TLSConfiguration
    // Server ALPN list in wire format, prefixed by its total length; lives as long as the context.
    private let alpnWire: UnsafeMutablePointer<UInt8>?

    private static let cache = Mutex<[TLSConfiguration: TLSContext]>([:])

    /// The shared context for `configuration` (its `serverName` is per connection and ignored here).
    static func shared(for configuration: TLSConfiguration) throws(TransportError) -> TLSContext {
        let key = configuration.withServerName(nil)
        do {
            return try cache.withLock { (cache) throws(TLSError) -> TLSContext in
                if let c = cache[key] { return c }
                let c = try TLSContext(key)
                cache[key] = c
                return c
            }
        } catch {
            throw .tls(error)
        }
    }

    private init(_ config: TLSConfiguration) throws(TLSError) {
        guard let ctx = SSL_CTX_new(config.role == .client ? TLS_client_method() : TLS_server_method()) else {
            throw .configuration("SSL_CTX_new failed: \(openSSLErrorString())")
        }
        self.ctx = ctx
        self.configuration = config

        // Idle connections give their 16 KB read/write buffers back (≈22 KB instead of ≈31 KB).
        _ = lk_SSL_CTX_set_mode(ctx, Int(SSL_MODE_RELEASE_BUFFERS))
        _ = lk_SSL_CTX_set_options(ctx, 0)
        _ = lk_SSL_CTX_set_min_proto_version(ctx, Int32(config.minimumVersion.rawValue))
        _ = lk_SSL_CTX_set_max_proto_version(ctx, Int32(config.maximumVersion.rawValue))
        _ = lk_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_OFF))

        var protos: [UInt8] = []
        for p in config.alpn where !p.isEmpty && p.utf8.count < 256 {
            protos.append(UInt8(p.utf8.count))
            protos.append(contentsOf: p.utf8)
        }
        if protos.count > 255 { protos = Array(protos.prefix(255)) }
        do throws(TLSError) {
            // Every throw happens before `alpnWire` is set (the object is not fully initialized,
            // so deinit does not run and the context is freed here, once).
            switch config.role {
            case .client:
                try Self.configureClient(ctx, config, alpn: protos)
                alpnWire = nil
            case .server:
                alpnWire = try Self.configureServer(ctx, config, alpn: protos)
            }
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        ERR_clear_error()
    }

    private static func failure(_ message: String) -> TLSError {
        .configuration("\(message): \(openSSLErrorString())")
    }

    /// Trust store, peer verification and ALPN offer of a client context.
    private static func configureClient(_ ctx: OpaquePointer, _ config: TLSConfiguration, alpn protos: [UInt8]) throws(TLSError) {
        switch config.trust {
        case .systemStore:
            if SSL_CTX_set_default_verify_paths(ctx) != 1 { throw failure("cannot load the system trust store") }
        case .caFile(let path):
            if SSL_CTX_load_verify_locations(ctx, path, nil) != 1 { throw failure("cannot load CA file '\(path)'") }
        case .insecureNoVerification:
            break
        }
        SSL_CTX_set_verify(ctx, config.verifiesPeer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
        if !protos.isEmpty && SSL_CTX_set_alpn_protos(ctx, protos, UInt32(protos.count)) != 0 {
            throw failure("cannot set ALPN \(config.alpn)")
        }
    }

    /// Certificate, key and ALPN selection of a server context; returns the ALPN list in wire
    /// form the context points to (freed in deinit), nil without ALPN.
    private static func configureServer(_ ctx: OpaquePointer, _ config: TLSConfiguration,
                                        alpn protos: [UInt8]) throws(TLSError) -> UnsafeMutablePointer<UInt8>? {
        guard let chain = config.certificateChainFile, let key = config.privateKeyFile else {
            throw .configuration("a TLS server needs certificateChainFile and privateKeyFile")
        }
        if SSL_CTX_use_certificate_chain_file(ctx, chain) != 1 { throw failure("cannot load certificate chain '\(chain)'") }
        if SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 { throw failure("cannot load private key '\(key)'") }
        if SSL_CTX_check_private_key(ctx) != 1 { throw failure("private key '\(key)' does not match the certificate") }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        // No session tickets: fixtures do full handshakes and keep no per-client state.
        _ = SSL_CTX_set_num_tickets(ctx, 0)
        guard !protos.isEmpty else { return nil }
        // Allocated after the last throw, so it cannot leak.
        let wire = UnsafeMutablePointer<UInt8>.allocate(capacity: protos.count + 1)
        wire[0] = UInt8(protos.count)
        for (i, b) in protos.enumerated() { wire[i + 1] = b }
        lk_SSL_CTX_set_alpn_select(ctx, wire)
        return wire
    }

    deinit {
        SSL_CTX_free(ctx)
        alpnWire?.deallocate()
    }
}

/// The per-connection TLS state: an `SSL` wired to two memory BIOs. Ciphertext from the socket
/// goes into `rbio`; ciphertext to send is taken out of `wbio`. Confined to the connection's loop.
final class TLSSession: @unchecked Sendable {
    enum State { case handshaking, established, failed }

    let ssl: OpaquePointer
    private(set) var rbio: OpaquePointer
    private(set) var wbio: OpaquePointer
    let isClient: Bool
    let verifiesPeer: Bool
    var state: State = .handshaking
    /// Set once close_notify was sent (by us).
    var sentCloseNotify = false
    /// Set once the peer's close_notify arrived.
    var receivedCloseNotify = false
    let handshakeStart: UInt64
    var handshakeNanos: UInt64?
    var negotiatedALPN: String?
    var negotiatedVersion: String?
    /// The client's handshake, resumed once established or failed.
    var handshakeWaiter: CheckedContinuation<Void, any Error>?
    var handshakeTimer: LoopTimer?
    /// Server: plaintext written before the handshake finished.
    var earlyPlaintext: [UInt8] = []

    init(context: TLSContext, serverName: String?) throws(TLSError) {
        guard let ssl = SSL_new(context.ctx) else {
            throw .configuration("SSL_new failed: \(openSSLErrorString())")
        }
        guard let r = Self.emptyBIO() else {
            SSL_free(ssl)
            throw .configuration("BIO_new failed: \(openSSLErrorString())")
        }
        guard let w = Self.emptyBIO() else {
            BIO_free(r)
            SSL_free(ssl)
            throw .configuration("BIO_new failed: \(openSSLErrorString())")
        }
        SSL_set_bio(ssl, r, w)  // the SSL owns both BIOs from here on
        self.ssl = ssl
        self.rbio = r
        self.wbio = w
        isClient = context.configuration.role == .client
        verifiesPeer = context.configuration.verifiesPeer
        handshakeStart = monotonicNanos()
        if isClient {
            SSL_set_connect_state(ssl)
            if let name = serverName, !name.isEmpty {
                let ip = isIPLiteral(name)
                if verifiesPeer {
                    if let ip {
                        _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip)
                    } else {
                        SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
                        _ = SSL_set1_host(ssl, name)
                    }
                }
                // SNI carries host names only, never IP literals (RFC 6066 §3).
                if ip == nil { _ = lk_SSL_set_tlsext_host_name(ssl, name) }
            }
        } else {
            SSL_set_accept_state(ssl)
        }
    }

    deinit {
        handshakeTimer?.cancel()
        SSL_free(ssl)
    }

    /// Memory BIO buffers only grow; an empty one that grew past `limit` bytes is swapped for a
    /// fresh BIO so idle connections stay small after a burst (or after the handshake, limit 0).
    func trimBuffers(limit: Int) {
        if BIO_ctrl_pending(rbio) == 0 && lk_BIO_mem_capacity(rbio) > limit, let b = Self.emptyBIO() {
            SSL_set0_rbio(ssl, b)  // frees the old one
            rbio = b
        }
        if BIO_ctrl_pending(wbio) == 0 && lk_BIO_mem_capacity(wbio) > limit, let b = Self.emptyBIO() {
            SSL_set0_wbio(ssl, b)
            wbio = b
        }
    }

    /// The allocated sizes of the two BIO buffers (for tests of the idle footprint).
    var bioCapacities: (read: Int, write: Int) { (lk_BIO_mem_capacity(rbio), lk_BIO_mem_capacity(wbio)) }

    private static func emptyBIO() -> OpaquePointer? {
        guard let b = BIO_new(BIO_s_mem()) else { return nil }
        // An empty BIO means "wait for more" (retry), never end of file.
        _ = lk_BIO_set_mem_eof_return(b, -1)
        return b
    }

    /// Records the end of a successful handshake.
    func markEstablished() {
        state = .established
        handshakeNanos = monotonicNanos() &- handshakeStart
        var p: UnsafePointer<UInt8>? = nil
        var n: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &n)
        if let p, n > 0 { negotiatedALPN = String(decoding: UnsafeBufferPointer(start: p, count: Int(n)), as: UTF8.self) }
        if let v = SSL_get_version(ssl) { negotiatedVersion = String(cString: v) }
    }

    /// Classifies the failure of the last TLS call (verify result first, then the error queue)
    /// and clears this thread's OpenSSL error queue.
    package func failure(endpoint: String) -> TLSError {
        defer { ERR_clear_error() }
        let vr = Int(SSL_get_verify_result(ssl))
        if isClient && verifiesPeer && vr != Int(X509_V_OK) {
            let reason = X509_verify_cert_error_string(numericCast(vr)).map { String(cString: $0) } ?? "unknown"
            return TLSError.fromVerifyResult(vr, reason: reason, endpoint: endpoint)
        }
        let code = ERR_peek_error()
        let reason = lk_ERR_GET_REASON(code)
        let offset = lk_SSL_AD_REASON_OFFSET()
        if code != 0 && reason >= offset && reason < offset + 256 {
            return .alert(code: Int(reason - offset), reason: openSSLErrorString(), endpoint: endpoint)
        }
        if code == 0 { return .protocolFailure(reason: "handshake aborted (no OpenSSL error recorded)", endpoint: endpoint) }
        return .protocolFailure(reason: openSSLErrorString(), endpoint: endpoint)
    }
}

/// The normalized address when `name` is an IPv4 or IPv6 literal (brackets allowed), else nil.
func isIPLiteral(_ name: String) -> String? {
    var n = name
    if n.hasPrefix("[") && n.hasSuffix("]") { n = String(n.dropFirst().dropLast()) }
    var a4 = in_addr()
    var a6 = in6_addr()
    if inet_pton(AF_INET, n, &a4) == 1 || inet_pton(AF_INET6, n, &a6) == 1 { return n }
    return nil
}

/// The first error on this thread's OpenSSL error queue as text (does not clear it).
func openSSLErrorString() -> String {
    let code = ERR_peek_error()
    guard code != 0 else { return "no OpenSSL error recorded" }
    var buf = [CChar](repeating: 0, count: 256)
    ERR_error_string_n(code, &buf, buf.count)
    return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
#endif
