/// Wraps a value the compiler cannot prove Sendable but that crosses to another thread once and
/// is used there alone (a handler handed to its connection's loop, headers handed to a send).
/// The one such wrapper in the package.
package struct UncheckedSendable<T>: @unchecked Sendable {
    package let value: T
    package init(_ value: T) { self.value = value }
}
