import AssayCore

/// Search over paths (Ma et al. 2025, §3.2 and Table 6): `n` noises are integrated to the
/// search start t = `sigma`; then, each round, every path gets `m` forward noisings from t
/// to t + `forward`, each is integrated back down to t + forward - `backward`, and the
/// clean x-prediction after one extra evaluation is scored; the top `n` continue. When a
/// round reaches t = 0 its samples are the finished candidates (best-of the last round).
/// `backward` > `forward` makes every round end lower than it started, so the search ends.
/// Times are Assay's (t = 1 noise, t = 0 data); the defaults are the paper's
/// (σ = 0.11, Δf = 0.78, Δb = 0.81). `length` is the paper's L: integration steps per
/// backward segment (0: the model's own schedule on the segment).
///
/// When the budget cannot pay for the next round, the current paths are finished by
/// integrating them to 0 and the job stops on `budget`, so a search always ends with
/// candidates if one round fits. The paper's defaults are long rounds: on a 20-step model
/// with guidance a full search costs about 350 NFEs at the smallest size (m = 1), so below
/// that `paths` is cut short (see docs/search-bench.txt).
public struct PathsStrategy: Strategy {
    public init() {}
    public var name: String { "paths" }
    public var summary: String { "search over paths: re-noise good intermediate states forward and denoise again, keep the best" }
    public var needsVerifier: Bool { true }
    public var options: [StrategyOption] {
        [.count("n", 1...256, default: 2, "paths kept after each round (the paper's N)"),
         .count("m", 1...256, default: 2, "forward noisings per path each round (M)"),
         .number("sigma", 0.001...0.999, default: 0.11, "time the search starts at (σ; 1 = noise, 0 = data)"),
         .number("forward", 0.001...0.999, default: 0.78, "forward noising length per round (Δf)"),
         .number("backward", 0.001...1, default: 0.81, "ODE length per round (Δb); must exceed forward"),
         .count("length", 0...1000, default: 0, "integration steps per backward segment (L); 0 = the model's schedule")]
    }
    public var sizeOption: String? { "m" }

    public func validate(_ o: StrategyOptions, cost: SearchCost) throws {
        let f = o.double("forward"), b = o.double("backward")
        guard b > f else {
            throw AssayError.invalidArgument("strategy 'paths' needs backward > forward (Δb > Δf) so that every round ends lower than it started; got backward \(b), forward \(f): raise backward or lower forward")
        }
    }

    /// The rounds' (from, up-to, down-to) times starting at sigma.
    static func rounds(_ o: StrategyOptions) -> [(t: Float, up: Float, down: Float)] {
        var out: [(Float, Float, Float)] = []
        var t = Float(o.double("sigma"))
        while t > 0 {
            let up = min(1, t + Float(o.double("forward")))
            let down = max(0, up - Float(o.double("backward")))
            out.append((t, up, down))
            t = down
        }
        return out
    }

    public func plannedNFE(_ o: StrategyOptions, cost: SearchCost) -> Int {
        let n = o.int("n"), m = o.int("m"), length = o.int("length")
        var total = n * cost.segment(from: 1, to: Float(o.double("sigma")))
        for r in PathsStrategy.rounds(o) {
            total += n * m * cost.segment(from: r.up, to: r.down, steps: length == 0 ? nil : length)
            if r.down > 0 { total += n * m * cost.perEvaluation }
        }
        return total
    }

    public func run(_ kit: SearchToolkit) throws {
        let o = kit.options
        let n = o.int("n"), m = o.int("m"), length = o.int("length")
        let steps = length == 0 ? nil : length
        // A budget below the plan (a size given explicitly) starts as many paths as it can finish.
        let start = min(n, max(1, kit.meter.nfeLeft / max(1, kit.cost.perSample)))
        var paths = try kit.integrate(try kit.roots(start), to: Float(o.double("sigma")))
        for r in PathsStrategy.rounds(o) {
            let roundCost = paths.count * m * (kit.cost.segment(from: r.up, to: r.down, steps: steps)
                                                + (r.down > 0 ? kit.cost.perEvaluation : 0))
            if kit.meter.nfeLeft < roundCost {
                // Out of budget for a full round: finish as many of the paths as it pays for
                // (best first: `paths` is in the order of the last scoring).
                let each = max(1, kit.cost.segment(from: paths.t, to: 0))
                let affordable = min(paths.count, kit.meter.nfeLeft / each)
                if affordable > 0 { try kit.finish(try kit.integrate(paths.rows(Array(0..<affordable)), to: 0)) }
                throw kit.meter.outOfBudget(needing: roundCost)
            }
            let noised = kit.renoise(paths, to: r.up, copies: m)
            var back = try kit.integrate(noised, to: r.down, steps: steps)
            if r.down == 0 {
                try kit.finish(back)
                return
            }
            let probes = try kit.predictX0(&back)
            let scored = try kit.score(probes, pool: "paths@\(r.down)")
            // The top n continue, best first.
            let row = Dictionary(uniqueKeysWithValues: probes.nodes.enumerated().map { ($1, $0) })
            paths = back.rows(kit.order(scored).prefix(n).map { row[$0]! })
        }
        // sigma reached 0 without a round (cannot happen: sigma > 0), or rounds ended above 0.
        if paths.t > 0 { try kit.finish(try kit.integrate(paths, to: 0)) }
    }
}
