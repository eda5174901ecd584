/// A `.env` file parser: `KEY=value` lines, `#` comments, an optional `export ` prefix, single
/// quotes (literal), double quotes (with `\n`, `\t`, `\"`, `\\` escapes) and unquoted values with
/// trailing ` # comments`. Malformed lines are skipped (their line numbers are returned).
public enum DotEnv {
    /// The parsed variables (later lines win) and the 1-based numbers of lines that were skipped.
    public static func parse(_ text: String) -> (values: [String: String], skippedLines: [Int]) {
        var values: [String: String] = [:]
        var skipped: [Int] = []
        for (n, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine.lkTrimmed(" \t\r"))
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") || line.hasPrefix("export\t") {
                line = Substring(line.dropFirst(7).lkTrimmed(" \t"))
            }
            guard let eq = line.firstIndex(of: "=") else { skipped.append(n + 1); continue }
            let key = line[..<eq].lkTrimmed(" \t")
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }) else {
                skipped.append(n + 1); continue
            }
            let rest = Substring(line[line.index(after: eq)...].lkTrimmed(" \t"))
            guard let value = parseValue(rest) else { skipped.append(n + 1); continue }
            values[key] = value
        }
        return (values, skipped)
    }

    private static func parseValue(_ s: Substring) -> String? {
        guard let first = s.first else { return "" }
        if first == "'" {
            guard let close = s.dropFirst().firstIndex(of: "'") else { return nil }
            return String(s[s.index(after: s.startIndex)..<close])
        }
        if first == "\"" {
            var out = ""
            var escaped = false
            for c in s.dropFirst() {
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
                    return out
                } else {
                    out.append(c)
                }
            }
            return nil // unterminated
        }
        // Unquoted: a `#` preceded by whitespace starts a comment.
        var out = ""
        var prev: Character = " "
        for c in s {
            if c == "#" && (prev == " " || prev == "\t") { break }
            out.append(c); prev = c
        }
        return out.lkTrimmed(" \t")
    }
}

extension StringProtocol {
    func lkTrimmed(_ set: String) -> String {
        var sub = Substring(self)
        while let f = sub.first, set.contains(f) { sub = sub.dropFirst() }
        while let l = sub.last, set.contains(l) { sub = sub.dropLast() }
        return String(sub)
    }
}
