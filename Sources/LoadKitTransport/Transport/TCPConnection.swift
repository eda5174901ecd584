#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLoadKit

/// A non-blocking TCP connection on one ``EventLoop``: registered once with the loop's poller
/// (edge-triggered for reading and writing), read straight into the loop's shared buffer, written
/// at once when the kernel takes the bytes and queued (then flushed with `writev`) when it does not.
///
/// All methods not marked thread-safe must be called on ``loop``. Connect with
/// ``connect(to:from:timeout:on:)``, then call ``start(delegate:)`` to begin reading.
package final class TCPConnection: Transport, @unchecked Sendable, CustomStringConvertible, LoopSelectable {
    /// The loop that owns this connection.
    public let loop: EventLoop
    /// The peer's address.
    public let remote: SocketAddress
    // The small fields together, behind the address: spread between the 8-byte ones they cost
    // 16 bytes of padding per connection.
    // `@exclusivity(unchecked)`: loop-confined state, never accessed from two places at once;
    // the runtime's dynamic exclusivity checks cost 13 calls per HTTP request on the hot path.
    /// False once the connection is closed (locally or by the peer).
    @exclusivity(unchecked) public var isOpen = true
    /// Where in the loop's read buffer reads land: all of it, or (under a TLS layer) the
    /// ciphertext region, so the layer decrypts into another region without a buffer of its own.
    @exclusivity(unchecked) var readRegion = ReadRegion.whole
    let fd: Int32
    @exclusivity(unchecked) private var reading = false
    @exclusivity(unchecked) private var readAgainQueued = false
    @exclusivity(unchecked) var fdClosed = false
    @exclusivity(unchecked) private var shutdownAfterFlush = false

    /// The current delegate (set through ``start(delegate:)``).
    @exclusivity(unchecked) public private(set) var delegate: (any ConnectionDelegate)?

    // Unsent bytes, in order: `pending[pendingStart...]`.
    @exclusivity(unchecked) private var pending: [UInt8] = []
    @exclusivity(unchecked) private var pendingStart = 0
    @exclusivity(unchecked) private var queuedTotal: UInt64 = 0
    @exclusivity(unchecked) private var writtenTotal: UInt64 = 0
    private var flushWaiters: [(mark: UInt64, cont: CheckedContinuation<Void, any Error>)] = []
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []

    // The poller registration (nil while not registered). The loop holds the connection while it
    // is registered: from connect (or start) until it closes.
    @exclusivity(unchecked) private var token: UInt64?
    @exclusivity(unchecked) var connecting: Connecting?

    struct Connecting {
        var cont: CheckedContinuation<TCPConnection, any Error>
        var timer: LoopTimer?
    }

    /// Bytes queued but not yet accepted by the kernel.
    public var bufferedBytes: Int { pending.count - pendingStart }
    public var peerAddress: SocketAddress? { remote }
    public var peerDescription: String { remote.description }

    public var description: String { "TCPConnection(fd: \(fd), remote: \(remote))" }

    init(fd: Int32, remote: SocketAddress, loop: EventLoop) {
        self.fd = fd
        self.remote = remote
        self.loop = loop
    }

    deinit {
        if !fdClosed { _ = systemClose(fd) }
    }

    // MARK: the poller

    @discardableResult
    func register() -> Bool {
        if token != nil { return true }
        token = loop.register(fd, self, edge: true)
        return token != nil
    }

    func deregister() {
        guard let t = token else { return }
        token = nil
        loop.deregister(fd, token: t)
    }

    func ioReady(_ events: UInt32) {
        if connecting != nil {
            finishConnect()
            return
        }
        if events & UInt32(LK_WRITABLE) != 0 && pendingStart < pending.count { flushPending() }
        guard isOpen, reading else { return }
        if events & UInt32(LK_READABLE | LK_HANGUP | LK_ERROR) != 0 {
            // After a hang-up or an error, read until EOF or the error: no further edge will come.
            handleReadable(untilEnd: events & UInt32(LK_HANGUP | LK_ERROR) != 0)
        }
    }

    // MARK: reading

    /// Sets the delegate and starts reading. Thread-safe.
    public func start(delegate: any ConnectionDelegate) {
        loop.runOrExecute { self.startOnLoop(delegate) }
    }

    private func startOnLoop(_ delegate: any ConnectionDelegate) {
        self.delegate = delegate
        guard isOpen else { return }
        armReading()
    }

    /// Sets the delegate without starting to read (a layer above arms reading when it needs
    /// bytes). On the loop.
    func attach(delegate: any ConnectionDelegate) { self.delegate = delegate }

    /// Starts reading: registers with the poller (which reports data already waiting) or, when
    /// already registered, reads once now (an edge may have passed while nobody read).
    func armReading() {
        guard isOpen, !reading else { return }
        reading = true
        if token != nil {
            queueReadAgain()
        } else if !register() {
            closeWith(TransportError.from(errno: errno, call: "epoll_ctl", endpoint: remote.description))
        }
    }

    /// Stops reading until the next ``start(delegate:)`` or ``armReading()`` (TLS: after the
    /// handshake, nothing is read from the socket until a delegate can take it, as with plain TCP).
    func stopReading() {
        reading = false
        if pendingStart >= pending.count { deregister() }  // a caller that drops it unused closes it
    }

    func queueReadAgain() {
        guard !readAgainQueued else { return }
        readAgainQueued = true
        loop.executeLocal { [self] in
            readAgainQueued = false
            if isOpen && reading { handleReadable(untilEnd: true) }
        }
    }

    private func handleReadable(untilEnd: Bool) {
        let buf = readRegion.slice(of: loop.readBuffer)
        var rounds = 0
        while isOpen && reading {
            let n = read(fd, buf.baseAddress, buf.count)
            if n > 0 {
                delegate?.connection(self, didRead: UnsafeRawBufferPointer(rebasing: buf[0..<n]))
                rounds += 1
                // A short read means the socket is drained (a later arrival raises a new edge).
                if n < buf.count && !untilEnd { return }
                // More than a few full rounds would starve the loop's other connections: carry on
                // in a later turn (edge-triggered: no new event would come for these bytes).
                if rounds >= 4 { queueReadAgain(); return }
                continue
            }
            if n == 0 { closeWith(.closedByPeer(endpoint: remote.description)); return }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return }
            closeWith(TransportError.from(errno: e, call: "read", endpoint: remote.description))
            return
        }
    }

    // MARK: writing

    /// Queues raw bytes for sending: sent at once when the kernel takes them, else copied.
    public func write(rawBytes bytes: UnsafeRawBufferPointer) {
        socketWrite(bytes)
    }

    /// Queues two buffers as one write (a head and a body): one `writev`, no concatenation.
    public func write(rawBytes first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) {
        assert(loop.inLoop, "TCPConnection.write off its loop")
        guard isOpen else { return }
        if second.isEmpty { socketWrite(first); return }
        if first.isEmpty || pendingStart < pending.count { socketWrite(first); socketWrite(second); return }
        let total = first.count + second.count
        queuedTotal &+= UInt64(total)
        var iov = (iovec(iov_base: UnsafeMutableRawPointer(mutating: first.baseAddress), iov_len: first.count),
                   iovec(iov_base: UnsafeMutableRawPointer(mutating: second.baseAddress), iov_len: second.count))
        let n = withUnsafeMutablePointer(to: &iov) { p in
            p.withMemoryRebound(to: iovec.self, capacity: 2) { systemWritev(fd, $0, 2) }
        }
        guard let sent = tookPart(n, of: total) else { return }
        if sent < first.count {
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: first[sent...]))
            pending.append(contentsOf: second)
        } else {
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: second[(sent - first.count)...]))
        }
        awaitWritable()
    }

    /// Writes bytes to the socket as they are.
    @inline(__always)
    func socketWrite(_ bytes: UnsafeRawBufferPointer) {
        assert(loop.inLoop, "TCPConnection.write off its loop")
        guard isOpen, bytes.count > 0 else { return }
        queuedTotal &+= UInt64(bytes.count)
        if pendingStart == pending.count {
            let n = systemSend(fd, bytes.baseAddress, bytes.count)
            guard let sent = tookPart(n, of: bytes.count) else { return }
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[sent...]))
            awaitWritable()
        } else {
            pending.append(contentsOf: bytes)
        }
    }

    /// Sends what the kernel takes at once, ignoring the rest and any error: a last word just
    /// before closing (TLS close_notify), which must not turn an orderly close into an error.
    func sendBestEffort(_ bytes: UnsafeRawBufferPointer) {
        guard isOpen, pendingStart >= pending.count, let p = bytes.baseAddress, bytes.count > 0 else { return }
        _ = systemSend(fd, p, bytes.count)
    }

    /// After a direct send of `total` bytes that returned `n`: nil when the kernel took them all
    /// (flush waiters answered) or the connection closed on a real error; otherwise how many it
    /// took (0 for EAGAIN), with the pending queue emptied for the caller to queue the rest.
    @inline(__always)
    private func tookPart(_ n: Int, of total: Int) -> Int? {
        if n == total {
            writtenTotal &+= UInt64(n)
            if !flushWaiters.isEmpty { resolveFlushWaiters() }
            return nil
        }
        guard let sent = acceptedOrClose(n) else { return nil }
        writtenTotal &+= UInt64(sent)
        pending.removeAll(keepingCapacity: true)
        pendingStart = 0
        return sent
    }

    /// The bytes a send took (0 for EAGAIN), or nil after closing on a real error.
    private func acceptedOrClose(_ n: Int) -> Int? {
        if n >= 0 { return n }
        let e = errno
        if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { return 0 }
        closeWith(TransportError.from(errno: e, call: "write", endpoint: remote.description))
        return nil
    }

    /// The kernel did not take everything: make sure a writable edge will come (registered, and
    /// the socket's buffer seen full by a send that returned EAGAIN).
    private func awaitWritable() {
        if !register() {
            closeWith(TransportError.from(errno: errno, call: "epoll_ctl", endpoint: remote.description))
            return
        }
        flushPending()
    }

    /// Resumes `cont` once everything queued so far is handed to the kernel (throws if the
    /// connection closes first). On the loop.
    public func resumeWhenFlushed(_ cont: CheckedContinuation<Void, any Error>) {
        guard isOpen else { cont.resume(throwing: TransportError.closedLocally); return }
        if writtenTotal >= queuedTotal { cont.resume() } else { flushWaiters.append((queuedTotal, cont)) }
    }

    private func flushPending() {
        while isOpen && pendingStart < pending.count {
            let n = pending.withUnsafeBytes { p in
                systemSend(fd, p.baseAddress! + pendingStart, p.count - pendingStart)
            }
            if n > 0 {
                pendingStart += n
                writtenTotal &+= UInt64(n)
                continue
            }
            let e = errno
            if n < 0 && e == EINTR { continue }
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { break }
            closeWith(TransportError.from(errno: e, call: "write", endpoint: remote.description))
            return
        }
        if !flushWaiters.isEmpty { resolveFlushWaiters() }
        if pendingStart >= pending.count {
            pending.removeAll(keepingCapacity: pending.capacity <= 64 * 1024)
            pendingStart = 0
            if shutdownAfterFlush { _ = shutdown(fd, Int32(SHUT_WR)) }
            if !reading && isOpen && connecting == nil { deregister() }
            delegate?.connectionDidDrain(self)
        } else if pendingStart > 64 * 1024 && pendingStart * 2 > pending.count {
            pending.removeFirst(pendingStart)
            pendingStart = 0
        }
    }

    private func resolveFlushWaiters() {
        while let first = flushWaiters.first, first.mark <= writtenTotal {
            flushWaiters.removeFirst()
            first.cont.resume()
        }
    }

    // MARK: closing

    /// Half-closes: sends FIN once queued bytes are written; reading continues.
    public func shutdownOutput() {
        guard isOpen else { return }
        if pendingStart >= pending.count { _ = shutdown(fd, Int32(SHUT_WR)) } else { shutdownAfterFlush = true }
    }

    /// Closes the connection (thread-safe). The delegate sees `didCloseWith(nil)`.
    public func close() {
        loop.runOrExecute { self.closeWith(nil) }
    }

    /// Closes with an error as the reason (for protocol layers that detect a violation); on the loop.
    public func close(reason: TransportError?) { closeWith(reason) }

    /// Resumes once the connection is closed (thread-safe).
    public func waitClosed() async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            loop.runOrExecute { [self] in
                if isOpen { closeWaiters.append(cont) } else { cont.resume() }
            }
        }
    }

    func closeWith(_ error: TransportError?) {
        guard isOpen else { return }
        isOpen = false
        reading = false
        closeSocket()
        let waiters = flushWaiters
        flushWaiters.removeAll()
        for w in waiters { w.cont.resume(throwing: error ?? TransportError.closedLocally) }
        let d = delegate
        delegate = nil  // break the delegate <-> connection cycle
        d?.connection(self, didCloseWith: error)
        let cw = closeWaiters
        closeWaiters.removeAll()
        for c in cw { c.resume() }
    }

    /// Leaves the poller and closes the descriptor (once). On the loop.
    func closeSocket() {
        guard !fdClosed else { return }
        deregister()
        fdClosed = true
        _ = systemClose(fd)
        pending = []
        pendingStart = 0
    }
}

/// The part of a loop's read buffer a ``TCPConnection`` reads into.
enum ReadRegion: UInt8 {
    /// All of it (plain TCP: the delegate parses the bytes where they landed).
    case whole
    /// The middle of three regions a TLS layer splits the buffer into: [3/8, 6/8) for
    /// ciphertext from the socket; [0, 3/8) takes plaintext, [6/8, 1) outgoing ciphertext.
    case tlsCiphertext

    @inline(__always)
    func slice(of buffer: UnsafeMutableRawBufferPointer) -> UnsafeMutableRawBufferPointer {
        switch self {
        case .whole: return buffer
        case .tlsCiphertext:
            let q = buffer.count / 8
            return UnsafeMutableRawBufferPointer(rebasing: buffer[(3 * q)..<(6 * q)])
        }
    }
}
