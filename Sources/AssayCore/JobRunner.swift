import AssayPluginHost
import Logging

/// Runs one job from start to its final state, on a scheduler worker thread.
///
/// Plugins are resolved here, when the job starts, and held until it ends: a plugin
/// reloaded meanwhile does not affect this job, and its old library stays mapped until the
/// job lets go (see `PluginLibrary`).
public final class JobRunner: @unchecked Sendable {
    public let registry: PluginRegistry
    public let catalog: StrategyCatalog
    public let store: ResultStore
    private let logger: Logger

    public init(registry: PluginRegistry, catalog: StrategyCatalog, store: ResultStore,
                logger: Logger = Logger(label: "io.assay.jobs")) {
        self.registry = registry
        self.catalog = catalog
        self.store = store
        self.logger = logger
    }

    /// The toolkit a job's strategy runs with: a metered denoiser per model role and the
    /// job's verifiers, reflector and sampler, resolved now (the plugins in use are returned
    /// for the manifest). Public so that strategies can be tested in process, without D-Bus
    /// (the strategy test kit).
    public static func makeToolkit(for job: Job, registry: PluginRegistry, meter: BudgetMeter,
                                   call: PluginCallContext) throws -> (SearchToolkit, [PluginInstance]) {
        let plan = job.plan
        func resolve(_ id: String, _ kind: PluginKind) throws -> PluginInstance {
            guard let i = registry.instance(id: id), i.kind == kind else {
                throw AssayError.unknownPlugin("\(kind.rawValue) plugin '\(id)' was unloaded before the job started")
            }
            return i
        }
        var denoisers: [String: Denoiser] = [:]
        var modelInstances: [PluginInstance] = []
        for (role, id) in plan.models.sorted(by: { $0.key < $1.key }) {
            let instance = try resolve(id, .model)
            if !modelInstances.contains(where: { $0 === instance }) { modelInstances.append(instance) }
            denoisers[role] = Denoiser(role: role, model: ModelPlugin(instance)!, meter: meter, context: call)
        }
        if denoisers["base"] == nil {
            let instance = try resolve(plan.model, .model)
            modelInstances.insert(instance, at: 0)
            denoisers["base"] = Denoiser(role: "base", model: ModelPlugin(instance)!, meter: meter, context: call)
        }
        let verifierInstances = try plan.verifiers.map { try resolve($0, .verifier) }
        let samplerInstance = try plan.sampler.map { try resolve($0, .sampler) }
        let reflectorInstance = try plan.reflector.map { try resolve($0, .reflector) }
        let instances = modelInstances + verifierInstances + [samplerInstance, reflectorInstance].compactMap { $0 }
        let kit = SearchToolkit(job: job, denoisers: denoisers, verifiers: verifierInstances.map { VerifierPlugin($0)! },
                                reflector: reflectorInstance.map { ReflectorPlugin($0)! },
                                sampler: samplerInstance.map { SamplerPlugin($0)! }, meter: meter, call: call)
        return (kit, instances)
    }

    public func run(_ job: Job) {
        let startNs = DispatchTimeClock.now()
        let plan = job.plan
        if job.isCancelRequested {
            job.update { $0.state = .cancelled; $0.stopReason = StopReason.cancelled.rawValue }
            return
        }
        job.update { $0.state = .running }
        logger.info("job started", metadata: ["job": "\(job.id)", "strategy": "\(plan.strategy)", "model": "\(plan.model)"])

        let meter = BudgetMeter(nfeBudget: plan.budgetNFE, verifierBudget: plan.budgetVerifierCalls,
                                reflectorBudget: plan.budgetReflectorCalls, deadlineMs: plan.deadlineMs, isCancelled: { [job] in job.isCancelRequested })
        let call = PluginCallContext(jobID: job.id, isCancelled: { [meter] in meter.shouldStop })
        var context: SearchToolkit?
        var failure: String?
        var cutShort = false
        var instances: [PluginInstance] = []
        do {
            let strategy = try catalog.strategy(named: plan.strategy)
            let (ctx, used) = try JobRunner.makeToolkit(for: job, registry: registry, meter: meter, call: call)
            instances = used
            context = ctx
            try strategy.run(ctx)
        } catch let refusal as BudgetRefusal {
            logger.info("job stopped early", metadata: ["job": "\(job.id)", "reason": "\(refusal)"])
        } catch let e as PluginCallError where e.isCrash {
            failure = AssayError.pluginCrashed("plugin '\(e.pluginID)' \(e.message)").description
        } catch let e as PluginCallError {
            // A call cut short because the job was cancelled (or hit its deadline) is a stop,
            // not a failure: isolated plugins end that way while stuck.
            let stopped = (e.isBudget || e.isCancelled) && (meter.firstRefusal != nil || meter.shouldStop)
            if !stopped { failure = e.description }
            cutShort = stopped && meter.firstRefusal == nil
        } catch let e as AssayError {
            failure = e.message
        } catch {
            failure = "\(error)"
        }

        if job.isInterruptedForShutdown {
            // Not an end: no manifest, so the job store runs it again at the next start.
            logger.notice("job interrupted by the daemon stopping; it runs again at the next start", metadata: ["job": "\(job.id)"])
            return
        }

        // Decide how it ended.
        let best = context?.best
        let stop: StopReason
        var state: JobState
        if failure != nil {
            stop = .error
            state = .failed
        } else if job.isCancelRequested {
            stop = .cancelled
            state = .cancelled
        } else if let r = meter.firstRefusal ?? (cutShort ? .deadline : nil) {
            // (cut short without a recorded refusal: the deadline passed while a plugin
            // call was stuck, and the call was ended from outside.)
            stop = r
            state = best == nil ? .failed : .done
            if best == nil {
                failure = r == .budget ? "the budget ran out before any candidate finished" : "the deadline passed before any candidate finished"
            }
        } else {
            stop = .completed
            state = best == nil ? .failed : .done
            if best == nil { failure = "the strategy produced no candidate" }
        }

        // Write what there is.
        let dir = store.directory(for: job.id)
        var resultPath = "", manifestPath = "", candidatesDir = ""
        let writeStart = DispatchTimeClock.now()
        do {
            try FileIO.makeDirectories(dir)
            var records: [Manifest.CandidateRecord] = []
            var resultSHA: String?
            if let best {
                let png = try PNGEncoder.encode(best.image)
                resultPath = dir + "/result.png"
                try FileIO.write(png, to: resultPath, durable: true)
                resultSHA = SHA256.hex(png)
            }
            if plan.saveCandidates, let ctx = context, !ctx.candidates.isEmpty {
                candidatesDir = dir + "/candidates"
                try FileIO.makeDirectories(candidatesDir)
            }
            for c in context?.candidates ?? [] {
                var imageName: String?
                if !candidatesDir.isEmpty {
                    imageName = "candidates/\(String(c.index).leftPadded(3)).png"
                    try FileIO.write(try PNGEncoder.encode(c.image), to: dir + "/" + imageName!, durable: true, syncFolder: false)
                }
                let latentBytes = c.latent.withUnsafeBytes { Array($0) }
                records.append(.init(index: c.index, node: c.node, seed: c.seed, scores: c.scores, meanRank: c.meanRank,
                                     details: c.details, latentSHA256: SHA256.hex(latentBytes), image: imageName))
            }
            // The search tree; with save_candidates every decoded image (probes too) is kept.
            var nodes = context?.nodes ?? []
            if plan.saveCandidates, let ctx = context, !ctx.images.isEmpty {
                try FileIO.makeDirectories(dir + "/nodes")
                for (id, image) in ctx.images.sorted(by: { $0.key < $1.key }) {
                    let name = "nodes/\(String(id).leftPadded(4)).png"
                    try FileIO.write(try PNGEncoder.encode(image), to: dir + "/" + name, durable: true, syncFolder: false)
                    nodes[id].image = name
                }
                FileIO.syncFolder(of: dir + "/nodes/x")
            }
            // Every image the manifest names is on disk before the manifest says so (the job
            // folder's own entries are synced with the manifest's rename).
            if !candidatesDir.isEmpty { FileIO.syncFolder(of: candidatesDir + "/x") }
            let modelNs = context?.denoisers.values.reduce(UInt64(0)) { $0 + $1.pluginNs } ?? 0
            let manifest = Manifest(
                manifestVersion: Manifest.currentVersion, assayVersion: AssayVersion.string, abiVersion: HostABI.string, jobID: job.id, prompt: job.prompt,
                plan: plan,
                plugins: instances.map { .init(id: $0.id, kind: $0.kind.rawValue, version: $0.version, path: $0.library.path,
                                               sha256: $0.library.sha256, generation: $0.library.generation) },
                candidates: records.sorted { $0.index < $1.index }, conditions: context?.conditions, nodes: nodes,
                resultNode: best?.node, chosenPath: best.flatMap { b in context?.path(to: b.node) }, bestIndex: best?.index,
                bestScore: context.map { $0.bestScore }.flatMap { $0.isNaN ? nil : $0 },
                result: resultPath.isEmpty ? nil : "result.png", resultSHA256: resultSHA, state: state.rawValue,
                stopReason: stop.rawValue, error: failure, nfeUsed: meter.nfeUsed, verifierCalls: meter.verifierCalls,
                reflectorCalls: meter.reflectorCalls, flopRatio: context?.flopRatio, middleFlopRatio: context?.middleFlopRatio,
                notes: context.flatMap { $0.notes.isEmpty ? nil : $0.notes },
                timings: .init(queuedMs: Double(startNs - job.submittedNs) / 1e6,
                               runMs: Double(DispatchTimeClock.now() - startNs) / 1e6,
                               samplingMs: Double(context?.samplingNs ?? 0) / 1e6,
                               modelMs: Double(modelNs) / 1e6, decodeMs: Double(context?.decodeNs ?? 0) / 1e6,
                               verifierMs: Double(context?.verifierNs ?? 0) / 1e6,
                               writeMs: Double(DispatchTimeClock.now() - writeStart) / 1e6))
            manifestPath = dir + "/manifest.json"
            // Written last and durably: a manifest on disk is what says the job finished.
            try FileIO.write(try manifest.encoded(), to: manifestPath, durable: true)
        } catch {
            failure = (failure.map { $0 + "; " } ?? "") + "writing results failed: \(error)"
            state = .failed
        }

        let finalState = state, finalFailure = failure ?? ""
        let score = context?.bestScore ?? .nan
        job.update {
            $0.state = finalState
            $0.stopReason = stop.rawValue
            $0.error = finalFailure
            $0.nfeUsed = meter.nfeUsed
            $0.verifierCalls = meter.verifierCalls
            $0.reflectorCalls = meter.reflectorCalls
            $0.bestScore = score
            $0.resultPath = resultPath
            $0.manifestPath = manifestPath
            $0.candidatesDirectory = candidatesDir
            $0.candidates = context?.candidates.count ?? 0
            $0.flopRatio = context?.flopRatio
            if finalState == .done { $0.progress = 1 }
        }
        logger.info("job finished", metadata: [
            "job": "\(job.id)", "state": "\(finalState.rawValue)", "stop": "\(stop.rawValue)",
            "nfe": "\(meter.nfeUsed)/\(plan.budgetNFE)", "error": "\(finalFailure)",
        ])
    }
}
