import AssayCore
import AssayDBus
import AssayPluginHost
import AssayStrategies
import Dispatch
import Glibc
import Logging

/// The `io.assay.Assay1` service: the manager object, one object per job, and the glue
/// from core events to D-Bus signals.
///
/// Threading: every D-Bus call is handled on the event loop's thread, and everything that
/// touches the connection runs there. Job threads and the plugin watcher report through
/// `loop.post`. Handlers never block on a job: `Submit` replies with a path at once.
public final class AssayService: @unchecked Sendable {
    public static let managerPath = "/io/assay/Assay1"
    public static let jobsPath = "/io/assay/Assay1/jobs"
    static let managerInterface = "io.assay.Manager1"
    static let jobInterface = "io.assay.Job1"
    static let propertiesInterface = "org.freedesktop.DBus.Properties"

    public let config: ServiceConfig
    public let loop: DBusEventLoop
    public let registry: PluginRegistry
    let scheduler: Scheduler
    let planner: JobPlanner
    let runner: JobRunner
    let catalog: StrategyCatalog
    let logger: Logger
    private var watcher: DirectoryWatcher?

    /// A job on the bus, with what was last told to clients about it.
    final class JobEntry {
        let job: Job
        let path: String
        let uid: UInt32?
        /// Wall-clock seconds since the epoch (kept in the job's record).
        let submitted: Double
        var emitted: JobSnapshot
        var lastEmitNs: UInt64 = 0
        var flushScheduled = false
        var finishedSent = false
        init(job: Job, path: String, uid: UInt32?, submitted: Double) {
            self.job = job
            self.path = path
            self.uid = uid
            self.submitted = submitted
            emitted = job.snapshot
        }
    }
    /// The jobs on the bus and their retention (loop thread only).
    let jobs: JobRegistry<JobEntry>
    /// Job ids and records on disk: ids never repeat, jobs survive a restart.
    let store: JobStore
    private var uidCache: [String: UInt32] = [:]
    private var lastQueueLength = -1
    /// Score calls being worked on, per client (loop thread only).
    var scoreInFlight: [String: Int] = [:]
    /// Verifier calls made by Score since start (counted on worker threads).
    let scoreCallsCounter = Locked<UInt64>(0)

    public init(config: ServiceConfig, logger: Logger = Logger(label: "io.assay.daemon")) throws {
        self.config = config
        self.logger = logger
        let connection = try DBusConnection(config.bus)
        loop = DBusEventLoop(connection: connection)
        catalog = BuiltinStrategies.catalog
        let options = config.pluginOptions
        let loader: PluginLoader
        if let executable = config.workerExecutable {
            let timeout = config.pluginCallTimeoutSeconds
            var settings = WorkerSettings(executable: executable, privateDirectory: config.runtimeDirectory,
                                          instanceOptions: options, loadTimeout: max(30, config.pluginLoadWaitSeconds),
                                          callTimeout: { _ in timeout }, quarantineAfter: config.pluginQuarantineAfter)
            // As many workers per file as jobs run at once (plus one for Score calls), so
            // isolation does not serialise jobs that used to run side by side.
            settings.poolSize = max(1, min(8, config.limits.maxConcurrentJobs + 1))
            if config.pluginMemoryLimitMiB > 0 { settings.memoryLimitBytes = config.pluginMemoryLimitMiB << 20 }
            loader = IsolatingPluginLoader(settings: settings)
        } else {
            loader = try DlopenPluginLoader(privateDirectory: config.runtimeDirectory,
                                            instanceOptions: { id in options[id] ?? [] })
        }
        let loopRef = loop
        // The registry exists before `self` does; events reach the service through a relay.
        let relay = Locked<(@Sendable (RegistryEvent) -> Void)?>(nil)
        registry = PluginRegistry(directories: config.pluginDirectories, loader: loader,
                                  filePolicy: config.pluginFilePolicy, onEvent: { e in relay.current?(e) })
        planner = JobPlanner(registry: registry, catalog: catalog, defaults: config.defaults)
        store = try JobStore(root: config.stateDirectory)
        jobs = JobRegistry(retention: config.retentionSeconds)
        runner = JobRunner(registry: registry, catalog: catalog, store: try ResultStore(root: config.stateDirectory))
        let runnerRef = runner
        scheduler = Scheduler(limits: config.limits) { job in runnerRef.run(job) }
        relay.withLock { $0 = { [weak self] event in loopRef.post { self?.registryEvent(event) } } }
        scheduler.onQueueLengthChange = { [weak self] _ in loopRef.post { self?.queueLengthChanged() } }
        connection.setHandler { [unowned self] message in self.handle(message) }
    }

    /// Loads plugins, starts workers and the watcher, takes the bus name, then serves
    /// until `stop`. The name comes last on purpose: a client that sees it owned (or that
    /// D-Bus activation starts the daemon for) finds the plugins already loaded, except a
    /// file still loading after `pluginLoadWaitSeconds`.
    public func run() throws {
        // Watch before the first scan, so a file changed during the scan is not missed
        // (a duplicate event for an unchanged file is recognised by its hash).
        startWatcher(config.pluginDirectories)
        // A file whose init is slow does not hold the bus name (or the other files) back:
        // after this wait it finishes loading in the background (PluginsChanged then).
        registry.scanAll(wait: config.pluginLoadWaitSeconds)
        scheduler.start()
        restoreJobs()
        try loop.connection.requestName(config.busName)
        logger.info("assayd ready", metadata: [
            "bus": "\(config.isSystemBus ? "system" : "session")", "name": "\(config.busName)",
            "plugins": "\(registry.records().filter { $0.state == .loaded }.map(\.id).joined(separator: ","))",
        ])
        loop.run()
        watcher?.stop()
        // Queued jobs stay queued on disk and running ones are interrupted without a final
        // state: both run again at the next start (the job store). A plugin call that does
        // not return in time is not waited for: the process exits with it.
        for entry in jobs.all where entry.job.state == .running { entry.job.interruptForShutdown() }
        if !scheduler.shutdown(timeout: config.stopTimeoutSeconds) {
            stoppedCleanly = false
            logger.warning("running jobs did not stop in time (a plugin call is stuck); exiting without them",
                           metadata: ["timeout_s": "\(config.stopTimeoutSeconds)"])
        }
    }

    public func stop() { loop.stop() }

    /// False when `run` returned with job threads still inside a plugin call: the process
    /// should exit without running exit handlers (a stuck thread may hold a lock they need).
    public private(set) var stoppedCleanly = true

    func startWatcher(_ directories: [String]) {
        guard config.watch else { return }
        watcher?.stop()
        let reg = registry
        watcher = try? DirectoryWatcher(directories: directories) { paths in
            for p in paths { reg.reload(path: p) }
        }
        watcher?.start()
    }

    /// Replaces the plugin directories (Properties.Set on PluginDirectories).
    func setPluginDirectories(_ directories: [String], reply: DBusMessage) {
        let reg = registry, loopRef = loop
        startWatcher(directories)
        DispatchQueue.global().async {
            reg.setDirectories(directories)
            loopRef.post { [weak self] in
                loopRef.connection.send(reply)
                self?.emitPropertiesChanged(path: AssayService.managerPath, interface: AssayService.managerInterface,
                                            ["PluginDirectories": .strings(directories)])
            }
        }
    }

    // MARK: routing

    func handle(_ msg: DBusMessage) -> Bool {
        guard msg.type == .methodCall, let path = msg.path, let member = msg.member else { return false }
        let reply: DBusMessage
        do {
            guard let r = try dispatch(msg, path: path, interface: msg.interface, member: member) else {
                return true // answered later, by the code that took the message
            }
            reply = r
        } catch let e as AssayError {
            reply = msg.makeError(DBusError(name: e.name, message: e.message))
        } catch let e as DBusError {
            reply = msg.makeError(e)
        } catch {
            reply = msg.makeError(DBusError(name: "io.assay.Error.Failed", message: "\(error)"))
        }
        if !msg.noReplyExpected { loop.connection.send(reply) }
        return true
    }

    /// Returns the reply, or nil when the reply will be sent later.
    private func dispatch(_ msg: DBusMessage, path: String, interface: String?, member: String) throws -> DBusMessage? {
        if interface == "org.freedesktop.DBus.Introspectable" || (interface == nil && member == "Introspect") {
            guard member == "Introspect" else { throw unknownMethod(interface, member) }
            guard let xml = introspect(path) else { throw unknownObject(path) }
            let r = msg.makeReturn()
            r.append(.string(xml))
            return r
        }
        if path == AssayService.managerPath {
            return try BusDispatch.handle([AssayService.managerBus], object: self, msg: msg, interface: interface, member: member)
        }
        if path.hasPrefix(AssayService.jobsPath + "/") {
            let idText = path.dropFirst(AssayService.jobsPath.count + 1)
            guard let id = UInt64(idText), let entry = jobs[id] else {
                throw AssayError.notFound("no job at \(path): it never existed or was removed after its retention time")
            }
            return try BusDispatch.handle([AssayService.jobBus], object: JobView(service: self, entry: entry, snapshot: entry.job.snapshot),
                                          msg: msg, interface: interface, member: member)
        }
        throw unknownObject(path)
    }

    func unknownMethod(_ interface: String?, _ member: String) -> DBusError {
        DBusError(name: "org.freedesktop.DBus.Error.UnknownMethod",
                  message: "no method \(member) in interface \(interface ?? "(none)")")
    }

    func unknownObject(_ path: String) -> DBusError {
        DBusError(name: "org.freedesktop.DBus.Error.UnknownObject", message: "no object at \(path)")
    }


    private func introspect(_ path: String) -> String? {
        switch path {
        case "/": return Introspection.node(interfaces: "", children: ["io"])
        case "/io": return Introspection.node(interfaces: "", children: ["assay"])
        case "/io/assay": return Introspection.node(interfaces: "", children: ["Assay1"])
        case AssayService.managerPath:
            return Introspection.node(interfaces: Introspection.standard + Introspection.manager, children: ["jobs"])
        case AssayService.jobsPath:
            return Introspection.node(interfaces: "", children: jobs.ids.map(String.init))
        default:
            if path.hasPrefix(AssayService.jobsPath + "/"), let id = UInt64(path.dropFirst(AssayService.jobsPath.count + 1)),
               jobs[id] != nil {
                return Introspection.node(interfaces: Introspection.standard + Introspection.job, children: [])
            }
            return nil
        }
    }

    // MARK: access control

    /// The caller's Unix user, cached per connection.
    func callerUID(_ msg: DBusMessage) -> UInt32? {
        guard let sender = msg.sender else { return nil }
        if let uid = uidCache[sender] { return uid }
        guard let uid = try? loop.connection.unixUser(of: sender) else { return nil }
        if uidCache.count > 4096 { uidCache.removeAll() }
        uidCache[sender] = uid
        return uid
    }

    /// On the system bus, only root may change what the daemon runs.
    func requirePrivileged(_ msg: DBusMessage, _ what: String) throws {
        guard config.restrictAdmin else { return }
        guard callerUID(msg) == 0 else {
            throw AssayError.accessDenied("\(what) is restricted to root on this daemon (ask an administrator)")
        }
    }

    func clientKey(_ msg: DBusMessage) -> String {
        switch config.clientIdentity {
        case .connection: return msg.sender ?? "unknown"
        case .uid: return callerUID(msg).map { "uid:\($0)" } ?? (msg.sender ?? "unknown")
        }
    }

    // MARK: events from the core

    private func registryEvent(_ event: RegistryEvent) {
        switch event {
        case .changed:
            loop.connection.send(DBusMessage.signal(path: AssayService.managerPath, interface: AssayService.managerInterface,
                                                    member: "PluginsChanged"))
        case .loadFailed(let path, let reason):
            let s = DBusMessage.signal(path: AssayService.managerPath, interface: AssayService.managerInterface,
                                       member: "PluginLoadFailed")
            s.append(.string(path), .string(reason))
            loop.connection.send(s)
        }
    }

    private func queueLengthChanged() {
        let length = scheduler.queueLength
        guard length != lastQueueLength else { return }
        lastQueueLength = length
        emitPropertiesChanged(path: AssayService.managerPath, interface: AssayService.managerInterface,
                              ["QueueLength": .uint32(UInt32(length)), "RunningJobs": .uint32(UInt32(scheduler.runningCount))])
    }

    func emitPropertiesChanged(path: String, interface: String, _ changed: [String: DBusValue]) {
        let s = DBusMessage.signal(path: path, interface: AssayService.propertiesInterface, member: "PropertiesChanged")
        s.append(.string(interface), .vardict(changed), .strings([]))
        loop.connection.send(s)
    }

    // MARK: jobs

    func submit(prompt: String, rawOptions: [String: OptionValue], msg: DBusMessage) throws -> String {
        let options = try JobOptions.parse(rawOptions)
        let plan = try planner.plan(prompt: prompt, options: options)
        // The id is taken on disk and the job recorded durably before the client hears of
        // it: from the reply on, a crash cannot make it vanish.
        let id = try store.reserveID()
        let job = Job(id: id, prompt: prompt, plan: plan, client: clientKey(msg))
        let entry = JobEntry(job: job, path: "\(AssayService.jobsPath)/\(id)", uid: config.restrictAdmin ? callerUID(msg) : nil,
                             submitted: JobStore.now())
        do {
            try store.write(JobStore.Record(id: id, prompt: prompt, plan: plan, client: job.client, uid: entry.uid,
                                            submitted: entry.submitted))
            try scheduler.enqueue(job)   // throws QueueFull before anything is published
        } catch {
            store.release(id)
            throw error
        }
        publish(entry)
        logger.info("job submitted", metadata: ["job": "\(id)", "client": "\(job.client)", "strategy": "\(plan.strategy)",
                                                "seed": "\(plan.seed)", "budget_nfe": "\(plan.budgetNFE)"])
        return entry.path
    }

    /// Puts a job on the bus and relays its changes to the loop thread.
    private func publish(_ entry: JobEntry) {
        let job = entry.job, id = job.id
        jobs.add(id, entry)
        // Coalesce: a job reports after every model evaluation, but the bus thread needs
        // one wake-up per batch of changes, not one per evaluation.
        let loopRef = loop
        let pending = Locked(false)
        job.setObserver { [weak self] _ in
            let first = pending.withLock { p -> Bool in
                defer { p = true }
                return !p
            }
            if first {
                loopRef.post {
                    pending.withLock { $0 = false }
                    self?.jobChanged(id)
                }
            }
        }
        if job.state.isFinal { jobChanged(id) }
    }

    /// Start-up: the state directory's jobs come back. Finished ones stay on the bus for
    /// what is left of their retention; queued and running ones run again from their plan
    /// (with its seed: the same result the interrupted run would have made); a record that
    /// cannot be read is logged with its reason.
    private func restoreJobs() {
        var finished = 0, rerun = 0
        for r in store.recover(retention: config.retentionSeconds) {
            switch r {
            case .finished(let rec, let snapshot, let left):
                let job = Job(id: rec.id, prompt: rec.prompt, plan: rec.plan, client: rec.client)
                job.update { $0 = snapshot }
                let entry = JobEntry(job: job, path: "\(AssayService.jobsPath)/\(rec.id)", uid: rec.uid, submitted: rec.submitted)
                entry.finishedSent = true
                jobs.add(rec.id, entry)
                retire(rec.id, after: left)
                finished += 1
            case .rerun(let rec, let wasRunning):
                let job = Job(id: rec.id, prompt: rec.prompt, plan: rec.plan, client: rec.client)
                let entry = JobEntry(job: job, path: "\(AssayService.jobsPath)/\(rec.id)", uid: rec.uid, submitted: rec.submitted)
                do {
                    try scheduler.enqueue(job, ignoringCaps: true)
                } catch {
                    job.update {
                        $0.state = .failed
                        $0.stopReason = StopReason.restart.rawValue
                        $0.error = "the daemon restarted while this job was \(wasRunning ? "running" : "queued"), and it could not be queued again: \(error)"
                    }
                }
                publish(entry)
                rerun += 1
                logger.notice("job queued again after a restart", metadata: ["job": "\(rec.id)", "was": "\(wasRunning ? "running" : "queued")"])
            case .unreadable(let id, let reason):
                logger.error("a job's record cannot be read; it is not restored", metadata: ["job": "\(id)", "reason": "\(reason)"])
            }
        }
        if finished + rerun > 0 {
            logger.info("jobs restored", metadata: ["finished": "\(finished)", "queued_again": "\(rerun)"])
        }
    }

    /// Coalesces job updates: state changes go out at once, progress at most every
    /// `propertiesIntervalMs`.
    private func jobChanged(_ id: UInt64) {
        guard let entry = jobs[id] else { return }
        let snap = entry.job.snapshot
        let now = DispatchTimeClock.now()
        let interval = UInt64(config.propertiesIntervalMs) * 1_000_000
        if snap.state != entry.emitted.state || now - entry.lastEmitNs >= interval {
            flush(entry)
        } else if !entry.flushScheduled {
            entry.flushScheduled = true
            let wait = Int((interval - (now - entry.lastEmitNs)) / 1_000_000) + 1
            loop.after(ms: wait) { [weak self, weak entry] in
                guard let self, let entry else { return }
                entry.flushScheduled = false
                self.flush(entry)
            }
        }
    }

    private func flush(_ entry: JobEntry) {
        let snap = entry.job.snapshot
        let before = AssayService.jobBus.values(JobView(service: self, entry: entry, snapshot: entry.emitted))
        let after = AssayService.jobBus.values(JobView(service: self, entry: entry, snapshot: snap))
        let changed = after.filter { before[$0.key] != $0.value }
        entry.emitted = snap
        entry.lastEmitNs = DispatchTimeClock.now()
        if !changed.isEmpty {
            emitPropertiesChanged(path: entry.path, interface: AssayService.jobInterface, changed)
        }
        if snap.state.isFinal && !entry.finishedSent {
            entry.finishedSent = true
            let s = DBusMessage.signal(path: entry.path, interface: AssayService.jobInterface, member: "Finished")
            s.append(.string(snap.state.rawValue))
            loop.connection.send(s)
            store.recordEnd(entry.job, uid: entry.uid, submitted: entry.submitted)
            retire(entry.job.id, after: config.retentionSeconds)
        }
    }

    /// Keeps a finished job readable for `seconds` (the retention time), then drops it from
    /// the bus (the registry holds the rule; this only wakes it up in time).
    private func retire(_ id: UInt64, after seconds: Double) {
        let wait = jobs.ended(id, after: seconds)
        loop.after(ms: Int(wait * 1000) + 1) { [weak self] in self?.jobs.expire() }
    }
}
