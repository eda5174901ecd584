import Synchronization

/// Where a failure came from. Seed 004's author could not tell a saturated load generator from a
/// failing server; every error LoadKit reports carries one of these so a person never has to guess.
public enum FailureSource: String, Sendable, Codable, Hashable, CaseIterable, CustomStringConvertible {
    /// The load generator itself ran out of something (file descriptors, ephemeral ports, memory)
    /// or was misconfigured. The server is not to blame.
    case loadGenerator = "load-generator"
    /// The server answered with a failure: refused, reset, HTTP status, WebSocket close code, STOMP ERROR.
    case server
    /// The network path failed (unreachable, DNS); neither side is clearly to blame.
    case network
    /// The scenario script itself failed an expectation (wrong body, missing field), or gave a
    /// client something malformed (`bad_url`). A URL the script took from a server's answer is the
    /// server's to blame: rethrow it as `ScriptFailure("… \(error)", kind: "bad_url", source: .server)`.
    case script

    /// `load-generator`, `server`, `network` or `script`, as the reports print it.
    public var description: String { rawValue }
}

/// An error that knows its category (a short stable key used in reports, such as `refused`,
/// `http_503`, `ws_close_1006`, `stomp_error`, `emfile`) and its source.
public protocol ClassifiedError: Error, CustomStringConvertible {
    /// Short, stable key under which the error is counted in reports.
    var kind: String { get }
    /// Which side of the test caused it.
    var source: FailureSource { get }
}

/// A failure a client counted for its virtual user when it happened (a STOMP session the server
/// ended while nobody waited on it), which can reach the script again afterwards — through its
/// own `onError` hook, `waitClosed()`, or a call on the dead session that throws it. Each such
/// copy carries the ``occurrence`` the count was filed under, and the user's ledger does not count
/// it a second time. 0: not counted yet (an ordinary error).
package protocol CountedFailure: ClassifiedError {
    /// The number the counted failure was filed under (``nextFailureOccurrence()``), or 0.
    var occurrence: UInt64 { get }
}

private let failureOccurrences = Atomic<UInt64>(0)

/// A number for a failure about to be counted, unique in the process (never 0).
package func nextFailureOccurrence() -> UInt64 { failureOccurrences.add(1, ordering: .relaxed).newValue }

/// A failure raised by a scenario script (an expectation on a response that did not hold).
public struct ScriptFailure: ClassifiedError, Sendable {
    /// What the script expected and what it saw.
    public var message: String
    /// Category key; defaults to `assertion`.
    public var kind: String
    /// Always `.script` unless the script knows better (e.g. a server answered nonsense).
    public var source: FailureSource

    /// Creates a script failure with a message naming what went wrong.
    public init(_ message: String, kind: String = "assertion", source: FailureSource = .script) {
        self.message = message
        self.kind = kind
        self.source = source
    }

    /// The message, through ``Secrets/redact(_:)``: scripts often quote what a server sent.
    public var description: String { Secrets.redact(message) }
}

extension Error {
    /// The error's report category; `script_error` when it is not a ``ClassifiedError``.
    public var loadKitKind: String {
        if let c = self as? any ClassifiedError { return c.kind }
        if self is CancellationError { return "cancelled" }
        return "script_error"
    }

    /// The error's source. Every error LoadKit's own code throws is classified, so an error that
    /// is not comes from the scenario's code (`.script`); cancellation is the load generator's.
    public var loadKitSource: FailureSource {
        if let c = self as? any ClassifiedError { return c.source }
        return self is CancellationError ? .loadGenerator : .script
    }
}
