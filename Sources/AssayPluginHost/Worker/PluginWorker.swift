import CAssayABI
import FoundationEssentials
import Glibc

/// What the daemon needs to run plugin workers.
public struct WorkerSettings: Sendable {
    /// The executable that serves as a worker (`assayd`, run with `--plugin-worker`).
    public var executable: String
    /// Where workers make their private copies of plugin files.
    public var privateDirectory: String
    /// Options for `init`, by plugin id (the worker learns the ids only as it loads).
    public var instanceOptions: [String: [(String, PluginOption)]]
    /// Seconds a worker may take to load a file (dlopen, entry init, every plugin's init).
    public var loadTimeout: Double
    /// Seconds one call may take before the watchdog kills the worker, per kind.
    public var callTimeout: @Sendable (PluginKind) -> Double
    /// Crashes (or watchdog kills) of one file's worker after which its plugins are
    /// quarantined until the file changes.
    public var quarantineAfter: Int
    /// Workers one file may have at once (started on demand): as many calls run side by
    /// side. The daemon sets it to its concurrent job limit.
    public var poolSize: Int = 1
    /// Each worker's data limit in bytes (RLIMIT_DATA), or nil for none.
    public var memoryLimitBytes: Int?

    public init(executable: String, privateDirectory: String,
                instanceOptions: [String: [(String, PluginOption)]] = [:],
                loadTimeout: Double = 30, callTimeout: @escaping @Sendable (PluginKind) -> Double = { _ in 60 },
                quarantineAfter: Int = 3) {
        self.executable = executable
        self.privateDirectory = privateDirectory
        self.instanceOptions = instanceOptions
        self.loadTimeout = loadTimeout
        self.callTimeout = callTimeout
        self.quarantineAfter = quarantineAfter
    }
}

/// The worker processes of one plugin file generation, seen from the daemon.
///
/// Granularity: workers per library generation, each serving one call at a time. A crash,
/// an abort, the OOM killer or the watchdog then takes exactly one call with it (other jobs
/// are in other workers, or wait for a fresh one), and a hot-reloaded file gets new workers
/// while the old ones finish their jobs. The first worker starts with `load`; up to
/// `poolSize` more start on demand, when a call finds every worker busy (jobs run side by
/// side, as they did in process), each loading the same checked bytes.
///
/// After `quarantineAfter` crashes (or watchdog kills) of the file's workers its plugins
/// are quarantined: calls fail at once with the reason, until the file changes (a new
/// generation, new workers).
public final class PluginWorker: @unchecked Sendable {
    let settings: WorkerSettings
    let path: String
    private let processes: [WorkerProcess]
    private let crashes = Locked(0)
    private let quarantineReason = Locked<String?>(nil)
    /// Called once when the worker's plugins are quarantined (from a job thread).
    let onQuarantine = Locked<(@Sendable (String) -> Void)?>(nil)

    init(settings: WorkerSettings, path: String, bytes: [UInt8], sha256: String, generation: UInt64, poolSize: Int = 1) {
        self.settings = settings
        self.path = path
        processes = (0..<max(1, poolSize)).map { _ in
            WorkerProcess(settings: settings, path: path, bytes: bytes, sha256: sha256, generation: generation)
        }
    }

    /// Why the plugins of this file are quarantined, or nil.
    public var quarantined: String? { quarantineReason.current }

    /// Starts the first worker and loads the file in it. Throws `PluginLoadError` when the
    /// worker refused the file, or crashed or hung loading it.
    func load() throws -> WorkerReply {
        let p = processes[0]
        p.lock()
        defer { p.unlock() }
        do {
            return try p.startLocked()
        } catch let e as WorkerFailure {
            throw PluginLoadError(path: path, reason: e.loadReason(timeout: settings.loadTimeout))
        }
    }

    /// Stops every worker (at once: SIGKILL). The library calls this when its last user is gone.
    func stop() {
        for p in processes {
            p.lock()
            p.stopLocked()
            p.unlock()
        }
    }

    /// One call: sends `request` (with `body`) to a free worker, waits for the reply under
    /// the watchdog and the call's cancellation. Throws `PluginCallError`: the plugin's own
    /// error, or `PluginCallError.crashed` when the worker died or hung (it is restarted for
    /// the next call), or ASSAY_ERR_CANCELLED when the job was cancelled meanwhile (the
    /// worker is stopped then, so a stuck plugin cannot hold the job: Cancel takes effect
    /// within tens of milliseconds).
    func call(_ request: WorkerRequest, body: [UInt8], pluginID: String, kind: PluginKind,
              context: PluginCallContext) throws -> WorkerReply {
        try call(request, body: body, pluginID: pluginID, kind: kind, context: context, arenaBytes: 0, fill: nil, read: nil)
    }

    /// A call whose tensors go through the worker's shared arena: `fill` writes the inputs
    /// into it (at least `arenaBytes` long) before the request goes out, `read` takes the
    /// outputs after the reply, both while the worker is held.
    func call(_ request: WorkerRequest, body: [UInt8], pluginID: String, kind: PluginKind, context: PluginCallContext,
              arenaBytes: Int, fill: ((SharedArena) throws -> Void)?, read: ((SharedArena) throws -> Void)?,
              callback: ((WorkerRequest, SharedArena) -> Int32)? = nil) throws -> WorkerReply {
        let p = try acquire(pluginID: pluginID, context: context)
        defer { p.unlock() }
        if let q = quarantined {
            throw PluginCallError(pluginID: pluginID, code: PluginCallError.crashed, message: "quarantined: \(q); replace or fix \(path) to load it again")
        }
        do {
            return try p.callLocked(request, body: body, pluginID: pluginID, kind: kind, context: context,
                                    arenaBytes: arenaBytes, fill: fill, read: read, callback: callback)
        } catch let f as WorkerFailure {
            let n = crashes.withLock { $0 += 1; return $0 }
            let what = f.callReason(operation: request.op.rawValue)
            let quarantine = n >= settings.quarantineAfter
            if quarantine && quarantined == nil {
                let reason = "its worker crashed or hung \(n) times (last: \(what))"
                quarantineReason.withLock { $0 = reason }
                onQuarantine.current?(reason)
            }
            throw PluginCallError(pluginID: pluginID, code: PluginCallError.crashed,
                                  message: "\(what)\(quarantine ? "; the plugin is quarantined" : "; its worker restarts for the next call")")
        }
    }

    /// A worker for one call: a free running one, else a free one not started yet (it
    /// starts on this call), else the first that becomes free; never past cancellation.
    private func acquire(pluginID: String, context: PluginCallContext) throws -> WorkerProcess {
        while true {
            for p in processes where p.isRunning && p.tryLock() { return p }
            for p in processes where !p.isRunning && p.tryLock() { return p }
            if context.isCancelled {
                throw PluginCallError(pluginID: pluginID, code: ASSAY_ERR_CANCELLED, message: "cancelled while waiting for the plugin's worker")
            }
            usleep(500)
        }
    }
}

/// One worker process: its pid, channel and shared arena. Used under its own lock.
final class WorkerProcess: @unchecked Sendable {
    let settings: WorkerSettings
    let path: String
    let bytes: [UInt8]
    let sha256: String
    let generation: UInt64
    private var mutex = pthread_mutex_t()
    private var pid: pid_t = 0
    private var channel: WorkerChannel?
    private let runningFlag = Locked(false)
    /// The control page shared with the worker (kept across restarts) and its cancel flag.
    private let control: SharedArena?
    private let cancelFlag: UnsafeMutablePointer<UInt32>
    /// How long a cancelled call may take to return on its own before its worker is killed.
    static let cancelGrace: UInt64 = 50_000_000

    init(settings: WorkerSettings, path: String, bytes: [UInt8], sha256: String, generation: UInt64) {
        self.settings = settings
        self.path = path
        self.bytes = bytes
        self.sha256 = sha256
        self.generation = generation
        control = try? SharedArena(size: 4096)
        cancelFlag = control.map { UnsafeMutableRawPointer($0.base).assumingMemoryBound(to: UInt32.self) }
            ?? UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        pthread_mutex_init(&mutex, nil)
    }

    deinit {
        if control == nil { cancelFlag.deallocate() }
        stopLocked()
        pthread_mutex_destroy(&mutex)
    }

    var isRunning: Bool { runningFlag.current }
    func lock() { pthread_mutex_lock(&mutex) }
    func tryLock() -> Bool { pthread_mutex_trylock(&mutex) == 0 }
    func unlock() { pthread_mutex_unlock(&mutex) }

    /// See `PluginWorker.call`; the caller holds the lock. Throws `WorkerFailure` when the
    /// process died or hung (counted by the caller), `PluginCallError` otherwise.
    func callLocked(_ request: WorkerRequest, body: [UInt8], pluginID: String, kind: PluginKind, context: PluginCallContext,
                    arenaBytes: Int, fill: ((SharedArena) throws -> Void)?, read: ((SharedArena) throws -> Void)?,
                    callback: ((WorkerRequest, SharedArena) -> Int32)?) throws -> WorkerReply {
        let operation = request.op.rawValue
        do {
            if channel == nil { _ = try startLocked() }
            guard let channel else { throw WorkerFailure.died("no worker") }
            if let fill {
                try attachArena(bytes: arenaBytes, channel: channel)
                try fill(arena!)
            }
            do { try channel.send(request, body: body) } catch WorkerError.closed { throw WorkerFailure.died(reap()) }
            let timeout = settings.callTimeout(kind)
            // Cancellation: first the flag the plugin can see (a cooperative plugin returns
            // ASSAY_ERR_CANCELLED and its worker lives on); a call still running
            // `cancelGrace` later is ended by killing the worker.
            cancelFlag.pointee = 0
            var cancelSeen: UInt64?
            let stop = { () -> Bool in
                guard context.isCancelled else { return false }
                let now = WorkerChannel.now()
                if cancelSeen == nil {
                    cancelSeen = now
                    self.cancelFlag.pointee = 1
                }
                return now - cancelSeen! >= WorkerProcess.cancelGrace
            }
            var message: (header: [UInt8], body: [UInt8])
            while true {
                // The watchdog's clock restarts with every message: a sampler asking for
                // evaluations is alive.
                let deadline = WorkerChannel.now() + UInt64(timeout * 1e9)
                do {
                    message = try channel.receive(deadline: deadline, stop: stop)
                } catch WorkerError.closed {
                    throw WorkerFailure.died(reap())
                } catch WorkerError.timedOut {
                    stopLocked()
                    throw WorkerFailure.hung(timeout)
                } catch WorkerError.stopped {
                    stopLocked()
                    throw PluginCallError(pluginID: pluginID, code: ASSAY_ERR_CANCELLED,
                                          message: "cancelled during \(operation); the plugin's worker was stopped")
                }
                struct Probe: Decodable { var op: WorkerOp? }
                guard let callback, let op = (try? JSONDecoder().decode(Probe.self, from: Data(message.header)))?.op else { break }
                // The plugin calls back (a sampler evaluating the model): answer, then wait on.
                let cb = try JSONDecoder().decode(WorkerRequest.self, from: Data(message.header))
                var answer = WorkerReply()
                answer.code = [.callbackEvaluate, .callbackPrologue, .callbackBlock, .callbackBlockRows, .callbackEpilogue].contains(op)
                    ? callback(cb, arena!) : ASSAY_ERR_INVALID_ARGUMENT
                do { try channel.send(answer) } catch WorkerError.closed { throw WorkerFailure.died(reap()) }
            }
            let reply = try JSONDecoder().decode(WorkerReply.self, from: Data(message.header))
            guard reply.code == ASSAY_OK else {
                throw PluginCallError(pluginID: pluginID, code: reply.code, message: reply.message ?? "\(operation) failed")
            }
            if let read { try read(arena!) }
            return reply
        } catch let e as PluginCallError {
            throw e
        } catch let f as WorkerFailure {
            throw f
        } catch {
            // Anything else (an unreadable reply, a tensor outside the arena): the worker's
            // state is unknown, so it goes; the next call starts a fresh one.
            stopLocked()
            throw PluginCallError(pluginID: pluginID, code: ASSAY_ERR_INTERNAL, message: "the plugin's worker: \(error)")
        }
    }

    // MARK: arena

    private var arena: SharedArena?
    private var arenaWorker: pid_t = 0

    /// Makes sure the worker has an arena of at least `bytes` (a new, bigger one replaces a
    /// small one; a restarted worker gets it again).
    private func attachArena(bytes: Int, channel: WorkerChannel) throws {
        if arena == nil || arena!.size < bytes {
            let size = max(bytes, 2 * (arena?.size ?? 0), 4 << 20)
            arena = try SharedArena(size: (size + 4095) / 4096 * 4096)
            arenaWorker = 0
        }
        guard arenaWorker != pid else { return }
        do {
            try channel.send(WorkerRequest(op: .arena), attach: arena!.fd)
            let message = try channel.receive(deadline: WorkerChannel.now() + 10_000_000_000)
            let reply = try JSONDecoder().decode(WorkerReply.self, from: Data(message.header))
            guard reply.code == ASSAY_OK else { throw WorkerError.io(reply.message ?? "the worker refused the arena") }
        } catch WorkerError.closed {
            throw WorkerFailure.died(reap())
        }
        arenaWorker = pid
    }

    // MARK: process

    func startLocked() throws -> WorkerReply {
        stopLocked()
        let (mine, theirs) = try WorkerChannel.pair()
        var theirsOpen = true
        defer { if theirsOpen { theirs.close() } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 onto 3 clears close-on-exec; a descriptor already numbered 3 is moved first.
        var source = theirs.fd
        var moved: Int32 = -1
        if source == PluginWorkerMain.channelFD {
            moved = fcntl(source, F_DUPFD_CLOEXEC, 10)
            source = moved
        }
        defer { if moved >= 0 { Glibc.close(moved) } }
        posix_spawn_file_actions_adddup2(&actions, source, PluginWorkerMain.channelFD)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGPIPE, SIGTERM, SIGINT, SIGHUP] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(settings.executable), strdup(PluginWorkerMain.flag), nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, settings.executable, &actions, &attr, argv, environ)
        // The child has its copy; ours must go at once, or its death would not read as
        // the end of the stream.
        theirs.close()
        theirsOpen = false
        guard rc == 0 else {
            mine.close()
            throw WorkerFailure.spawn("cannot start a plugin worker (\(settings.executable)): \(String(cString: strerror(rc)))")
        }
        pid = child
        channel = mine
        runningFlag.withLock { $0 = true }
        if let control {
            do {
                var c = WorkerRequest(op: .control)
                c.memoryLimit = settings.memoryLimitBytes
                try mine.send(c, attach: control.fd)
                let m = try mine.receive(deadline: WorkerChannel.now() + UInt64(settings.loadTimeout * 1e9))
                let reply = try JSONDecoder().decode(WorkerReply.self, from: Data(m.header))
                guard reply.code == ASSAY_OK else {
                    stopLocked()
                    throw WorkerFailure.spawn("the plugin worker refused its set-up: \(reply.message ?? "")")
                }
            } catch WorkerError.closed {
                throw WorkerFailure.died(reap())
            }
        }
        var request = WorkerRequest(op: .load)
        request.path = path
        request.sha256 = sha256
        request.generation = generation
        request.privateDirectory = settings.privateDirectory
        request.options = settings.instanceOptions.mapValues { $0.map { WorkerOption(key: $0.0, value: $0.1) } }
        do {
            try mine.send(request, body: bytes)
            let deadline = WorkerChannel.now() + UInt64(settings.loadTimeout * 1e9)
            let message = try mine.receive(deadline: deadline)
            let reply = try JSONDecoder().decode(WorkerReply.self, from: Data(message.header))
            if reply.code != ASSAY_OK {
                stopLocked()
                throw WorkerFailure.refused(reply.message ?? "refused")
            }
            return reply
        } catch WorkerError.closed {
            throw WorkerFailure.died(reap())
        } catch WorkerError.timedOut {
            stopLocked()
            throw WorkerFailure.hung(settings.loadTimeout)
        } catch let e as WorkerError {
            stopLocked()
            throw WorkerFailure.spawn("\(e)")
        }
    }

    /// Kills and reaps the worker, if any.
    func stopLocked() {
        runningFlag.withLock { $0 = false }
        channel?.close()
        channel = nil
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        pid = 0
    }

    /// After the channel closed: how the worker ended (it is reaped).
    private func reap() -> String {
        runningFlag.withLock { $0 = false }
        channel?.close()
        channel = nil
        guard pid > 0 else { return "the worker is gone" }
        var status: Int32 = 0
        var waited = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if waited > 1000 { kill(pid, SIGKILL) }
            usleep(1_000)
            waited += 1
        }
        pid = 0
        let signal = status & 0x7f
        if signal != 0 { return "killed by \(WorkerProcess.signalName(signal))" }
        return "exited with status \((status >> 8) & 0xff)"
    }

    static func signalName(_ s: Int32) -> String {
        switch s {
        case SIGSEGV: return "SIGSEGV (a memory fault)"
        case SIGABRT: return "SIGABRT (abort)"
        case SIGBUS: return "SIGBUS"
        case SIGFPE: return "SIGFPE"
        case SIGILL: return "SIGILL"
        case SIGKILL: return "SIGKILL (out of memory, or killed)"
        case SIGTERM: return "SIGTERM"
        default: return "signal \(s)"
        }
    }
}

/// Why a worker ended a call or a load.
enum WorkerFailure: Error {
    case died(String)
    case hung(Double)
    case refused(String)
    case spawn(String)

    func callReason(operation: String) -> String {
        switch self {
        case .died(let how): return "crashed in \(operation): its worker process was \(how)"
        case .hung(let s): return "hung in \(operation): no answer within \(PluginWorker.seconds(s)) (the watchdog killed its worker)"
        case .refused(let why): return "its worker could not load the file again: \(why)"
        case .spawn(let why): return why
        }
    }

    func loadReason(timeout: Double) -> String {
        switch self {
        case .died(let how): return "loading it crashed the worker process that tried (\(how)); the daemon is unharmed and the file stays refused until it changes"
        case .hung: return "loading it did not finish within \(PluginWorker.seconds(timeout)) (the worker was killed); the file stays refused until it changes"
        case .refused(let why): return why
        case .spawn(let why): return why
        }
    }
}

extension PluginWorker {
    static func seconds(_ s: Double) -> String { s == s.rounded() ? "\(Int(s)) s" : "\(s) s" }
}

extension PluginCallError {
    /// Not an ABI result code: the host's own, for a plugin whose worker crashed or hung.
    public static let crashed: Int32 = -1000
    public var isCrash: Bool { code == PluginCallError.crashed }
}
