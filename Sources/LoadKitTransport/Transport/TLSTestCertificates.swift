import Foundation

/// Throwaway certificates for TLS fixtures and tests, made with the `openssl` command-line tool:
/// a private CA and a server certificate it signed for `localhost` and `127.0.0.1`.
/// For tests only: keys are unencrypted files in a temporary folder.
package struct TLSTestCertificates: Sendable {
    /// The folder holding every file.
    public let directory: String
    /// The CA certificate (PEM): trust it with ``TLSConfiguration/trustRoots(caFile:)``.
    public let caFile: String
    /// The server certificate chain (PEM, leaf then CA).
    public let certificateChainFile: String
    /// The server's private key (PEM).
    public let privateKeyFile: String

    /// A server configuration presenting this certificate.
    public var serverConfiguration: TLSConfiguration {
        .server(certificateChainFile: certificateChainFile, privateKeyFile: privateKeyFile)
    }

    /// A client configuration trusting only this CA.
    public var clientConfiguration: TLSConfiguration { .trustRoots(caFile: caFile) }

    /// The key algorithm of generated keys.
    public enum KeyType: Sendable {
        /// ECDSA P-256: fast to generate and to sign (tests).
        case ecP256
        /// RSA 2048: the common server key (benchmarks comparable with `openssl s_time`).
        case rsa2048
    }

    /// Generates a CA and a server certificate in a new temporary folder.
    /// - Parameters:
    ///   - names: DNS names in the certificate (default `localhost`).
    ///   - ips: IP addresses in the certificate (default `127.0.0.1`).
    ///   - validDays: validity of the server certificate; a negative value makes it already expired.
    public static func generate(names: [String] = ["localhost"], ips: [String] = ["127.0.0.1"],
                                validDays: Int = 2, keyType: KeyType = .ecP256,
                                commonName: String = "LoadKit Test CA") throws -> TLSTestCertificates {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("loadkit-tls-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let key: [String] = switch keyType {
        case .ecP256: ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        case .rsa2048: ["-newkey", "rsa:2048"]
        }
        let san = (names.map { "DNS:\($0)" } + ips.map { "IP:\($0)" }).joined(separator: ",")
        try "subjectAltName=\(san)\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: "\(dir)/server.ext", atomically: true, encoding: .utf8)
        try runOpenSSL(["req", "-x509", "-nodes"] + key + ["-keyout", "\(dir)/ca.key", "-out", "\(dir)/ca.pem",
                        "-days", "3", "-subj", "/CN=\(commonName)"], in: dir)
        try runOpenSSL(["req", "-nodes"] + key + ["-keyout", "\(dir)/server.key", "-out", "\(dir)/server.csr",
                        "-subj", "/CN=\(names.first ?? ips.first ?? "server")"], in: dir)
        try runOpenSSL(["x509", "-req", "-in", "\(dir)/server.csr", "-CA", "\(dir)/ca.pem", "-CAkey", "\(dir)/ca.key",
                        "-CAcreateserial", "-days", "\(validDays)", "-extfile", "\(dir)/server.ext",
                        "-out", "\(dir)/server.pem"], in: dir)
        let chain = try String(contentsOfFile: "\(dir)/server.pem", encoding: .utf8)
            + String(contentsOfFile: "\(dir)/ca.pem", encoding: .utf8)
        try chain.write(toFile: "\(dir)/chain.pem", atomically: true, encoding: .utf8)
        return TLSTestCertificates(directory: dir, caFile: "\(dir)/ca.pem",
                                   certificateChainFile: "\(dir)/chain.pem", privateKeyFile: "\(dir)/server.key")
    }

    /// Deletes the folder.
    public func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func runOpenSSL(_ args: [String], in dir: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["openssl"] + args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw TLSError.configuration("openssl \(args.first ?? "") failed (status \(p.terminationStatus)): \(errText.suffix(400))")
        }
    }
}
