// swift-tools-version: 6.1
// LoadKit: load tests that are ordinary tests. No package dependencies (design card).
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "LoadKit",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LoadKit", targets: ["LoadKit"]),
        .library(name: "LoadKitFixtures", targets: ["LoadKitFixtures"]),
        .library(name: "LoadKitTesting", targets: ["LoadKitTesting"]),
        .executable(name: "loadkit-fixture", targets: ["loadkit-fixture"]),
        .executable(name: "loadkit", targets: ["loadkit"]),
    ],
    traits: [
        .trait(name: "TLS", description: "https and wss through the system OpenSSL (apt: libssl-dev)."),
    ],
    targets: [
        // The system OpenSSL, used only with the `TLS` trait on Linux (the default build links no libssl).
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        // The few system calls the event loop needs that Glibc does not expose (epoll, eventfd),
        // and WebSocket's UTF-8 check, in C so that debug builds are not slow at it.
        .target(name: "CLoadKit", path: "Sources/CLoadKit"),
        // The layers, bottom up; no arrow runs back up (issue 15). A user imports `LoadKit`, which
        // re-exports the layers below it.
        // 1. Event loops, sockets, TLS, timers, and the few shared basics (time, secrets, failures).
        .target(name: "LoadKitTransport",
                dependencies: ["CLoadKit",
                               .target(name: "COpenSSL", condition: .when(platforms: [.linux], traits: ["TLS"]))],
                path: "Sources/LoadKitTransport", swiftSettings: strict),
        // 2. The wire protocols: HTTP/1.1, WebSocket, STOMP — codecs, clients and the server role.
        .target(name: "LoadKitProtocols", dependencies: ["CLoadKit", "LoadKitTransport"],
                path: "Sources/LoadKitProtocols", swiftSettings: strict),
        // 3. The engine: load tests and their executors, metrics, SLAs, reports, settings.
        .target(name: "LoadKitEngine", dependencies: ["LoadKitTransport", "LoadKitProtocols"],
                path: "Sources/LoadKitEngine", swiftSettings: strict),
        // 4. What users import: the layers below plus ready scenarios (the STOMP chat).
        .target(name: "LoadKit", dependencies: ["LoadKitTransport", "LoadKitProtocols", "LoadKitEngine"],
                path: "Sources/LoadKit", swiftSettings: strict),
        // Embedded systems under test (STOMP chat, Runnity, Concert), built on LoadKit's server role.
        .target(name: "LoadKitFixtures", dependencies: ["LoadKit"], path: "fixtures/LoadKitFixtures",
                swiftSettings: strict),
        // Helpers the suites and users' load-test targets share (short runs, report folders, fixture placement).
        .target(name: "LoadKitTesting", dependencies: ["LoadKit", "LoadKitFixtures"], path: "Sources/LoadKitTesting",
                swiftSettings: strict),
        // Runs one fixture as its own process: `swift run loadkit-fixture stomp --port 61613`.
        .executableTarget(name: "loadkit-fixture", dependencies: ["LoadKit", "LoadKitFixtures"],
                          path: "Sources/loadkit-fixture", swiftSettings: strict),
        // Command-line companion: merge shard results, benchmarks.
        .executableTarget(name: "loadkit", dependencies: ["LoadKit", "LoadKitFixtures"],
                          path: "Sources/loadkit", swiftSettings: strict),
        .testTarget(name: "LoadKitUnitTests", dependencies: ["LoadKit", "LoadKitFixtures"], swiftSettings: strict),
        .testTarget(name: "StompLoadTests", dependencies: ["LoadKit", "LoadKitFixtures", "LoadKitTesting"], swiftSettings: strict),
        .testTarget(name: "RunnityWSLoadTests", dependencies: ["LoadKit", "LoadKitFixtures", "LoadKitTesting"], swiftSettings: strict),
        .testTarget(name: "ConcertHTTPLoadTests", dependencies: ["LoadKit", "LoadKitFixtures", "LoadKitTesting"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
