/// Loads plugin files in worker processes (`PluginWorker`): the isolation `PluginLoader`.
///
/// Every file is loaded in a fresh worker first, with the daemon's own loader and checks,
/// so a file whose `dlopen`, constructors, entry or `init` crash or hang is refused with
/// the reason (the signal, the timeout) and the daemon is unharmed. Then:
/// - a file whose plugins are all of an isolated kind (models, verifiers and reflectors
///   by default) stays in that worker, and its instances are `RemotePlugin`s: every call
///   is a request to a worker of the file, under a watchdog, cancellable at once; model
///   tensors go through a shared arena;
/// - any other file (samplers: they call back into the model in the middle of a call,
///   which needs a two-way protocol) is then loaded in process by `inProcess`, as before,
///   the worker having shown that loading it does not crash. Those calls are not isolated yet.
public final class IsolatingPluginLoader: PluginLoader, @unchecked Sendable {
    let settings: WorkerSettings
    let inProcess: PluginLoader
    let isolatedKinds: Set<PluginKind>

    public init(settings: WorkerSettings, inProcess: PluginLoader, isolatedKinds: Set<PluginKind> = Set(PluginKind.allCases)) {
        self.settings = settings
        self.inProcess = inProcess
        self.isolatedKinds = isolatedKinds
    }

    public func load(path: String, bytes: [UInt8], sha256: String, generation: UInt64) throws -> LoadedFile {
        let worker = PluginWorker(settings: settings, path: path, bytes: bytes, sha256: sha256, generation: generation,
                                  poolSize: settings.poolSize)
        let reply = try worker.load()
        let made = reply.instances ?? []
        let refused = (reply.refused ?? []).map {
            PluginRefusal(path: path, id: $0.id, kind: $0.kind, version: $0.version, reason: $0.reason)
        }
        guard !made.isEmpty, made.allSatisfy({ isolatedKinds.contains($0.kind) }) else {
            worker.stop()
            return try inProcess.load(path: path, bytes: bytes, sha256: sha256, generation: generation)
        }
        let library = PluginLibrary(path: path, sha256: sha256, generation: generation,
                                    abiVersion: reply.abiVersion ?? "", worker: worker)
        let instances = made.map {
            PluginInstance(library: library, id: $0.id, name: $0.name, version: $0.version, summary: $0.summary, kind: $0.kind,
                           remote: RemotePlugin(worker: worker, id: $0.id, kind: $0.kind, hasViews: $0.hasViews,
                                                hasPromptCheck: $0.hasPromptCheck, model: $0.model))
        }
        return LoadedFile(path: path, sha256: sha256, generation: generation, instances: instances, refused: refused)
    }
}
