import AssayCore

/// SF2's Co-Fusion with early selection (§3.2, Algorithm 1) and visual reflection (§3.3):
/// the base model runs the first `k` of its steps for `n` candidates and keeps every
/// x_{t_k}; a fast path finishes each one cheaply into a sketch (the `draft` model entered
/// at its step z, or the job's sampler plugin, e.g. the DBCache caching sampler); the
/// verifier ranks the sketches in their own pool; the best `m` continue from their stored
/// x_{t_k} with the base model to t = 0, and the best finished image is the result.
///
/// Why it pays: the layout of a flow model's image is settled early (tools/shapes/
/// TURBO_CARD.md measures how often a sketch from x_{t_k} keeps the base result's layout),
/// so a cheap finish is enough to tell good trajectories from bad, and only the chosen
/// ones pay for the base model's remaining steps.
///
/// Visual reflection (`reflect` on): for each selected trajectory the layout preview
/// x̂ = x_{t_k} − t_k v(x_{t_k}) is decoded and shown with its sketch to the job's
/// reflector (ext/draft/reflector-views.h); its negative prompt y' replaces the negative
/// condition of that trajectory only (Eq. 14: v = v(y') + w (v(y) − v(y'))). Without a
/// negative prompt from the reflector the trajectory continues unchanged.
///
/// Under a budget too small for the plan it starts fewer sketches; when a continuation
/// cannot be paid it finishes the best sketch instead and stops on budget; each change is
/// a manifest note.
public struct CoFusionStrategy: Strategy {
    public init() {}
    public var name: String { "cofusion" }
    public var summary: String { "SF2 Co-Fusion: base model for k steps, cheap sketches by a fast path, the best sketches' trajectories finished by the base model" }
    public var needsVerifier: Bool { true }
    public var roles: [StrategyRole] {
        [.base, StrategyRole("draft", "the fast model that sketches from x_{t_k} (same latent space, e.g. shapes-turbo)",
                             neededWhen: (option: "fast", value: "model"))]
    }
    public var options: [StrategyOption] {
        [.count("n", 1...JobOptions.Limits.maxN, default: 8, "candidates (sketches)"),
         .count("k", 1...1000, default: 6, "base-model steps before the sketches (t_k = the schedule's time at step k)"),
         .choice("fast", ["model", "sampler"], default: "model", "the fast path: the 'draft' model role, or the job's sampler plugin on the base model"),
         .count("draft_steps", 1...64, default: 4, "the draft model's steps for a whole 1 → 0 path (its schedule; z counts in it)"),
         .choice("align", ["auto", "fixed"], default: "auto", "auto: enter the draft at the step z whose time is nearest t_k; fixed: at z"),
         .count("z", 0...63, default: 1, "the draft's entry step with align=fixed: it runs draft_steps − z steps from t_k"),
         .count("m", 1...JobOptions.Limits.maxN, default: 1, "best sketches whose trajectories the base model finishes"),
         .choice("reflect", ["off", "on"], default: "off", "visual reflection: the job's reflector sees preview and sketch and writes a negative prompt for the continuation")]
    }
    public var sizeOption: String? { "n" }

    public func validate(_ o: StrategyOptions, cost: SearchCost) throws {
        guard o.int("k") < cost.steps else {
            throw AssayError.invalidArgument("strategy option 'k' of 'cofusion' is \(o.int("k")); it must be below the job's \(cost.steps) steps (the base model sketches from t_k)")
        }
        guard o.int("m") <= o.int("n") else {
            throw AssayError.invalidArgument("strategy option 'm' of 'cofusion' is \(o.int("m")); it cannot exceed n = \(o.int("n")) (the continuations are chosen among the sketches)")
        }
        if o.string("align") == "fixed" && o.int("z") >= o.int("draft_steps") {
            throw AssayError.invalidArgument("strategy option 'z' of 'cofusion' is \(o.int("z")); with draft_steps \(o.int("draft_steps")) it must be at most \(o.int("draft_steps") - 1) (the draft needs a step left)")
        }
    }

    public func validate(_ o: StrategyOptions, resources: StrategyResources) throws {
        if o.string("fast") == "sampler" && resources.sampler == nil {
            throw AssayError.invalidArgument("strategy 'cofusion' with fast=sampler sketches with the job's sampler plugin: pass 'sampler' (e.g. dbcache)")
        }
        if o.string("reflect") == "on" && resources.reflector == nil {
            throw AssayError.invalidArgument("strategy 'cofusion' with reflect=on needs a reflector: pass 'reflector' (e.g. shapes-reflector)")
        }
    }

    /// Draft steps from t_k: the draft enters at its step z and runs the rest.
    static func sketchSteps(_ o: StrategyOptions, tk: Float) -> Int {
        let d = o.int("draft_steps")
        let z = o.string("align") == "fixed" ? o.int("z") : min(d - 1, max(0, Int((Double(d) * (1 - Double(tk))).rounded())))
        return d - z
    }

    struct Costs {
        var prefix: Int, sketch: Int, continuation: Int, preview: Int
        func plan(n: Int, m: Int) -> Int { n * (prefix + sketch) + m * (continuation + preview) }
    }

    static func costs(_ o: StrategyOptions, cost: SearchCost) -> Costs {
        let k = o.int("k"), tk = cost.times[k]
        let pe = cost.perEvaluation
        // The draft runs unguided (a distilled student); the sampler's cost is its own.
        let sketch = o.string("fast") == "model" ? sketchSteps(o, tk: tk) : cost.segment(from: tk, to: 0)
        let continuation = (cost.steps - k) * pe
        // A preview is free when the continuation reuses its velocity; with a reflected
        // negative prompt the first continuation step is paid again.
        return Costs(prefix: k * pe, sketch: sketch, continuation: continuation,
                     preview: o.string("reflect") == "on" ? pe : 0)
    }

    public func plannedNFE(_ o: StrategyOptions, cost: SearchCost) -> Int {
        CoFusionStrategy.costs(o, cost: cost).plan(n: o.int("n"), m: o.int("m"))
    }

    public func run(_ kit: SearchToolkit) throws {
        let o = kit.options
        let k = o.int("k"), tk = kit.times[k]
        var n = o.int("n")
        let m0 = o.int("m")
        var c = CoFusionStrategy.costs(o, cost: kit.cost)
        if o.string("fast") == "sampler", let per = kit.nfePerSample { c.sketch = per * (kit.cost.steps - k) / kit.cost.steps }
        // Fewer sketches when the plan does not fit (at least one continuation kept).
        let left = kit.meter.nfeLeft
        if c.plan(n: n, m: min(m0, n)) > left {
            let was = n
            while n > 1 && c.plan(n: n, m: min(m0, n)) > left { n -= 1 }
            kit.note("budget \(kit.plan.budgetNFE) NFEs pays for \(n) of the \(was) planned sketches")
        }
        let roots = try kit.roots(n)
        var xk = try kit.integrate(roots, to: tk, sampler: false)
        // The sketches: x_{t_k} finished cheaply.
        let sketch: LatentBatch
        if o.string("fast") == "model" {
            let h = try kit.handOver(xk, to: "draft")
            sketch = try kit.integrate(h, to: 0, steps: CoFusionStrategy.sketchSteps(o, tk: tk))
        } else {
            sketch = try kit.integrate(xk, to: 0, sampler: true)
        }
        let scored = try kit.score(sketch, pool: "sketch")
        let ranked = kit.order(scored)
        // The best m trajectories, as many as the budget can finish.
        var m = min(m0, n)
        let each = c.continuation + c.preview
        while m > 0 && m * each > kit.meter.nfeLeft { m -= 1 }
        if m < min(m0, n) {
            kit.note(m == 0 ? "no continuation fits the budget left (\(kit.meter.nfeLeft) NFEs, one costs \(each)): the best sketch is the result"
                            : "the budget left pays for \(m) of \(min(m0, n)) continuations")
        }
        if m == 0 {
            let best = sketch.nodes.firstIndex(of: ranked[0])!
            try kit.finish(sketch.rows([best]))
            throw kit.meter.outOfBudget(needing: each)
        }
        let rows = ranked.prefix(m).map { sketch.nodes.firstIndex(of: $0)! }
        var chosen = xk.rows(rows)
        xk = chosen
        if o.string("reflect") == "on" {
            let preview = try kit.predictX0(&chosen)
            try kit.decode(preview)
            let views = rows.enumerated().map { [preview.nodes[$0.offset], sketch.nodes[$0.element]] }
            let out = try kit.reflect(views: views, names: ["preview", "sketch"], on: xk.nodes)
            for (r, text) in out.enumerated() {
                guard let neg = CoFusionStrategy.negativePrompt(text) else { continue }
                let base = kit.conditions[chosen.conditions[r]]
                let cond = kit.condition(Condition(prompt: base.prompt, negativePrompt: neg, guidance: base.guidance))
                chosen = kit.withCondition(chosen, rows: [r], condition: cond)
            }
        }
        try kit.finish(try kit.integrate(chosen, to: 0, sampler: false))
    }

    /// The reflector's negative prompt, when it wrote one (ext/reflector.h's JSON object).
    public static func negativePrompt(_ json: String) -> String? { Reflection(json: json).negativePrompt }
}
