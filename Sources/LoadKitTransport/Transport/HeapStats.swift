import CLoadKit

/// The C heap's own account, for benchmarks that tell live memory from what the allocator keeps
/// around it (RSS also counts freed chunks not yet returned, and pages of other kinds).
package enum HeapStats {
    /// Bytes malloc has handed out and not taken back (glibc's `mallinfo2`); nil where the C
    /// library does not say.
    package static func inUseBytes() -> Int? {
        let v = lk_heap_in_use()
        return v < 0 ? nil : Int(v)
    }
}
