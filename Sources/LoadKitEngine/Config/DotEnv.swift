import LoadKitTransport
import LoadKitProtocols

/// A `.env` file parser: `KEY=value` lines, `#` comments, an optional `export ` prefix, single
/// quotes (literal), double quotes (with `\n`, `\t`, `\"`, `\\` escapes) and unquoted values with
/// trailing ` # comments`. A line that is none of these is a problem, reported with its number
/// and what is wrong (never its text: it may hold a secret); ``Settings/load(environment:currentDirectory:)``
/// turns problems into an error naming the file and the lines.
package enum DotEnv {
    /// One malformed line.
    public struct Problem: Sendable, Hashable {
        /// 1-based line number.
        public var line: Int
        /// What is wrong (`no "=" between a name and a value`, `unterminated double quote`).
        public var reason: String
    }

    /// The parsed variables (later lines win) and the malformed lines.
    public static func parse(_ text: String) -> (values: [String: String], problems: [Problem]) {
        var values: [String: String] = [:]
        var problems: [Problem] = []
        for (n, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine.lkTrimmed(" \t\r"))
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") || line.hasPrefix("export\t") {
                line = Substring(line.dropFirst(7).lkTrimmed(" \t"))
            }
            guard let eq = line.firstIndex(of: "=") else {
                problems.append(Problem(line: n + 1, reason: "no \"=\" between a name and a value")); continue
            }
            let key = line[..<eq].lkTrimmed(" \t")
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }) else {
                problems.append(Problem(line: n + 1, reason: "the name before \"=\" is not a variable name (letters, digits, _ and .)")); continue
            }
            let rest = Substring(line[line.index(after: eq)...].lkTrimmed(" \t"))
            switch parseValue(rest) {
            case .success(let value): values[key] = value
            case .failure(let reason): problems.append(Problem(line: n + 1, reason: "\(reason.text) in the value of \(key)"))
            }
        }
        return (values, problems)
    }

    struct ValueError: Error { var text: String }

    private static func parseValue(_ s: Substring) -> Result<String, ValueError> {
        guard let first = s.first else { return .success("") }
        if first == "'" {
            guard let close = s.dropFirst().firstIndex(of: "'") else { return .failure(ValueError(text: "unterminated single quote")) }
            return afterQuote(s[s.index(after: close)...], value: String(s[s.index(after: s.startIndex)..<close]))
        }
        if first == "\"" {
            var out = ""
            var escaped = false
            var i = s.index(after: s.startIndex)
            while i < s.endIndex {
                let c = s[i]
                if escaped {
                    switch c {
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "r": out.append("\r")
                    default: out.append(c)
                    }
                    escaped = false
                } else if c == "\\" {
                    escaped = true
                } else if c == "\"" {
                    return afterQuote(s[s.index(after: i)...], value: out)
                } else {
                    out.append(c)
                }
                i = s.index(after: i)
            }
            return .failure(ValueError(text: "unterminated double quote"))
        }
        // Unquoted: a `#` preceded by whitespace starts a comment.
        var out = ""
        var prev: Character = " "
        for c in s {
            if c == "#" && (prev == " " || prev == "\t") { break }
            out.append(c); prev = c
        }
        return .success(out.lkTrimmed(" \t"))
    }

    /// After a closing quote only blanks and a `# comment` may follow.
    private static func afterQuote(_ rest: Substring, value: String) -> Result<String, ValueError> {
        let r = rest.lkTrimmed(" \t")
        return r.isEmpty || r.hasPrefix("#") ? .success(value) : .failure(ValueError(text: "text after the closing quote"))
    }
}
