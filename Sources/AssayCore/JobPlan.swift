import AssayPluginHost

/// A job's options with every default applied: what actually runs, and what a manifest
/// records so that submitting the same plan again reproduces the result bit for bit.
public struct JobPlan: Codable, Sendable, Equatable {
    public var strategy: String
    public var model: String
    public var verifiers: [String]
    public var sampler: String?
    public var samplerOptions: [String: PluginOption]
    public var seed: UInt64
    public var steps: Int
    public var guidance: Double
    public var negativePrompt: String?
    public var n: Int
    public var budgetNFE: Int
    public var deadlineMs: Int?
    public var budgetVerifierCalls: Int?
    public var saveCandidates: Bool

    enum CodingKeys: String, CodingKey {
        case strategy, model, verifiers, sampler, seed, steps, guidance, n
        case samplerOptions = "sampler_options"
        case negativePrompt = "negative_prompt"
        case budgetNFE = "budget_nfe"
        case deadlineMs = "deadline_ms"
        case budgetVerifierCalls = "budget_verifier_calls"
        case saveCandidates = "save_candidates"
    }

    /// The plan as job options again (for replay through `Submit`).
    public var asOptionValues: [String: OptionValue] {
        var o: [String: OptionValue] = [
            "strategy": .string(strategy), "model": .string(model), "seed": .unsigned(seed),
            "steps": .unsigned(UInt64(steps)), "guidance": .double(guidance), "n": .unsigned(UInt64(n)),
            "budget_nfe": .unsigned(UInt64(budgetNFE)), "save_candidates": .bool(saveCandidates),
        ]
        if !verifiers.isEmpty { o["verifiers"] = .strings(verifiers) }
        if let sampler { o["sampler"] = .string(sampler) }
        if !samplerOptions.isEmpty {
            o["sampler_options"] = .dictionary(samplerOptions.mapValues {
                switch $0 { case .string(let s): return .string(s); case .number(let d): return .double(d) }
            })
        }
        if let negativePrompt { o["negative_prompt"] = .string(negativePrompt) }
        if let deadlineMs { o["deadline_ms"] = .unsigned(UInt64(deadlineMs)) }
        if let budgetVerifierCalls { o["budget_verifier_calls"] = .unsigned(UInt64(budgetVerifierCalls)) }
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
