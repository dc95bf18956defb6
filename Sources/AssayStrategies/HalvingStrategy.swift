import AssayCore

/// Successive halving over the sampling trajectory (beyond the papers): start `n`
/// candidates; at `rounds` checkpoints evenly spaced over the schedule, score every live
/// candidate's x0-prediction (in its own pool per checkpoint) and keep the top `keep`
/// fraction. A survivor's probe costs no extra NFE: its velocity is the next Euler step's,
/// which the toolkit reuses; a dropped candidate's probe costs one evaluation. The budget freed by dropping candidates early buys more starting
/// candidates: with a budget and no `n`, n grows until the plan fills the budget.
///
/// Defaults (one checkpoint halfway, keep a fifth) come from tools/probe_study.py
/// (docs/probe-study.txt): on the shapes model, keeping the 1 of 8 candidates whose
/// x0-prediction halfway scores best under the checker gives a result the judge passes as
/// often as the best of all 8 finished (0.970 on 33 prompts; 0.909 for 2 of 8 at 30 % of
/// the steps), so half of every dropped candidate's cost is saved.
public struct HalvingStrategy: Strategy {
    public init() {}
    public var name: String { "halving" }
    public var summary: String { "successive halving: many candidates, x0-predictions scored at checkpoints, the best fraction survives" }
    public var needsVerifier: Bool { true }
    public var options: [StrategyOption] {
        [.count("n", 1...JobOptions.Limits.maxN, default: 8, "candidates at the start"),
         .count("rounds", 1...16, default: 1, "checkpoints where the weakest are dropped"),
         .number("keep", 0.01...1, default: 0.2, "fraction kept at each checkpoint (at least one)"),
         .number("first", 0.05...0.95, default: 0.5, "where the first checkpoint is, as a fraction of the steps; the others are evenly spaced after it")]
    }
    public var sizeOption: String? { "n" }

    /// Step indices of the checkpoints (strictly inside 1 ..< steps, increasing).
    static func checkpoints(_ o: StrategyOptions, steps: Int) -> [Int] {
        let r = o.int("rounds"), first = o.double("first")
        var out: [Int] = []
        for i in 0..<r {
            let frac = first + (1 - first) * Double(i) / Double(r)
            let k = min(steps - 1, max(1, Int((frac * Double(steps)).rounded())))
            if out.last.map({ k > $0 }) ?? true { out.append(k) }
        }
        return steps > 1 ? out : []
    }

    static func survivors(_ alive: Int, keep: Double) -> Int { max(1, Int((Double(alive) * keep).rounded(.down))) }

    public func plannedNFE(_ o: StrategyOptions, cost: SearchCost) -> Int {
        var alive = o.int("n"), last = 0, total = 0
        for k in HalvingStrategy.checkpoints(o, steps: cost.steps) {
            total += alive * (k - last) * cost.perEvaluation * cost.samplerFactor
            let kept = HalvingStrategy.survivors(alive, keep: o.double("keep"))
            total += (alive - kept) * cost.perEvaluation // the dropped candidates' probes
            alive = kept
            last = k
        }
        return total + alive * (cost.steps - last) * cost.perEvaluation * cost.samplerFactor
    }

    public func run(_ kit: SearchToolkit) throws {
        var o = kit.options
        let times = kit.times
        // A budget below the plan (n given explicitly) starts as many as the budget pays for.
        while o.int("n") > 1 && plannedNFE(o, cost: kit.cost) > kit.meter.nfeLeft {
            o.values["n"] = .number(Double(o.int("n") - 1))
        }
        var live = try kit.roots(o.int("n"))
        for (i, k) in HalvingStrategy.checkpoints(o, steps: kit.cost.steps).enumerated() {
            live = try kit.integrate(live, to: times[k])
            let probes = try kit.predictX0(&live)
            let scored = try kit.score(probes, pool: "checkpoint-\(i + 1)")
            let keep = Set(kit.order(scored).prefix(HalvingStrategy.survivors(live.count, keep: o.double("keep"))))
            live = live.rows((0..<live.count).filter { keep.contains(probes.nodes[$0]) })
        }
        try kit.finish(try kit.integrate(live, to: 0))
    }
}
