import AssayCore

/// Random search (Ma et al. 2025): n independent noises, each sampled fully, the verifier
/// (or the verifier ensemble, by mean rank) keeps the best.
///
/// Candidates run in waves, each wave one batch through the model per step. A wave holds
/// as many of the remaining candidates as the budget can still pay for in full, so a
/// budget smaller than n candidates yields fewer *finished* candidates instead of n
/// half-denoised ones. With a plugin sampler the cost per candidate is unknown until one
/// has run, so the first wave is a single candidate.
public struct BestOfNStrategy: Strategy {
    /// Largest wave: bounds memory for large n; waves beyond it still batch fully.
    public let maxWave: Int
    public init(maxWave: Int = 64) { self.maxWave = maxWave }
    /// Wave size when the job has a target_score.
    public static let anytimeWave = 4
    public var name: String { "best-of-n" }
    public var summary: String { "random search: n independent samples, the verifier keeps the best" }
    public var needsVerifier: Bool { true }
    public var options: [StrategyOption] {
        [.count("n", 1...JobOptions.Limits.maxN, default: 4, "number of independent samples")]
    }
    public var sizeOption: String? { "n" }
    public func plannedNFE(_ options: StrategyOptions, cost: SearchCost) -> Int { options.int("n") * cost.perSample }

    public func run(_ kit: SearchToolkit) throws {
        var next = 0
        let n = kit.options.int("n")
        while next < n {
            let wave: Int
            if let cost = kit.nfePerSample, cost > 0 {
                let affordable = kit.meter.nfeLeft / cost
                if affordable == 0 {
                    // Not one more full candidate fits: stop here, on budget.
                    throw kit.meter.outOfBudget(needing: cost)
                }
                // With a target the search is anytime: small waves, so it stops soon after
                // a candidate reaches the target instead of at the end of a big batch.
                wave = min(n - next, affordable, kit.plan.targetScore == nil ? maxWave : BestOfNStrategy.anytimeWave)
            } else {
                wave = 1
            }
            try kit.finish(try kit.integrate(try kit.roots(wave), to: 0))
            next += wave
        }
    }
}

/// The strategies this build ships.
public enum BuiltinStrategies {
    public static var catalog: StrategyCatalog {
        StrategyCatalog([SingleStrategy(), BestOfNStrategy(), ZeroOrderStrategy(), PathsStrategy(),
                         HalvingStrategy(), ParticlesStrategy(), CoFusionStrategy(), ReflectStrategy()])
    }
}
