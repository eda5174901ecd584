import LoadKitTransport
import LoadKitProtocols

/// A configuration value that could not be used. The message names the variable, the value (hidden
/// for secret-looking keys such as `TOKEN` or `PASSWORD`) and what was expected.
public struct ConfigError: ClassifiedError, Sendable, Equatable {
    /// The variable's name (`LOADKIT_SCALE`, `MESSAGE_INTERVAL_MS`).
    public var variable: String
    /// The offending value, or `<hidden>` for secrets.
    public var shownValue: String
    /// What would have been accepted.
    public var expected: String

    /// The malformed lines of a `.env` file (empty for a bad variable).
    package var envFileProblems: [DotEnv.Problem] = []

    /// Creates an error; the value is masked when `variable` looks secret.
    public init(variable: String, value: String, expected: String) {
        self.variable = variable
        self.shownValue = Secrets.isSecret(variable) ? "<hidden>" : value
        self.expected = expected
    }

    /// A `.env` file with malformed lines: names the file and each line's number and problem
    /// (never the line's text, which may hold a secret).
    package init(envFile path: String, problems: [DotEnv.Problem]) {
        variable = path
        shownValue = ""
        expected = "KEY=value lines (a value may be quoted; # starts a comment)"
        envFileProblems = problems
    }

    /// Always `config_invalid`.
    public var kind: String { "config_invalid" }
    /// Always the load generator: the test was set up wrongly.
    public var source: FailureSource { .loadGenerator }
    /// `LOADKIT_SCALE="huge" is not valid: expected smoke, full (or nightly) or a positive number`.
    public var description: String {
        if !envFileProblems.isEmpty {
            let lines = envFileProblems.map { "line \($0.line): \($0.reason)" }.joined(separator: "; ")
            return Secrets.redact("\(variable) is malformed — \(lines); expected \(expected)")
        }
        return Secrets.redact("\(variable)=\"\(shownValue)\" is not valid: expected \(expected)")
    }
}
