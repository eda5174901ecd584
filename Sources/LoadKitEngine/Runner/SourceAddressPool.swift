import Synchronization
import LoadKitTransport
import LoadKitProtocols

/// Hands out loopback source addresses 127.0.0.1, 127.0.0.2, … round-robin so more than one
/// ephemeral port range (28,232 ports per source and destination) is available for a loopback
/// target. Pass ``next()`` as `from:` to `TransportConnector.connect`.
package final class SourceAddressPool: Sendable {
    /// The addresses, in order.
    public let addresses: [SocketAddress]
    private let cursor = Atomic<Int>(0)

    /// `count` addresses starting at 127.0.0.`first` (port 0: the kernel picks the port).
    public init(count: Int, first: Int = 1) {
        let n = max(1, min(count, 254))
        addresses = (0..<n).compactMap { SocketAddress(ip: "127.0.0.\(first + $0)", port: 0) }
    }

    /// How many source addresses `connections` to one destination need, given the port range.
    public static func needed(connections: Int, ephemeralPorts: Int = ResourceLimits.ephemeralPortRange().count,
                              headroom: Double = 0.8) -> Int {
        let usable = max(1, Int(Double(ephemeralPorts) * headroom))
        return max(1, (connections + usable - 1) / usable)
    }

    /// A pool big enough for `connections` to one destination.
    public convenience init(forConnections connections: Int) {
        self.init(count: SourceAddressPool.needed(connections: connections))
    }

    /// The next address, round-robin.
    public func next() -> SocketAddress {
        let i = cursor.add(1, ordering: .relaxed).oldValue
        return addresses[((i % addresses.count) + addresses.count) % addresses.count]
    }
}
