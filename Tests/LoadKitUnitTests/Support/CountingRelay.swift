import Synchronization
@testable import LoadKitTransport

/// A raw TCP relay to `target` that counts the bytes it moves each way: what a client put on
/// the wire and what it was sent, whatever rides on TCP (TLS records included). The count a test
/// compares `data_sent` / `data_received` with, independent of the client's own bookkeeping.
final class CountingRelay: Sendable {
    struct Counts: Sendable, Equatable { var connections = 0, clientToServer = 0, serverToClient = 0 }
    private typealias Tally = CountingListener<Counts>.Tally
    private let peers: CountingListener<Counts>
    var port: Int { peers.port }
    var counts: Counts { peers.counts }

    init(to target: SocketAddress) throws {
        peers = try CountingListener(Counts()) { client, tally in
            tally.update { $0.connections += 1 }
            let up = Pipe(tally: tally, toServer: true)
            Task {
                guard let server = try? await TransportConnector.connect(to: target, on: client.loop) else { client.close(); return }
                tally.held.keep(server)
                client.loop.execute {
                    let down = Pipe(tally: tally, toServer: false)
                    down.connect(to: client)
                    server.start(delegate: down)
                    up.connect(to: server)
                }
            }
            return up
        }
    }

    /// The counts once nothing has moved for 100 ms (bytes still on their way are counted).
    func settled() async -> Counts {
        var last = counts
        while true {
            try? await Task.sleep(for: .milliseconds(100))
            let now = counts
            if now == last { return now }
            last = now
        }
    }

    /// One direction: counts what it reads and writes it to the other side (held until that
    /// side is connected); an end on one side closes the other. On the loop.
    private final class Pipe: ConnectionDelegate, @unchecked Sendable {
        let tally: Tally
        let toServer: Bool
        var other: (any Transport)?
        var early: [UInt8] = []
        var ended = false
        init(tally: Tally, toServer: Bool) { self.tally = tally; self.toServer = toServer }
        func connect(to other: any Transport) {
            self.other = other
            if !early.isEmpty { other.write(early); early = [] }
            if ended { other.close() }
        }
        func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
            tally.update { if toServer { $0.clientToServer += bytes.count } else { $0.serverToClient += bytes.count } }
            if let other { other.write(rawBytes: bytes) } else { early.append(contentsOf: bytes) }
        }
        func connection(_ c: any Transport, didCloseWith error: TransportError?) {
            ended = true
            other?.close()
        }
    }
}
