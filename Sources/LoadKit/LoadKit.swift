// `import LoadKit` is the whole kit: the scenario API (engine), the clients (protocols) and the
// sockets and loops under them (transport), as one import. The layers are separate targets so
// that no lower one can reach up (see Package.swift).
@_exported import LoadKitEngine
@_exported import LoadKitProtocols
@_exported import LoadKitTransport
