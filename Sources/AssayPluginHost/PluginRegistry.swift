import Dispatch
import Glibc
import Logging

/// One row of `ListPlugins`: a loaded plugin or a refused one.
public struct PluginRecord: Sendable, Equatable {
    /// `quarantined`: loaded, but its worker crashed or hung too often (`reason`); unusable
    /// until its file changes.
    public enum State: String, Sendable { case loaded, refused, quarantined }
    public let id: String
    public let kind: String
    public let name: String
    public let version: String
    public let summary: String
    public let path: String
    public let state: State
    /// Why it was refused; for a loaded plugin, why its newest file version was not taken.
    public let reason: String
    public let sha256: String
    public let generation: UInt64
}

public enum RegistryEvent: Sendable {
    /// The set of usable plugins (or their versions) changed.
    case changed
    /// A file or plugin was refused; when an older version was serving, it still is.
    case loadFailed(path: String, reason: String)
}

/// The live set of plugins: which instance serves each id right now.
///
/// A file is the unit of (re)loading. Loading a new version builds all its instances
/// first and then swaps them in under the lock, so a job resolving plugins sees either the
/// old set or the new one. Jobs keep the instances they resolved (see `PluginLibrary`).
public final class PluginRegistry: @unchecked Sendable {
    private let directoryList: Locked<[String]>
    /// The directories scanned now (they can change at run time).
    public var directories: [String] { directoryList.current }
    private let loader: PluginLoader
    /// Which files are read at all (regular files only; root-owned ones on the system bus).
    public let filePolicy: PluginFilePolicy
    private let onEvent: @Sendable (RegistryEvent) -> Void
    private let logger: Logger

    private struct FileState {
        var loaded: LoadedFile?
        /// Whole-file refusal, or the last failed reload while `loaded` still serves.
        var failure: PluginRefusal?
        /// Plugins of the loaded file that were refused (init failed, id taken...).
        var refusedPlugins: [PluginRefusal] = []
    }
    private let state = Locked<[String: FileState]>([:])
    /// Loads of one file are serialised (its lock); loads of different files run at once,
    /// each library on its own management thread, so a slow `init` delays only its file.
    private let pathLocks = Locked<[String: PathLock]>([:])
    private let generations = Locked<UInt64>(0)

    private final class PathLock: @unchecked Sendable {
        private var mutex = pthread_mutex_t()
        init() { pthread_mutex_init(&mutex, nil) }
        func withLock<T>(_ body: () throws -> T) rethrows -> T {
            pthread_mutex_lock(&mutex)
            defer { pthread_mutex_unlock(&mutex) }
            return try body()
        }
    }

    private func lock(for path: String) -> PathLock {
        pathLocks.withLock { locks in
            if let l = locks[path] { return l }
            let l = PathLock()
            locks[path] = l
            return l
        }
    }

    public init(directories: [String], loader: PluginLoader, filePolicy: PluginFilePolicy = PluginFilePolicy(),
                logger: Logger = Logger(label: "io.assay.plugins"),
                onEvent: @escaping @Sendable (RegistryEvent) -> Void = { _ in }) {
        self.directoryList = Locked(directories)
        self.loader = loader
        self.filePolicy = filePolicy
        self.logger = logger
        self.onEvent = onEvent
    }

    /// The instance serving `id` now, or nil.
    public func instance(id: String) -> PluginInstance? {
        state.withLock { files in
            for file in files.values {
                if let i = file.loaded?.instances.first(where: { $0.id == id }) { return i }
            }
            return nil
        }
    }

    public func instances(kind: PluginKind) -> [PluginInstance] {
        state.withLock { files in
            files.values.flatMap { $0.loaded?.instances ?? [] }
                .filter { $0.kind == kind && $0.remote?.worker.quarantined == nil }.sorted { $0.id < $1.id }
        }
    }

    public func records() -> [PluginRecord] {
        state.withLock { files in
            var out: [PluginRecord] = []
            for (path, file) in files {
                if let loaded = file.loaded {
                    for i in loaded.instances {
                        let quarantine = i.remote?.worker.quarantined
                        out.append(PluginRecord(id: i.id, kind: i.kind.rawValue, name: i.name, version: i.version,
                                                summary: i.summary, path: path, state: quarantine == nil ? .loaded : .quarantined,
                                                reason: quarantine ?? file.failure?.reason ?? "", sha256: loaded.sha256,
                                                generation: loaded.generation))
                    }
                } else if let failure = file.failure {
                    out.append(PluginRecord(id: failure.id, kind: failure.kind?.rawValue ?? "", name: "", version: failure.version,
                                            summary: "", path: path, state: .refused, reason: failure.reason,
                                            sha256: "", generation: 0))
                }
                for r in file.refusedPlugins {
                    out.append(PluginRecord(id: r.id, kind: r.kind?.rawValue ?? "", name: "", version: r.version, summary: "",
                                            path: path, state: .refused, reason: r.reason,
                                            sha256: file.loaded?.sha256 ?? "", generation: file.loaded?.generation ?? 0))
                }
            }
            return out.sorted { ($0.path, $0.id) < ($1.path, $1.id) }
        }
    }

    /// Loads new files, reloads changed ones and drops deleted ones in every directory, the
    /// files at the same time. Returns when all are done, or after `wait` seconds with the
    /// slow ones still loading (they are swapped in when they finish, with a `.changed`
    /// event): returns false then.
    @discardableResult
    public func scanAll(wait: Double = .infinity) -> Bool {
        var present: Set<String> = []
        for dir in directories {
            for name in FileIO.listFiles(dir) where name.hasSuffix(".so") {
                present.insert(dir + "/" + name)
            }
        }
        let known = Set(state.withLock { Array($0.keys) })
        for path in known.subtracting(present).sorted() { remove(path: path) }
        let group = DispatchGroup()
        let pending = Locked<Set<String>>(present)
        for path in present.sorted() {
            DispatchQueue.global().async(group: group) {
                self.reload(path: path)
                pending.withLock { _ = $0.remove(path) }
            }
        }
        let timeout: DispatchTime = wait.isFinite ? .now() + max(0, wait) : .distantFuture
        if group.wait(timeout: timeout) == .timedOut {
            logger.warning("plugin files still loading; going on without them until they are ready",
                           metadata: ["files": "\(pending.current.sorted().joined(separator: ","))", "waited_s": "\(wait)"])
            return false
        }
        return true
    }

    /// Switches to another set of directories: files outside them are dropped (running jobs
    /// keep what they hold), files inside are loaded.
    public func setDirectories(_ directories: [String]) {
        directoryList.withLock { $0 = directories }
        scanAll()
    }

    private func remove(path: String) {
        lock(for: path).withLock {
            if state.withLock({ $0.removeValue(forKey: path) }) != nil {
                logger.info("plugin file dropped", metadata: ["path": "\(path)"])
                onEvent(.changed)
            }
        }
    }

    /// Brings one file up to date: load it if new or changed, drop it if gone.
    /// Returns the seconds spent loading and swapping (0 when nothing changed).
    @discardableResult
    public func reload(path: String) -> Double {
        lock(for: path).withLock { () -> Double in
            guard FileIO.exists(path) else {
                let removed = state.withLock { $0.removeValue(forKey: path) }
                if removed != nil {
                    logger.info("plugin file removed", metadata: ["path": "\(path)"])
                    onEvent(.changed)
                }
                return 0
            }
            let bytes: [UInt8]
            do { bytes = try filePolicy.read(path) } catch {
                // Not read at all (not a regular file, untrusted, unreadable): refused, and
                // an older version that was checked when it loaded keeps serving.
                fail(path: path, refusal: PluginRefusal(path: path, id: "", kind: nil, version: "", reason: "\(error)"))
                return 0
            }
            let sha = SHA256.hex(bytes)
            if let current = state.withLock({ $0[path]?.loaded?.sha256 }), sha == current {
                // The serving bytes again (a duplicate event, or a broken file put back):
                // nothing to load, and no failure to report any more.
                let cleared = state.withLock { files -> Bool in
                    guard files[path]?.failure != nil else { return false }
                    files[path]?.failure = nil
                    return true
                }
                if cleared { onEvent(.changed) }
                return 0
            }
            let start = DispatchTimeClock.now()
            let generation = generations.withLock { g -> UInt64 in
                g += 1
                return g
            }
            let loaded: LoadedFile
            do {
                loaded = try loader.load(path: path, bytes: bytes, sha256: sha, generation: generation)
            } catch let e as PluginLoadError {
                fail(path: path, refusal: PluginRefusal(path: path, id: "", kind: nil, version: "", reason: e.reason))
                return DispatchTimeClock.seconds(since: start)
            } catch {
                fail(path: path, refusal: PluginRefusal(path: path, id: "", kind: nil, version: "", reason: "\(error)"))
                return DispatchTimeClock.seconds(since: start)
            }
            var refused = loaded.refused
            // Checked and swapped in under one lock: two files loading at once cannot both
            // take an id.
            let accepted: [PluginInstance] = state.withLock { files in
                var taken: [String: String] = [:]
                for (other, file) in files where other != path {
                    for i in file.loaded?.instances ?? [] { taken[i.id] = other }
                }
                var seen: Set<String> = []
                let ok = loaded.instances.filter { i in
                    if let owner = taken[i.id] {
                        refused.append(PluginRefusal(path: path, id: i.id, kind: i.kind, version: i.version,
                                                     reason: "id \(i.id) is already provided by \(owner)"))
                        return false
                    }
                    if !seen.insert(i.id).inserted {
                        refused.append(PluginRefusal(path: path, id: i.id, kind: i.kind, version: i.version,
                                                     reason: "id \(i.id) appears twice in this file"))
                        return false
                    }
                    return true
                }
                if !ok.isEmpty {
                    let file = LoadedFile(path: path, sha256: loaded.sha256, generation: loaded.generation,
                                          instances: ok, refused: refused)
                    files[path] = FileState(loaded: file, failure: nil, refusedPlugins: refused)
                }
                return ok
            }
            if accepted.isEmpty {
                let reason = refused.map(\.reason).joined(separator: "; ")
                fail(path: path, refusal: PluginRefusal(path: path, id: refused.first?.id ?? "", kind: refused.first?.kind,
                                                        version: refused.first?.version ?? "",
                                                        reason: reason.isEmpty ? "no usable plugin" : reason))
                return DispatchTimeClock.seconds(since: start)
            }
            let elapsed = DispatchTimeClock.seconds(since: start)
            logger.info("plugin file loaded", metadata: [
                "path": "\(path)", "generation": "\(generation)",
                "plugins": "\(accepted.map { "\($0.id)@\($0.version)" }.joined(separator: ","))",
                "swap_ms": "\(Int(elapsed * 1000))",
            ])
            for r in refused {
                logger.warning("plugin refused", metadata: ["path": "\(path)", "id": "\(r.id)", "reason": "\(r.reason)"])
                onEvent(.loadFailed(path: path, reason: r.id.isEmpty ? r.reason : "\(r.id): \(r.reason)"))
            }
            if let worker = accepted.first?.remote?.worker {
                let onEvent = self.onEvent, logger = self.logger
                let ids = accepted.map(\.id).joined(separator: ",")
                worker.onQuarantine.withLock {
                    $0 = { reason in
                        logger.error("plugin quarantined", metadata: ["path": "\(path)", "plugins": "\(ids)", "reason": "\(reason)"])
                        onEvent(.loadFailed(path: path, reason: "\(ids) quarantined: \(reason)"))
                        onEvent(.changed)
                    }
                }
            }
            onEvent(.changed)
            return elapsed
        }
    }

    private func fail(path: String, refusal: PluginRefusal) {
        let hadLoaded = state.withLock { files -> Bool in
            var f = files[path] ?? FileState()
            f.failure = refusal
            files[path] = f
            return f.loaded != nil
        }
        logger.warning("plugin file refused", metadata: [
            "path": "\(path)", "reason": "\(refusal.reason)", "still_serving_old_version": "\(hadLoaded)",
        ])
        onEvent(.loadFailed(path: path, reason: refusal.reason))
        onEvent(.changed)
    }
}

/// Monotonic time for measurements.
public enum DispatchTimeClock {
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    public static func seconds(since start: UInt64) -> Double { Double(now() - start) / 1e9 }
}
