/// Loads plugin files in worker processes (`PluginWorker`): the isolation `PluginLoader`.
///
/// Every file is loaded in a fresh worker with the daemon's own loader and checks, so a file
/// whose `dlopen`, constructors, entry or `init` crash or hang is refused with the reason
/// (the signal, the timeout) and the daemon is unharmed. The file stays in that worker (and
/// the others of its pool, started on demand), and its instances are `RemotePlugin`s: every
/// call of every kind is a request to a worker of the file, under a watchdog, cancellable at
/// once; model tensors go through a shared arena, and a sampler's model evaluations come
/// back to the daemon as callbacks.
public final class IsolatingPluginLoader: PluginLoader, @unchecked Sendable {
    let settings: WorkerSettings

    public init(settings: WorkerSettings) {
        self.settings = settings
    }

    public func load(path: String, bytes: [UInt8], sha256: String, generation: UInt64) throws -> LoadedFile {
        let worker = PluginWorker(settings: settings, path: path, bytes: bytes, sha256: sha256, generation: generation,
                                  poolSize: settings.poolSize)
        let reply = try worker.load()
        let refused = (reply.refused ?? []).map {
            PluginRefusal(path: path, id: $0.id, kind: $0.kind, version: $0.version, reason: $0.reason)
        }
        let made = reply.instances ?? []
        guard !made.isEmpty else {
            // Nothing usable: the refusals say why; no worker is kept for the file.
            worker.stop()
            return LoadedFile(path: path, sha256: sha256, generation: generation, instances: [], refused: refused)
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
