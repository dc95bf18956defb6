import AssayPluginHost

/// A job's options with every default applied: what actually runs, and what a manifest
/// records so that submitting the same plan again reproduces the result bit for bit.
public struct JobPlan: Codable, Sendable, Equatable {
    public var strategy: String
    /// The strategy's own options, resolved (declared by the strategy; see ListStrategies).
    public var strategyOptions: StrategyOptions
    /// The base model's id (role `base`).
    public var model: String
    /// Model id of every role the strategy uses, `base` included.
    public var models: [String: String]
    public var verifiers: [String]
    public var reflector: String?
    public var sampler: String?
    public var samplerOptions: [String: PluginOption]
    public var seed: UInt64
    public var steps: Int
    public var guidance: Double
    public var negativePrompt: String?
    public var budgetNFE: Int
    public var deadlineMs: Int?
    public var budgetVerifierCalls: Int?
    public var budgetReflectorCalls: Int?
    /// Stop as soon as a finished candidate scores at least this under the first verifier.
    public var targetScore: Double?
    public var saveCandidates: Bool

    public init(strategy: String, strategyOptions: StrategyOptions, model: String, models: [String: String],
                verifiers: [String], reflector: String? = nil, sampler: String?, samplerOptions: [String: PluginOption],
                seed: UInt64, steps: Int, guidance: Double, negativePrompt: String?, budgetNFE: Int, deadlineMs: Int?,
                budgetVerifierCalls: Int?, budgetReflectorCalls: Int? = nil, targetScore: Double? = nil,
                saveCandidates: Bool) {
        self.strategy = strategy
        self.strategyOptions = strategyOptions
        self.model = model
        self.models = models
        self.verifiers = verifiers
        self.reflector = reflector
        self.sampler = sampler
        self.samplerOptions = samplerOptions
        self.seed = seed
        self.steps = steps
        self.guidance = guidance
        self.negativePrompt = negativePrompt
        self.budgetNFE = budgetNFE
        self.deadlineMs = deadlineMs
        self.budgetVerifierCalls = budgetVerifierCalls
        self.budgetReflectorCalls = budgetReflectorCalls
        self.targetScore = targetScore
        self.saveCandidates = saveCandidates
    }

    enum CodingKeys: String, CodingKey {
        case strategy, model, models, verifiers, reflector, sampler, seed, steps, guidance, n
        case strategyOptions = "strategy_options"
        case samplerOptions = "sampler_options"
        case negativePrompt = "negative_prompt"
        case budgetNFE = "budget_nfe"
        case deadlineMs = "deadline_ms"
        case budgetVerifierCalls = "budget_verifier_calls"
        case budgetReflectorCalls = "budget_reflector_calls"
        case targetScore = "target_score"
        case saveCandidates = "save_candidates"
    }

    /// Reads plans of every manifest version: version 1 plans have no strategy options
    /// (best-of-n's `n` was a top-level key) and a single model.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        strategy = try c.decode(String.self, forKey: .strategy)
        model = try c.decode(String.self, forKey: .model)
        models = try c.decodeIfPresent([String: String].self, forKey: .models) ?? ["base": model]
        if let o = try c.decodeIfPresent(StrategyOptions.self, forKey: .strategyOptions) {
            strategyOptions = o
        } else if let n = try c.decodeIfPresent(Int.self, forKey: .n), strategy == "best-of-n" {
            strategyOptions = StrategyOptions(["n": .number(Double(n))])
        } else {
            strategyOptions = StrategyOptions()
        }
        verifiers = try c.decode([String].self, forKey: .verifiers)
        reflector = try c.decodeIfPresent(String.self, forKey: .reflector)
        sampler = try c.decodeIfPresent(String.self, forKey: .sampler)
        samplerOptions = try c.decodeIfPresent([String: PluginOption].self, forKey: .samplerOptions) ?? [:]
        seed = try c.decode(UInt64.self, forKey: .seed)
        steps = try c.decode(Int.self, forKey: .steps)
        guidance = try c.decode(Double.self, forKey: .guidance)
        negativePrompt = try c.decodeIfPresent(String.self, forKey: .negativePrompt)
        budgetNFE = try c.decode(Int.self, forKey: .budgetNFE)
        deadlineMs = try c.decodeIfPresent(Int.self, forKey: .deadlineMs)
        budgetVerifierCalls = try c.decodeIfPresent(Int.self, forKey: .budgetVerifierCalls)
        budgetReflectorCalls = try c.decodeIfPresent(Int.self, forKey: .budgetReflectorCalls)
        targetScore = try c.decodeIfPresent(Double.self, forKey: .targetScore)
        saveCandidates = try c.decodeIfPresent(Bool.self, forKey: .saveCandidates) ?? false
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(strategy, forKey: .strategy)
        try c.encode(strategyOptions, forKey: .strategyOptions)
        try c.encode(model, forKey: .model)
        try c.encode(models, forKey: .models)
        try c.encode(verifiers, forKey: .verifiers)
        try c.encodeIfPresent(reflector, forKey: .reflector)
        try c.encodeIfPresent(sampler, forKey: .sampler)
        try c.encode(samplerOptions, forKey: .samplerOptions)
        try c.encode(seed, forKey: .seed)
        try c.encode(steps, forKey: .steps)
        try c.encode(guidance, forKey: .guidance)
        try c.encodeIfPresent(negativePrompt, forKey: .negativePrompt)
        try c.encode(budgetNFE, forKey: .budgetNFE)
        try c.encodeIfPresent(deadlineMs, forKey: .deadlineMs)
        try c.encodeIfPresent(budgetVerifierCalls, forKey: .budgetVerifierCalls)
        try c.encodeIfPresent(budgetReflectorCalls, forKey: .budgetReflectorCalls)
        try c.encodeIfPresent(targetScore, forKey: .targetScore)
        try c.encode(saveCandidates, forKey: .saveCandidates)
    }

    /// The plan as job options again (for replay through `Submit`).
    public var asOptionValues: [String: OptionValue] {
        func value(_ o: PluginOption) -> OptionValue {
            switch o { case .string(let s): return .string(s); case .number(let d): return .double(d) }
        }
        var o: [String: OptionValue] = [
            "strategy": .string(strategy), "model": .string(model), "seed": .unsigned(seed),
            "steps": .unsigned(UInt64(steps)), "guidance": .double(guidance),
            "budget_nfe": .unsigned(UInt64(budgetNFE)), "save_candidates": .bool(saveCandidates),
        ]
        if !strategyOptions.values.isEmpty { o["strategy_options"] = .dictionary(strategyOptions.values.mapValues(value)) }
        let others = models.filter { $0.key != "base" }
        if !others.isEmpty { o["models"] = .dictionary(others.mapValues { .string($0) }) }
        if !verifiers.isEmpty { o["verifiers"] = .strings(verifiers) }
        if let reflector { o["reflector"] = .string(reflector) }
        if let sampler { o["sampler"] = .string(sampler) }
        if !samplerOptions.isEmpty { o["sampler_options"] = .dictionary(samplerOptions.mapValues(value)) }
        if let negativePrompt { o["negative_prompt"] = .string(negativePrompt) }
        if let deadlineMs { o["deadline_ms"] = .unsigned(UInt64(deadlineMs)) }
        if let budgetVerifierCalls { o["budget_verifier_calls"] = .unsigned(UInt64(budgetVerifierCalls)) }
        if let budgetReflectorCalls { o["budget_reflector_calls"] = .unsigned(UInt64(budgetReflectorCalls)) }
        if let targetScore { o["target_score"] = .double(targetScore) }
        return o
    }
}

/// What the daemon uses when a client leaves a key out.
public struct JobDefaults: Sendable {
    /// Preferred model ids, first loaded one wins; else the first loaded model by id.
    public var models: [String]
    /// Preferred verifier ids, first loaded one wins (one verifier, never an ensemble);
    /// else the first loaded verifier when the strategy needs one.
    public var verifiers: [String]
    public var strategy: String
    public init(models: [String] = ["shapes"], verifiers: [String] = ["shapes-checker"], strategy: String = "single") {
        self.models = models
        self.verifiers = verifiers
        self.strategy = strategy
    }
}
