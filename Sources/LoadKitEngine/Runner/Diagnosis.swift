import LoadKitTransport
import LoadKitProtocols

/// What a run is about to ask of the load generator's operating system.
package struct CapacityPlan: Sendable, Equatable {
    /// Most connections open at once.
    public var peakConnections: Int
    /// Descriptors each connection costs this process: 1 for a remote server, 2 when the fixture
    /// server runs in the same process (client and server end both count).
    public var descriptorsPerConnection: Int
    /// Distinct destination address:port pairs the connections are spread over.
    public var destinations: Int
    /// Source addresses the client binds (1 unless a ``SourceAddressPool`` spreads them).
    public var sourceAddresses: Int

    /// Creates a plan.
    public init(peakConnections: Int, descriptorsPerConnection: Int = 1, destinations: Int = 1, sourceAddresses: Int = 1) {
        self.peakConnections = max(0, peakConnections)
        self.descriptorsPerConnection = max(1, descriptorsPerConnection)
        self.destinations = max(1, destinations)
        self.sourceAddresses = max(1, sourceAddresses)
    }
}

/// The run was refused before it started because the load generator could not carry it: the
/// failure would have been the generator's, not the server's (seed 004's lesson).
public struct CapacityError: ClassifiedError, Sendable, Equatable {
    /// `planned_fd_exhaustion` or `planned_port_exhaustion`.
    public var kind: String
    /// Numbers and the remedy.
    public var message: String
    /// Always the load generator.
    public var source: FailureSource { .loadGenerator }
    /// The message.
    public var description: String { message }
}

/// The verdict of a pre-run check: fine, fine with warnings, or refused.
public struct Diagnosis: Sendable, Equatable {
    /// Warnings to print (close to a limit).
    public var warnings: [String]
    /// Set when the run must not start.
    public var refusal: CapacityError?
    /// Numbers used, for the report (`open_file_limit`, `ephemeral_ports`, …).
    public var facts: [String: String]

    /// Share of a limit above which a warning is printed.
    public static let warnShare = 0.8
    /// Descriptors kept free for the process itself (files, listeners, report writers).
    public static let reserveDescriptors = 64

    /// Pure check of `plan` against the limits given.
    package static func evaluate(_ plan: CapacityPlan, openFileLimit: Int, descriptorsInUse: Int,
                                ephemeralPorts: Int) -> Diagnosis {
        var d = Diagnosis(warnings: [], refusal: nil, facts: [:])
        let needFDs = plan.peakConnections * plan.descriptorsPerConnection
        let available = max(0, openFileLimit - max(0, descriptorsInUse) - reserveDescriptors)
        d.facts = ["open_file_limit": String(openFileLimit), "descriptors_needed": String(needFDs),
                   "descriptors_in_use": String(descriptorsInUse), "ephemeral_ports": String(ephemeralPorts),
                   "planned_peak_connections": String(plan.peakConnections)]
        let shared = plan.descriptorsPerConnection > 1
            ? " (\(plan.descriptorsPerConnection) per connection because the fixture server shares this process)" : ""
        if needFDs > available {
            d.refusal = CapacityError(kind: "planned_fd_exhaustion", message:
                "refusing to start: \(plan.peakConnections) connections need \(needFDs) file descriptors\(shared), "
                + "but only \(available) of the open-file limit \(openFileLimit) are free (\(descriptorsInUse) in use, "
                + "\(reserveDescriptors) reserved). The run would fail with EMFILE in the load generator, not the server. "
                + "Remedy: run the fixture server as its own process (`swift run loadkit-fixture`), raise the hard limit "
                + "(ulimit -Hn), lower the users (LOADKIT_USERS_SCALE) or shard across machines.")
        } else if Double(needFDs) > Double(available) * warnShare {
            d.warnings.append("\(needFDs) file descriptors planned\(shared), \(available) free under the open-file limit "
                + "\(openFileLimit): close to EMFILE; consider a separate fixture process.")
        }
        let perSource = (plan.peakConnections + plan.destinations - 1) / plan.destinations
        let perPortPool = (perSource + plan.sourceAddresses - 1) / plan.sourceAddresses
        if perPortPool > ephemeralPorts {
            let needSources = (perSource + ephemeralPorts - 1) / max(1, ephemeralPorts)
            let refusal = CapacityError(kind: "planned_port_exhaustion", message:
                "refusing to start: \(perSource) connections to one destination from \(plan.sourceAddresses) source address(es) "
                + "need \(perPortPool) ephemeral ports each, but the range holds \(ephemeralPorts). "
                + "Remedy: spread connections over \(needSources) source addresses in 127.0.0.0/8 (SourceAddressPool) for a "
                + "loopback target, more destination addresses, or shard across machines.")
            if d.refusal == nil { d.refusal = refusal } else { d.warnings.append(refusal.message) }
        } else if Double(perPortPool) > Double(ephemeralPorts) * warnShare {
            d.warnings.append("\(perPortPool) connections per source address and destination, \(ephemeralPorts) ephemeral "
                + "ports: close to exhaustion; add source addresses (SourceAddressPool).")
        }
        return d
    }

    /// Raises the open-file soft limit to the hard one, reads the port range and descriptors in use,
    /// and evaluates `plan`. Throws the ``CapacityError`` when the run must not start.
    @discardableResult
    package static func preflight(_ plan: CapacityPlan) throws -> Diagnosis {
        let limit = ResourceLimits.raiseOpenFileLimit()
        let ports = ResourceLimits.ephemeralPortRange().count
        let inUse = max(0, ResourceLimits.openDescriptorCount())
        let d = evaluate(plan, openFileLimit: limit, descriptorsInUse: inUse, ephemeralPorts: ports)
        if let r = d.refusal { throw r }
        return d
    }
}
