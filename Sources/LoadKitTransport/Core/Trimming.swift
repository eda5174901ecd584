extension StringProtocol {
    /// The text without leading and trailing characters of `set`.
    package func lkTrimmed(_ set: String) -> String {
        var sub = Substring(self)
        while let f = sub.first, set.contains(f) { sub = sub.dropFirst() }
        while let l = sub.last, set.contains(l) { sub = sub.dropLast() }
        return String(sub)
    }
}
