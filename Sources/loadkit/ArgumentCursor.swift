import LoadKit

/// Walks a subcommand's arguments in order: `next()` gives each one, `value(for:)` the value
/// following a flag (an error naming the flag when there is none).
struct ArgumentCursor {
    private let args: [String]
    private var index = 0

    init(_ args: [String]) { self.args = args }

    /// The next argument, nil at the end.
    mutating func next() -> String? {
        guard index < args.count else { return nil }
        defer { index += 1 }
        return args[index]
    }

    /// The value after `flag`.
    mutating func value(for flag: String) throws -> String {
        guard let v = next() else { throw ScriptFailure("\(flag) needs a value") }
        return v
    }
}
