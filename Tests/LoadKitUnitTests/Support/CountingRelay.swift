import Synchronization
@testable import LoadKitTransport

/// A raw TCP relay to `target` that counts the bytes it moves each way: what a client put on
/// the wire and what it was sent, whatever rides on TCP (TLS records included). The count a test
/// compares `data_sent` / `data_received` with, independent of the client's own bookkeeping.
final class CountingRelay: Sendable {
    struct Counts: Sendable, Equatable { var connections = 0, clientToServer = 0, serverToClient = 0 }
    private final class Box: Sendable {
        let counts = Mutex(Counts())
        let held = Mutex<[any Transport]>([])  // both ends of every relayed connection, kept open
    }
    private let box = Box()
    private let listener: TCPListener
    var port: Int { listener.address.port }
    var counts: Counts { box.counts.withLock { $0 } }

    init(to target: SocketAddress) throws {
        let box = self.box
        listener = try TCPListener { client in
            box.held.withLock { $0.append(client) }
            box.counts.withLock { $0.connections += 1 }
            let up = Pipe(box: box, toServer: true)
            client.start(delegate: up)
            Task {
                guard let server = try? await TransportConnector.connect(to: target, on: client.loop) else { client.close(); return }
                box.held.withLock { $0.append(server) }
                client.loop.execute {
                    let down = Pipe(box: box, toServer: false)
                    down.connect(to: client)
                    server.start(delegate: down)
                    up.connect(to: server)
                }
            }
        }
    }
    deinit { listener.close() }

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
        let box: Box
        let toServer: Bool
        var other: (any Transport)?
        var early: [UInt8] = []
        var ended = false
        init(box: Box, toServer: Bool) { self.box = box; self.toServer = toServer }
        func connect(to other: any Transport) {
            self.other = other
            if !early.isEmpty { other.write(early); early = [] }
            if ended { other.close() }
        }
        func connection(_ c: any Transport, didRead bytes: UnsafeRawBufferPointer) {
            box.counts.withLock { if toServer { $0.clientToServer += bytes.count } else { $0.serverToClient += bytes.count } }
            if let other { other.write(rawBytes: bytes) } else { early.append(contentsOf: bytes) }
        }
        func connection(_ c: any Transport, didCloseWith error: TransportError?) {
            ended = true
            other?.close()
        }
    }
}
