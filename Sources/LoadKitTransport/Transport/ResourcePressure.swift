import Synchronization

/// When this process last ran out of file descriptors (a `socket()` or `accept()` failing with
/// `EMFILE`/`ENFILE`, client or in-process fixture alike). A time-out that spans such a moment
/// was most likely the load generator's doing — a server that could not accept because *we* had
/// no descriptors looks exactly like a slow server — so it is blamed on the load generator
/// (seed 004: say which side failed, never guess).
package enum ResourcePressure {
    private static let lastExhaustion = Atomic<UInt64>(0)

    /// Notes that a descriptor could not be had just now.
    static func noteDescriptorExhaustion() {
        lastExhaustion.store(monotonicNanos(), ordering: .relaxed)
    }

    /// Whether descriptors ran out at or after `start` (a ``monotonicNanos()`` value).
    static func descriptorsExhausted(since start: UInt64) -> Bool {
        let t = lastExhaustion.load(ordering: .relaxed)
        return t != 0 && t >= start
    }

    /// `timeout` as it should be reported for an operation that began at `start`: unchanged, or
    /// blamed on the load generator when the process ran out of descriptors meanwhile.
    package static func attribute(_ timeout: any ClassifiedError, operationStart start: UInt64) -> any ClassifiedError {
        descriptorsExhausted(since: start) ? StarvedGeneratorError(underlying: timeout) : timeout
    }
}

/// A failure (usually a time-out) that happened while the load generator itself was out of file
/// descriptors: same kind as the underlying error, blamed on the load generator.
public struct StarvedGeneratorError: ClassifiedError, Sendable {
    /// What the operation saw.
    public var underlying: any ClassifiedError
    /// The underlying error's kind (`ws_handshake_timeout`, `timeout`, …).
    public var kind: String { underlying.kind }
    /// Always the load generator.
    public var source: FailureSource { .loadGenerator }
    public var description: String {
        "\(underlying.description) — while this load generator was out of file descriptors (EMFILE/ENFILE), "
            + "so the server is not to blame; lower the connections or raise `ulimit -n`"
    }

    init(underlying: any ClassifiedError) {
        self.underlying = underlying
    }
}
