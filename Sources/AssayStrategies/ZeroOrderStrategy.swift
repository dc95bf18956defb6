import AssayCore

/// Zero-order search (Ma et al. 2025, §3.2): start from a pivot noise; each iteration
/// samples `n` neighbours of the pivot (random directions at cosine similarity
/// `similarity`, equal norm, as tt-scale-flux does, but keyed by the search tree so it
/// replays), denoises and scores them, and the best neighbour becomes the pivot if it beats
/// the pivot's own image. Rule when none does: the pivot is kept (tt-scale-flux rejects the
/// round the same way), and the next iteration draws fresh neighbours of the same pivot.
public struct ZeroOrderStrategy: Strategy {
    public init() {}
    public var name: String { "zero-order" }
    public var summary: String { "zero-order search: neighbours of a pivot noise, the best one becomes the pivot" }
    public var needsVerifier: Bool { true }
    public var options: [StrategyOption] {
        [.count("n", 1...256, default: 4, "neighbours per iteration"),
         .count("iterations", 0...1024, default: 3, "iterations after the first pivot sample"),
         .number("similarity", 0...0.9999, default: 0.95, "cosine similarity of a neighbour to its pivot")]
    }
    public var sizeOption: String? { "iterations" }
    /// Sized to a budget, the last iteration may have fewer than n neighbours: every sample
    /// the budget pays for is used (n = 4 at 160 NFEs of 40 gives one iteration of 3).
    public func size(toFill budget: Int, _ options: StrategyOptions, cost: SearchCost) -> Int? {
        let samples = budget / max(1, cost.perSample), n = options.int("n")
        return samples <= 1 ? 0 : (samples - 1 + n - 1) / n
    }
    public func plannedNFE(_ options: StrategyOptions, cost: SearchCost) -> Int {
        (1 + options.int("iterations") * options.int("n")) * cost.perSample
    }

    public func run(_ kit: SearchToolkit) throws {
        let n = kit.options.int("n"), similarity = kit.options.double("similarity")
        var pivotNoise = try kit.roots(1)
        guard var pivot = try kit.finish(try kit.integrate(pivotNoise, to: 0)).first?.node else { return }
        for _ in 0..<kit.options.int("iterations") {
            let perSample = kit.nfePerSample ?? 1
            let affordable = min(n, kit.meter.nfeLeft / max(1, perSample))
            if affordable == 0 {
                throw kit.meter.outOfBudget(needing: perSample)
            }
            let neighbours = kit.neighbours(of: pivotNoise, row: 0, count: affordable, similarity: similarity)
            let finished = try kit.finish(try kit.integrate(neighbours, to: 0))
            guard let challenger = kit.order(finished.map(\.node)).first else { continue }
            if kit.beats(challenger, pivot) {
                pivot = challenger
                // The challenger's noise is the root-most ancestor at t = 1 on its path.
                let noiseNode = kit.path(to: challenger).last { kit.nodes[$0].op == .neighbour }!
                pivotNoise = neighbours.rows(nodes: [noiseNode])
            }
        }
    }
}
