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
    public var name: String { "best-of-n" }
    public var needsVerifier: Bool { true }
    public var defaultN: Int? { 4 }
    public func plannedNFE(n: Int, nfePerCandidate: Int) -> Int { n * nfePerCandidate }

    public func run(_ context: JobContext) throws {
        var next = 0
        let n = context.plan.n
        while next < n {
            let wave: Int
            if let cost = context.nfePerCandidate, cost > 0 {
                let affordable = context.meter.nfeLeft / cost
                if affordable == 0 {
                    // Not one more full candidate fits: stop here, on budget.
                    try context.meter.reserveNFE(cost)
                    return
                }
                wave = min(n - next, affordable, maxWave)
            } else {
                wave = 1
            }
            try context.generate(indices: Array(next..<(next + wave)))
            next += wave
        }
    }
}

/// The strategies this build ships.
public enum BuiltinStrategies {
    public static var catalog: StrategyCatalog {
        StrategyCatalog([SingleStrategy(), BestOfNStrategy()])
    }
}
