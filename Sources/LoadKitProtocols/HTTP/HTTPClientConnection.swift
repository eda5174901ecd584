import Foundation
import Synchronization
import LoadKitTransport

final class HTTPClientConnection: ConnectionDelegate, @unchecked Sendable {
    let transport: any Transport
    let pool: HostPool
    var loop: EventLoop { transport.loop }
    // `@exclusivity(unchecked)`: loop-confined state (parsed and encoded in place), never
    // accessed from two places at once; dynamic exclusivity checks cost 13 calls per request.
    @exclusivity(unchecked) private var parser: HTTPResponseParser
    @exclusivity(unchecked) private var current: PendingRequest?
    @exclusivity(unchecked) private var receivedAny = false
    @exclusivity(unchecked) private var served = 0
    @exclusivity(unchecked) private var writeBuffer: [UInt8] = []
    private var timer: LoopTimer?
    private var timerDeadline: UInt64 = 0
    private var closedReported = false

    init(transport: any Transport, pool: HostPool) {
        self.transport = transport
        self.pool = pool
        parser = HTTPResponseParser(limits: pool.configuration.headLimits, maxBodyBytes: pool.configuration.maxResponseBodyBytes)
        writeBuffer.reserveCapacity(512)
    }

    /// Sends `task`'s request. On the loop.
    func run(_ task: PendingRequest) {
        guard transport.isOpen else {
            // Closed while it sat idle in the pool: nothing was sent, so any method may go again.
            reportClosed()
            task.requeues += 1
            if task.requeues > 8 { task.fail(TransportError.closedByPeer(endpoint: pool.label)) } else { pool.submit(task) }
            return
        }
        // A request handed from `start` straight to this idle connection (never queued, no
        // connection opened or earlier send for it) is sent at its start, to within the
        // hand-over: one clock read less a request, and no `blocked` time it did not wait.
        let direct = task.sentAt == 0 && task.connectStartAt == 0 && !task.queued && task.requeues == 0
        let now = direct ? task.start : monotonicNanos()
        if task.isFinished {  // cancelled before it could be sent
            pool.release(self)
            return
        }
        if now >= task.deadline {
            pool.release(self)
            task.fail(task.timeoutError)
            return
        }
        current = task
        receivedAny = false
        parser.expectResponse(to: task.method)
        writeBuffer.removeAll(keepingCapacity: true)
        task.encode(into: &writeBuffer)
        task.sentAt = now
        task.bytesSent += writeBuffer.count  // a retry's bytes went on the wire too
        task.bytesReceived = 0
        armTimer(task.deadline, now: now)
        transport.write(writeBuffer)
        task.writtenAt = monotonicNanos()
        if writeBuffer.count > 64 * 1024 { writeBuffer = [] }
    }

    func connection(_ connection: any Transport, didRead bytes: UnsafeRawBufferPointer) {
        guard let task = current else {
            // Bytes with no request outstanding: the stream is out of step; drop the connection.
            transport.close()
            return
        }
        if !receivedAny {
            receivedAny = true
            task.firstByteAt = monotonicNanos()
        }
        task.bytesReceived += bytes.count
        switch parser.parse(bytes) {
        case .needMore:
            return
        case .done(let response, let used):
            current = nil
            countWireOverhead(task)  // before release: the connection may go on to the next request
            served += 1
            task.bytesReceived -= bytes.count - used  // bytes behind the response are not its own
            let reusable = used == bytes.count && response.status != 101 && parser.lastKeepsAlive
            if reusable { pool.release(self) } else { transport.close() }
            task.succeed(response)
        case .failure(let error):
            current = nil
            countWireOverhead(task)
            transport.close()
            task.fail(error)
        }
    }

    /// Adds what TLS put on the wire since the last request (the handshake, the records) to
    /// `task`'s bytes: `data_sent` / `data_received` are the bytes on the wire.
    private func countWireOverhead(_ task: PendingRequest) {
        let o = transport.takeWireOverhead()
        task.bytesSent += o.sent
        task.bytesReceived += o.received
    }

    func connection(_ connection: any Transport, didCloseWith error: TransportError?) {
        timer?.cancel()
        timer = nil
        reportClosed()
        guard let task = current else { return }
        current = nil
        countWireOverhead(task)
        if case .done(let response, _) = parser.finish() {
            task.succeed(response)
            return
        }
        if !receivedAny && served > 0 && task.method.isIdempotent && task.staleRetries == 0 {
            // A stale keep-alive connection: the server closed it before reading our request.
            task.staleRetries += 1
            pool.submit(task)
            return
        }
        if receivedAny {
            task.fail(HTTPError.malformed("connection closed before the response was complete"))
        } else {
            task.fail(error ?? TransportError.closedByPeer(endpoint: pool.label))
        }
    }

    func closeNow() { transport.close() }

    private func reportClosed() {
        guard !closedReported else { return }
        closedReported = true
        pool.connectionClosed(self)
    }

    // One timer per connection, re-armed only when needed: back-to-back requests with the same
    // timeout do not create a timer each.
    private func armTimer(_ deadline: UInt64, now: UInt64) {
        if timer != nil && timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        // A strong reference, broken when the timer fires or the connection closes (which cancels
        // it): a weak one gives the connection a side table, and every retain and release of it —
        // several a request — takes the runtime's slow path.
        timer = loop.schedule(after: .nanoseconds(Int64(deadline - now))) { self.timerFired() }
    }

    private func timerFired() {
        timer = nil
        guard let task = current else { return }
        let now = monotonicNanos()
        if now >= task.deadline {
            current = nil
            countWireOverhead(task)
            transport.close()  // a late answer must not be read as the next request's response
            task.fail(task.timeoutError)
        } else {
            armTimer(task.deadline, now: now)
        }
    }
}
