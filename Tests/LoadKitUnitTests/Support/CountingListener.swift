import Synchronization
@testable import LoadKitTransport

/// Keeps connections open (a test peer that accepts and then says nothing, or one that must not
/// let a connection go with its delegate).
final class KeptConnections: Sendable {
    private let all = Mutex<[any Transport]>([])
    func keep(_ c: any Transport) { all.withLock { $0.append(c) } }
}

/// The raw listener of a test peer that counts what it sees: every accepted connection is kept
/// open (until one side closes it) and read by the delegate `peer` makes for it, which updates
/// the counts shared by all the connections through the ``Tally`` it is given.
final class CountingListener<Counts: Sendable>: Sendable {
    /// The counts, and the connections kept, of one listener.
    final class Tally: Sendable {
        private let counts: Mutex<Counts>
        let held = KeptConnections()
        init(_ counts: Counts) { self.counts = Mutex(counts) }
        func update(_ change: (inout Counts) -> Void) { counts.withLock { change(&$0) } }
        var snapshot: Counts { counts.withLock { $0 } }
    }
    private let tally: Tally
    private let listener: TCPListener
    var port: Int { listener.address.port }
    var counts: Counts { tally.snapshot }

    init(_ counts: Counts, peer: @escaping @Sendable (_ accepted: any Transport, Tally) -> any ConnectionDelegate) throws {
        let tally = Tally(counts)
        self.tally = tally
        listener = try TCPListener { tcp in
            tally.held.keep(tcp)
            tcp.start(delegate: peer(tcp, tally))
        }
    }
    deinit { listener.close() }
}
