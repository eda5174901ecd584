/// Runs Swift tasks on an ``EventLoop``'s thread (the loop itself is the executor; this wrapper
/// remains for code written against it).
///
/// A virtual user that runs with this executor preference
/// (`group.addTask(executorPreference: EventLoopTaskExecutor(loop)) { … }`, or simply
/// `executorPreference: loop`) resumes on the same loop that drives its connections, so a request
/// costs no thread wake-up in either direction: the client sends directly from the task and the
/// response resumes the task in place.
package final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    /// The loop whose thread runs the jobs.
    public let loop: EventLoop

    /// An executor for `loop`.
    public init(_ loop: EventLoop) { self.loop = loop }

    /// Enqueues a job on the loop (locally, without a wake-up, when called on the loop).
    public func enqueue(_ job: consuming ExecutorJob) {
        loop.enqueue(job)
    }
}
