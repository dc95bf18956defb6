import AssayPluginHost
import Glibc

/// Turns a prompt and client options into a `JobPlan` at submission time, so that every
/// mistake (unknown plugin, impossible budget, a word the model cannot encode) is a D-Bus
/// error the client sees at once instead of a failed job later.
public struct JobPlanner: Sendable {
    public let registry: PluginRegistry
    public let catalog: StrategyCatalog
    public let defaults: JobDefaults

    public init(registry: PluginRegistry, catalog: StrategyCatalog, defaults: JobDefaults) {
        self.registry = registry
        self.catalog = catalog
        self.defaults = defaults
    }

    /// A fresh seed from the kernel's entropy (recorded in the plan, so still replayable).
    static func randomSeed() -> UInt64 {
        var seed: UInt64 = 0
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            _ = read(fd, &seed, 8)
            close(fd)
        }
        return seed != 0 ? seed : NoiseSource.mix(DispatchTimeClock.now())
    }

    private func loadedIDs(_ kind: PluginKind) -> [String] { registry.instances(kind: kind).map(\.id) }

    private func require(_ id: String, _ kind: PluginKind) throws -> PluginInstance {
        guard let i = registry.instance(id: id) else {
            let loaded = loadedIDs(kind)
            throw AssayError.unknownPlugin("no \(kind.rawValue) plugin '\(id)' is loaded; loaded \(kind.rawValue)s: \(loaded.isEmpty ? "none" : loaded.joined(separator: ", "))")
        }
        guard i.kind == kind else {
            throw AssayError.unknownPlugin("plugin '\(id)' is a \(i.kind.rawValue), not a \(kind.rawValue)")
        }
        if let reason = i.remote?.worker.quarantined {
            throw AssayError.pluginCrashed("plugin '\(id)' is quarantined: \(reason); replace or fix \(i.library.path) to load it again")
        }
        return i
    }

    /// Why verifier `id` cannot judge `prompt` (its assay.prompt-check/1 reason), or nil
    /// when it can or has no grammar. Throws UnknownPlugin when no such verifier is loaded.
    private func refusal(_ id: String, _ prompt: String, _ context: PluginCallContext) throws -> String? {
        do {
            try require(id, .verifier).checkPrompt(prompt, context: context)
            return nil
        } catch let e as PluginCallError {
            return e.message
        }
    }

    /// The verifiers a `Score` call uses, with the rules and wording of `Submit`: each one
    /// named must be loaded and able to judge the prompt; none named means every loaded
    /// verifier that can judge it (one without a grammar always can).
    public func scoringVerifiers(prompt: String, requested: [String]) throws -> [PluginInstance] {
        try JobOptions.validatePrompt(prompt)
        guard Set(requested).count == requested.count else {
            throw AssayError.invalidArgument("'verifiers' names a verifier twice")
        }
        let check = PluginCallContext(jobID: 0)
        if !requested.isEmpty {
            return try requested.map { id in
                if let reason = try refusal(id, prompt, check) {
                    throw AssayError.invalidArgument("verifier '\(id)' cannot judge this prompt: \(reason)")
                }
                return try require(id, .verifier)
            }
        }
        let loaded = registry.instances(kind: .verifier)
        guard !loaded.isEmpty else {
            throw AssayError.notReady("no verifier plugin is loaded: put one in a plugin directory (see PluginDirectories)")
        }
        var reasons: [String] = []
        var usable: [PluginInstance] = []
        for v in loaded {
            do {
                try v.checkPrompt(prompt, context: check)
                usable.append(v)
            } catch let e as PluginCallError {
                reasons.append("\(v.id): \(e.message)")
            }
        }
        if usable.isEmpty {
            throw AssayError.invalidArgument("no loaded verifier can judge this prompt (\(reasons.joined(separator: "; ")))")
        }
        return usable
    }

    public func plan(prompt: String, options: JobOptions) throws -> JobPlan {
        try JobOptions.validatePrompt(prompt)
        let strategy = try catalog.strategy(named: options.strategy ?? defaults.strategy)

        let modelID: String
        if let m = options.model { modelID = m } else {
            let loaded = loadedIDs(.model)
            guard let m = defaults.models.first(where: loaded.contains) ?? loaded.first else {
                throw AssayError.notReady("no model plugin is loaded: put one in a plugin directory (see PluginDirectories)")
            }
            modelID = m
        }
        guard let model = ModelPlugin(try require(modelID, .model)) else { throw AssayError.unknownPlugin(modelID) }

        // Verifiers with a grammar (assay.prompt-check/1) judge the prompt now, so the
        // client hears about a prompt they cannot score before any compute is spent.
        let check = PluginCallContext(jobID: 0)
        func refusal(_ id: String) throws -> String? { try self.refusal(id, prompt, check) }
        var verifiers: [String]
        if let v = options.verifiers {
            verifiers = v
            for id in v {
                if let reason = try refusal(id) {
                    throw AssayError.invalidArgument("verifier '\(id)' cannot judge this prompt: \(reason)")
                }
            }
        } else {
            // One verifier by default: the first preferred one that is loaded and can judge
            // this prompt, else (when the strategy needs one) the first loaded one that can.
            // An ensemble changes what "best" means, so it is only ever asked for explicitly.
            // A default that cannot judge the prompt is passed over, not an error: the client
            // did not ask for it.
            let loaded = loadedIDs(.verifier)
            let preferred = defaults.verifiers.filter(loaded.contains)
            let candidates = preferred + (strategy.needsVerifier ? loaded.filter { !preferred.contains($0) } : [])
            var reasons: [String] = []
            verifiers = []
            for id in candidates {
                if let reason = try refusal(id) { reasons.append("\(id): \(reason)") } else { verifiers = [id]; break }
            }
            if strategy.needsVerifier && verifiers.isEmpty && !reasons.isEmpty {
                throw AssayError.invalidArgument("no loaded verifier can judge this prompt (\(reasons.joined(separator: "; ")))")
            }
        }
        if strategy.needsVerifier && verifiers.isEmpty {
            throw AssayError.notReady("strategy '\(strategy.name)' needs a verifier and none is loaded")
        }
        if let s = options.sampler { _ = try require(s, .sampler) }
        if let r = options.reflector {
            let reflector = try require(r, .reflector)
            do { try reflector.checkPrompt(prompt, context: check) } catch let e as PluginCallError {
                throw AssayError.invalidArgument("reflector '\(r)' cannot work with this prompt: \(e.message)")
            }
        }

        // Model roles: `base` is `model`; every other role the strategy declares needs a model.
        var models = ["base": modelID]
        let declaredRoles = strategy.roles.map(\.name)
        for (role, id) in options.models.sorted(by: { $0.key < $1.key }) {
            guard declaredRoles.contains(role) else {
                throw AssayError.invalidArgument("strategy '\(strategy.name)' has no model role '\(role)'; its roles: \(declaredRoles.joined(separator: ", "))")
            }
            let instance = try require(id, .model)
            guard let roleModel = ModelPlugin(instance) else { throw AssayError.unknownPlugin(id) }
            switch strategy.roles.first(where: { $0.name == role })!.use {
            case .continuesLatents:
                // The role's model continues the base model's latents (SearchToolkit.handOver):
                // refuse now what the hand-over would refuse after compute was spent.
                let baseSpace = try require(modelID, .model).latentSpaceID
                guard let space = instance.latentSpaceID, space == baseSpace else {
                    throw AssayError.invalidArgument("model '\(id)' (role \(role)) cannot continue latents of model '\(modelID)': their latent spaces are \(instance.latentSpaceID ?? "undeclared") and \(baseSpace ?? "undeclared") (a hand-over needs both to declare the same id, ext/draft/latent-space.h)")
                }
            case .correctsImages:
                guard let reference = ModelReference(roleModel) else {
                    throw AssayError.invalidArgument("model '\(id)' (role \(role)) cannot correct images: it has no \(ModelReference.extensionID) extension (a model trained to take a flawed image and an instruction, e.g. shapes-corrector; ext/draft/model-reference.h)")
                }
                let base = model.info
                guard reference.imageWidth == base.imageWidth && reference.imageHeight == base.imageHeight else {
                    throw AssayError.invalidArgument("model '\(id)' (role \(role)) takes \(reference.imageWidth)x\(reference.imageHeight) reference images, but model '\(modelID)' makes \(base.imageWidth)x\(base.imageHeight) images")
                }
                do { _ = try roleModel.encode(prompt, context: check) } catch let e as PluginCallError {
                    throw AssayError.invalidArgument("model '\(id)' (role \(role)) cannot use this prompt: \(e.message)")
                }
            }
            models[role] = id
        }

        let info = model.info
        let steps = options.steps ?? info.defaultSteps
        guard steps >= 1 else { throw AssayError.invalidArgument("model '\(modelID)' gives no default step count: pass 'steps'") }
        let guidance = options.guidance ?? info.defaultGuidance
        let conditions = guidance != 1 ? 2 : 1
        // Without guidance the negative prompt would be silently ignored: say so instead.
        if options.negativePrompt != nil && conditions == 1 {
            throw AssayError.invalidArgument("negative_prompt needs guidance: model '\(modelID)' runs with guidance 1\(options.guidance == nil ? " by default" : ""), so the negative prompt would have no effect; set 'guidance' above 1 (a distilled model such as a turbo student has no negative prompt)")
        }
        // A plugin sampler's cost is unknown in advance; plan for a second-order method.
        let cost = SearchCost(steps: steps, evaluationsPerSample: conditions, scheduleShift: info.scheduleShift,
                              samplerFactor: options.sampler == nil ? 1 : 2)
        let perCandidate = cost.perSample
        let strategyOptions = try catalog.resolve(strategy, given: options.strategyOptions, budget: options.budgetNFE, cost: cost)
        for role in strategy.roles where models[role.name] == nil && role.isNeeded(strategyOptions) {
            let when = role.neededWhen.map { " with \($0.option)=\($0.value)" } ?? ""
            throw AssayError.invalidArgument("strategy '\(strategy.name)'\(when) needs a model for role '\(role.name)' (\(role.help)): pass models={'\(role.name)': <model id>}")
        }
        try strategy.validate(strategyOptions, resources: StrategyResources(models: models, reflector: options.reflector,
                                                                             sampler: options.sampler))
        let planned = strategy.plannedNFE(strategyOptions, cost: cost)
        let budget = options.budgetNFE ?? planned
        if options.sampler == nil && budget < perCandidate {
            throw AssayError.invalidArgument("budget_nfe \(budget) cannot pay for a single sample: one costs \(perCandidate) NFEs (\(steps) steps x \(conditions) condition\(conditions > 1 ? "s (guidance)" : ""))")
        }
        guard budget <= JobOptions.Limits.maxBudgetNFE else {
            throw AssayError.invalidArgument("the planned budget of \(budget) NFEs exceeds the maximum of \(JobOptions.Limits.maxBudgetNFE): lower the strategy's options or steps")
        }
        if options.targetScore != nil && verifiers.isEmpty {
            throw AssayError.invalidArgument("target_score needs a verifier to score candidates: name one in 'verifiers'")
        }

        do {
            _ = try model.encode(prompt, context: check)
            if conditions == 2, let neg = options.negativePrompt { _ = try model.encode(neg, context: check) }
        } catch let e as PluginCallError {
            throw AssayError.invalidArgument("model '\(modelID)' cannot use this prompt: \(e.message)")
        }

        let seed = options.seed ?? JobPlanner.randomSeed()
        return JobPlan(strategy: strategy.name, strategyOptions: strategyOptions, model: modelID, models: models,
                       verifiers: verifiers, reflector: options.reflector, sampler: options.sampler,
                       samplerOptions: Dictionary(options.samplerOptions, uniquingKeysWith: { $1 }),
                       seed: seed, steps: steps, guidance: guidance, negativePrompt: options.negativePrompt,
                       budgetNFE: budget, deadlineMs: options.deadlineMs,
                       budgetVerifierCalls: options.budgetVerifierCalls, budgetReflectorCalls: options.budgetReflectorCalls,
                       targetScore: options.targetScore, saveCandidates: options.saveCandidates)
    }
}
