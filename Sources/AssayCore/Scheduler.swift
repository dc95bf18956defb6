import AssayPluginHost
import Glibc

/// Runs jobs on a fixed number of worker threads with a bounded, fair queue.
///
/// Fairness: each client has its own FIFO and workers take from clients in turn, so one
/// script submitting in a loop delays others by at most one job per round. Bounds: a total
/// queue cap (memory) and a per-client cap (a runaway client gets QueueFull, others don't).
public final class Scheduler: @unchecked Sendable {
    public struct Limits: Sendable {
        public var maxConcurrentJobs: Int
        public var maxQueued: Int
        public var maxQueuedPerClient: Int
        public init(maxConcurrentJobs: Int = 1, maxQueued: Int = 64, maxQueuedPerClient: Int = 16) {
            self.maxConcurrentJobs = maxConcurrentJobs
            self.maxQueued = maxQueued
            self.maxQueuedPerClient = maxQueuedPerClient
        }
    }

    public let limits: Limits
    private let execute: @Sendable (Job) -> Void
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var queues: [String: [Job]] = [:]
    private var clientOrder: [String] = []  // round-robin order of clients with queued jobs
    private var queuedCount = 0
    private var running = 0
    private var stopping = false
    private var threads: [pthread_t] = []
    /// Worker threads that have not returned yet, and the condition signalled when one does.
    private var alive = 0
    private var exited = pthread_cond_t()
    public var onQueueLengthChange: (@Sendable (Int) -> Void)?

    public init(limits: Limits, execute: @escaping @Sendable (Job) -> Void) {
        self.limits = limits
        self.execute = execute
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        pthread_cond_init(&exited, nil)
    }

    public func start() {
        pthread_mutex_lock(&mutex)
        alive += max(1, limits.maxConcurrentJobs)
        pthread_mutex_unlock(&mutex)
        for _ in 0..<max(1, limits.maxConcurrentJobs) {
            let box = Unmanaged.passRetained(self)
            var t = pthread_t()
            pthread_create(&t, nil, { arg in
                let me = Unmanaged<Scheduler>.fromOpaque(arg!).takeRetainedValue()
                me.workerLoop()
                return nil
            }, box.toOpaque())
            threads.append(t)
        }
    }

    /// Stops taking jobs (queued ones stay queued: with a job store they run after the
    /// next start); waits up to `timeout` seconds for running jobs to return. Returns false
    /// when some did not (a plugin call is stuck): their threads are left behind, and the
    /// caller decides whether to exit anyway.
    @discardableResult
    public func shutdown(timeout: Double = .infinity) -> Bool {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_broadcast(&condition)
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let whole = timeout.isFinite ? min(timeout, 1e9) : 1e9
        deadline.tv_sec += Int(whole)
        deadline.tv_nsec += Int((whole - whole.rounded(.down)) * 1e9)
        if deadline.tv_nsec >= 1_000_000_000 { deadline.tv_sec += 1; deadline.tv_nsec -= 1_000_000_000 }
        while alive > 0 {
            if pthread_cond_timedwait(&exited, &mutex, &deadline) == ETIMEDOUT { break }
        }
        let done = alive == 0
        pthread_mutex_unlock(&mutex)
        guard done else { return false }
        for t in threads { pthread_join(t, nil) }
        threads = []
        return true
    }

    public var queueLength: Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return queuedCount
    }

    public var runningCount: Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return running
    }

    /// Queues a job or throws `queueFull` naming the cap that was hit. `ignoringCaps`: a
    /// job accepted before a restart, queued again (it was admitted once; refusing it now
    /// would lose it).
    public func enqueue(_ job: Job, ignoringCaps: Bool = false) throws {
        pthread_mutex_lock(&mutex)
        if !ignoringCaps && queuedCount >= limits.maxQueued {
            pthread_mutex_unlock(&mutex)
            throw AssayError.queueFull("the queue holds \(limits.maxQueued) jobs, its maximum: wait for some to finish, or cancel some")
        }
        let mine = queues[job.client]?.count ?? 0
        if !ignoringCaps && mine >= limits.maxQueuedPerClient {
            pthread_mutex_unlock(&mutex)
            throw AssayError.queueFull("you already have \(mine) queued jobs, the per-client maximum: wait for them to start, or cancel some")
        }
        if queues[job.client] == nil || queues[job.client]!.isEmpty { clientOrder.append(job.client) }
        queues[job.client, default: []].append(job)
        queuedCount += 1
        let length = queuedCount
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
        onQueueLengthChange?(length)
    }

    /// Cancels a queued job at once (returns true), or flags a running one.
    @discardableResult
    public func cancel(_ job: Job) -> Bool {
        job.requestCancel()
        pthread_mutex_lock(&mutex)
        var removed = false
        if var q = queues[job.client], let i = q.firstIndex(where: { $0 === job }) {
            q.remove(at: i)
            queues[job.client] = q
            if q.isEmpty { clientOrder.removeAll { $0 == job.client } }
            queuedCount -= 1
            removed = true
        }
        let length = queuedCount
        pthread_mutex_unlock(&mutex)
        if removed {
            job.update { $0.state = .cancelled; $0.stopReason = StopReason.cancelled.rawValue }
            onQueueLengthChange?(length)
        }
        return removed
    }

    private func takeNext() -> Job? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while !stopping && queuedCount == 0 { pthread_cond_wait(&condition, &mutex) }
        if stopping { return nil }
        let client = clientOrder.removeFirst()
        var q = queues[client]!
        let job = q.removeFirst()
        queues[client] = q
        if !q.isEmpty { clientOrder.append(client) }
        queuedCount -= 1
        running += 1
        return job
    }

    private func workerLoop() {
        while let job = takeNext() {
            onQueueLengthChange?(queueLength)
            execute(job)
            pthread_mutex_lock(&mutex)
            running -= 1
            pthread_mutex_unlock(&mutex)
        }
        pthread_mutex_lock(&mutex)
        alive -= 1
        pthread_cond_broadcast(&exited)
        pthread_mutex_unlock(&mutex)
    }
}
