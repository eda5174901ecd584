/// Runs Swift tasks on an ``EventLoop``'s thread.
///
/// A virtual user that runs with this executor preference
/// (`group.addTask(executorPreference: EventLoopTaskExecutor(loop)) { … }`) resumes on the same
/// loop that drives its connections, so a request costs no thread wake-up in either direction:
/// the client sends directly from the task and the response resumes the task in place. Measured
/// on loopback this removes most of the per-request cost (see HTTPBenchmarkTests).
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    /// The loop whose queue runs the jobs.
    public let loop: EventLoop

    /// An executor for `loop`.
    public init(_ loop: EventLoop) { self.loop = loop }

    /// Enqueues a job on the loop's queue.
    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        loop.queue.async { unowned.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

extension EventLoopGroup {
    /// The group's loop that the caller runs on, if any.
    var currentLoop: EventLoop? {
        for l in loops where l.inLoop { return l }
        return nil
    }
}
