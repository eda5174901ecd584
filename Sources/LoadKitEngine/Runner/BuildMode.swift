import Foundation
import LoadKitTransport
import LoadKitProtocols

/// Build-mode facts: debug builds run Swift many times slower, so the generator would be measured.
public enum BuildMode {
    /// `debug` or `release`.
    public static var name: String {
        #if DEBUG
        return "debug"
        #else
        return "release"
        #endif
    }

    /// Users above which a debug build gets a warning.
    public static let largeRunUsers = 1000

    /// The warning for a large run in a debug build, nil otherwise.
    public static func warning(plannedUsers: Int, mode: String = name) -> String? {
        guard mode == "debug", plannedUsers > largeRunUsers else { return nil }
        return "loadkit: WARNING: \(plannedUsers) users in a DEBUG build — the load generator, not the server, "
            + "would be what is measured. Run scaled tests with `swift test -c release`.\n"
    }
}
