import Foundation
import Testing
@testable import LoadKitTransport

/// Credentials a script hands to a client in code (not through settings) are masked in every
/// output when a server echoes them bare: credential headers and the parts of their values an
/// echo may show alone are registered with `Secrets`.
@Suite(.serialized) struct HeaderSecretsTests {
    static func fresh(_ label: String) -> String { "\(label)-\(UInt32.random(in: 1_000_000...UInt32.max))" }

    /// Which headers are credentials, and which parts of their values are registered.
    @Test func credentialHeaderNamesAndTheirRegisteredParts() {
        for n in ["Authorization", "proxy-authorization", "Cookie", "X-Api-Key", "Api-Key", "apikey", "X-Auth-Token",
                  "X-CSRF-Token", "Client-Secret", "X-Password", "passcode", "X-Amz-Security-Token"] {
            #expect(Secrets.isCredentialHeader(n), "\(n)")
        }
        for n in ["Content-Type", "Accept", "User-Agent", "Sec-WebSocket-Key", "Sec-WebSocket-Protocol", "Idempotency-Key",
                  "login", "host", "heart-beat", "Set-Cookie", "X-Request-Id", "Origin"] {
            #expect(!Secrets.isCredentialHeader(n), "\(n)")
        }
        let bearer = Self.fresh("unit-bearer"), user = Self.fresh("unit-user"), password = Self.fresh("unit-pass")
        let c1 = Self.fresh("unit-c1"), c2 = Self.fresh("unit-c2"), plain = Self.fresh("unit-plain")
        let basic = Data("\(user):\(password)".utf8).base64EncodedString()
        Secrets.registerHeader("Authorization", "Bearer \(bearer)")
        Secrets.registerHeader("Proxy-Authorization", "Basic \(basic)")
        Secrets.registerHeader("Cookie", "a=\(c1); b=\(c2); c=no")
        Secrets.registerHeader("X-Request-Id", plain)
        Secrets.registerHeader("X-Api-Key", "abcd")   // shorter than Secrets.minimumLength: never registered
        let out = Secrets.redact("\(bearer) \(basic) \(password) \(c1) \(c2) no \(plain) abcd Bearer")
        #expect(out == "**** **** **** **** **** no \(plain) abcd Bearer", "\(out)")
        // The user name of a Basic credential is not a secret.
        #expect(Secrets.redact(user) == user)
    }
}
