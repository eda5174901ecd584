/// Writes a Swift string as a JSON string literal (quotes, backslash, control characters
/// escaped). Used where LoadKit and its fixtures build small JSON bodies by hand on hot or simple
/// paths instead of going through `JSONEncoder`.
package enum JSONQuoting {
    /// Appends `s` to `out` as a quoted JSON string.
    public static func append(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u00" + (h.count < 2 ? "0" : "") + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    /// `s` as a quoted JSON string.
    public static func quoted(_ s: String) -> String {
        var out = ""
        append(s, to: &out)
        return out
    }
}
