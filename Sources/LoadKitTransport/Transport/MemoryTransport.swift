/// One end of an in-memory byte stream: what one end writes, the other end's delegate reads in a
/// later turn of their shared loop, as from a socket (through the loop's read buffer, in reads of
/// at most ``readChunk`` bytes). Lets protocol drivers (clients and fixture servers) be tested
/// without sockets, including streams split at every byte.
///
/// Closing mirrors TCP: ``close()`` ends the peer's stream after the bytes already sent (the peer
/// sees ``TransportError/closedByPeer(endpoint:)``), ``shutdownOutput()`` ends it while this end
/// still reads, ``abort()`` resets it (the peer sees ``TransportError/reset(endpoint:)`` at once).
/// Both ends live on one loop; call everything not marked thread-safe there.
package final class MemoryTransport: Transport, @unchecked Sendable {
    public let loop: EventLoop
    public private(set) var isOpen = true
    public var peerAddress: SocketAddress? { nil }
    public let peerDescription: String
    /// Always 0: a write lands in the peer's inbox at once.
    public var bufferedBytes: Int { 0 }
    /// The most bytes handed to the delegate in one read (1 splits every message at every byte).
    public var readChunk = Int.max
    /// Bytes this end has written (what its peer was sent).
    public private(set) var bytesWritten = 0

    private var peer: MemoryTransport?
    private var delegate: (any ConnectionDelegate)?
    private var inbox: [UInt8] = []
    private var inboxStart = 0
    private var inputEnd: TransportError?  // set when the peer ended the stream (FIN or reset)
    private var outputShut = false
    private var deliveryQueued = false
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []

    private init(loop: EventLoop, name: String) {
        self.loop = loop
        peerDescription = name
    }

    /// A connected pair on `loop`: `client` and `server` name each other's end in errors.
    package static func pair(on loop: EventLoop = EventLoopGroup.shared.next(),
                             names: (client: String, server: String) = ("memory-client", "memory-server"))
        -> (client: MemoryTransport, server: MemoryTransport) {
        let client = MemoryTransport(loop: loop, name: names.server)
        let server = MemoryTransport(loop: loop, name: names.client)
        client.peer = server
        server.peer = client
        return (client, server)
    }

    // MARK: reading

    /// Sets the delegate and delivers what has arrived so far in a later turn. Thread-safe.
    public func start(delegate: any ConnectionDelegate) {
        loop.runOrExecute { [self] in
            self.delegate = delegate
            queueDelivery()
        }
    }

    private func queueDelivery() {
        guard !deliveryQueued, isOpen, delegate != nil else { return }
        deliveryQueued = true
        loop.executeLocal { [self] in
            deliveryQueued = false
            deliver()
        }
    }

    /// Hands the inbox to the delegate through the loop's read buffer, then the stream's end.
    private func deliver() {
        let buf = loop.readBuffer
        while isOpen, let d = delegate, inboxStart < inbox.count {
            let n = min(readChunk, buf.count, inbox.count - inboxStart)
            inbox.withUnsafeBytes { src in
                buf.baseAddress!.copyMemory(from: src.baseAddress! + inboxStart, byteCount: n)
            }
            inboxStart += n
            if inboxStart == inbox.count {
                inbox.removeAll(keepingCapacity: true)
                inboxStart = 0
            }
            d.connection(self, didRead: UnsafeRawBufferPointer(start: buf.baseAddress, count: n))
        }
        if isOpen, delegate != nil, inboxStart >= inbox.count, let end = inputEnd { closeWith(end) }
    }

    private func receive(_ bytes: UnsafeRawBufferPointer) {
        guard isOpen, inputEnd == nil else { return }
        inbox.append(contentsOf: bytes)
        queueDelivery()
    }

    /// The peer ended the stream: a reset drops what was not read yet, a FIN comes after it.
    private func peerEnded(reset: Bool) {
        guard isOpen, inputEnd == nil else { return }
        if reset {
            inputEnd = .reset(endpoint: peerDescription)
            peer = nil
            inbox.removeAll()
            inboxStart = 0
            closeWith(inputEnd)
        } else {
            inputEnd = .closedByPeer(endpoint: peerDescription)
            queueDelivery()
        }
    }

    // MARK: writing

    public func write(rawBytes bytes: UnsafeRawBufferPointer) {
        assert(loop.inLoop, "MemoryTransport.write off its loop")
        guard isOpen, !outputShut, !bytes.isEmpty else { return }
        bytesWritten += bytes.count
        peer?.receive(bytes)
    }

    /// At once: written bytes are in the peer's inbox already.
    public func resumeWhenFlushed(_ cont: CheckedContinuation<Void, any Error>) {
        if isOpen { cont.resume() } else { cont.resume(throwing: TransportError.closedLocally) }
    }

    // MARK: closing

    public func shutdownOutput() {
        guard isOpen, !outputShut else { return }
        outputShut = true
        peer?.peerEnded(reset: false)
    }

    public func close() {
        loop.runOrExecute { [self] in closeWith(nil) }
    }

    public func close(reason: TransportError?) { closeWith(reason) }

    public func abort() {
        guard isOpen else { return }
        let p = peer
        peer = nil
        p?.peerEnded(reset: true)
        closeWith(.reset(endpoint: peerDescription))
    }

    public func waitClosed() async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            loop.runOrExecute { [self] in
                if isOpen { closeWaiters.append(cont) } else { cont.resume() }
            }
        }
    }

    private func closeWith(_ error: TransportError?) {
        guard isOpen else { return }
        isOpen = false
        let p = peer
        peer = nil  // break the pair's cycle
        if !outputShut { p?.peerEnded(reset: false) }
        inbox = []
        inboxStart = 0
        let d = delegate
        delegate = nil  // break the delegate <-> transport cycle
        d?.connection(self, didCloseWith: error)
        let waiters = closeWaiters
        closeWaiters.removeAll()
        for w in waiters { w.resume() }
    }
}
