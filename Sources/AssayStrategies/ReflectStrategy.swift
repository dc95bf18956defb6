import AssayCore

/// ReflectionFlow (Zhuo et al. 2025): scaling at the noise, prompt and reflection levels in
/// rounds. Round 0 samples `n` images; the `branches` best start one lineage each. Each
/// later round asks the job's reflector what is wrong with each lineage's latest image (it
/// sees that lineage's earlier reflections, in order), makes `per_branch` new candidates
/// from it, and the best of them becomes the lineage's latest image (a lineage always moves
/// on, as the paper's chains do; nothing is lost, since the result is the best of all):
///
/// - `levels = noise`: new seeds with the prompt as it is (best-of-n spread over rounds; no
///   reflector call; the baseline the other levels are measured against);
/// - `noise+prompt`: new seeds with the reflector's revised prompt, and its negative prompt
///   when the model is guided;
/// - `noise+prompt+reflection`: the flawed image itself is corrected, by one of two
///   correctors (option `corrector`):
///   - `training-free` (any model): as SDEdit does it, the flawed latent is re-noised to
///     t = `strength` and regenerated from there with the revised and negative prompts, so
///     what was right in it (layout, colours) tends to stay;
///   - `trained`: the job's `corrector` role, a model trained to take (flawed image,
///     reflection) (ext/draft/model-reference.h; shapes-corrector), generates from fresh
///     noise conditioned on the job's prompt, the reflection's feedback as its instruction
///     and the flawed image as its reference (guidance pushes towards the texts; both
///     branches see the image). The prompt stays the job's: that is what the corrector
///     was trained with, and the feedback already says what to change.
///
/// The result is the best image over all rounds (under the verifiers, which judge the
/// job's own prompt, never the revised one). NFEs, verifier and reflector calls are all
/// metered; `target_score` ends the search at the first image that reaches it.
public struct ReflectStrategy: Strategy {
    public init() {}
    public var name: String { "reflect" }
    public var summary: String { "ReflectionFlow: rounds of generate, verify, reflect, correct; noise, prompt and reflection levels" }
    public var needsVerifier: Bool { true }
    public var roles: [StrategyRole] {
        [.base, StrategyRole("corrector", "a model that takes the flawed image and the reflection (ext/draft/model-reference.h, e.g. shapes-corrector)",
                             use: .correctsImages, neededWhen: (option: "corrector", value: "trained"))]
    }
    public static let levels = ["noise", "noise+prompt", "noise+prompt+reflection"]
    public var options: [StrategyOption] {
        [.count("n", 1...JobOptions.Limits.maxN, default: 4, "images in the first round"),
         .count("rounds", 0...256, default: 3, "rounds of reflection after the first"),
         .count("branches", 1...64, default: 2, "best images so far that are reflected on in each round"),
         .count("per_branch", 1...64, default: 2, "new candidates made from each branch"),
         .choice("levels", ReflectStrategy.levels, default: "noise+prompt+reflection",
                 "what a round scales: new noise; plus the reflector's prompts; plus correcting the flawed image itself"),
         .number("strength", 0.05...0.95, default: 0.95,
                 "reflection level, training-free corrector: the time t the flawed image is re-noised to before it is regenerated (1 = from pure noise; 0.95 measured best on the shapes model, docs/reflect-bench-strength.txt)"),
         .choice("corrector", ["training-free", "trained"], default: "training-free",
                 "reflection level: re-noise and regenerate with the job's model (any model), or the 'corrector' model role (trained on flawed image + reflection)")]
    }
    public var sizeOption: String? { "rounds" }

    public func validate(_ o: StrategyOptions, resources: StrategyResources) throws {
        if o.string("levels") != "noise" && resources.reflector == nil {
            throw AssayError.invalidArgument("strategy 'reflect' with levels=\(o.string("levels")) needs a reflector: pass 'reflector' (e.g. shapes-reflector), or use levels=noise")
        }
        if o.string("corrector") == "trained" && o.string("levels") != "noise+prompt+reflection" {
            throw AssayError.invalidArgument("strategy 'reflect' with corrector=trained corrects flawed images, which only levels=noise+prompt+reflection does (levels is \(o.string("levels")))")
        }
        if let m = resources.models["corrector"], o.string("corrector") != "trained" {
            throw AssayError.invalidArgument("models names '\(m)' as the corrector, but strategy option corrector is training-free: pass corrector=trained to use it")
        }
    }

    /// NFEs of one new candidate.
    static func perCandidate(_ o: StrategyOptions, cost: SearchCost) -> Int {
        guard o.string("levels") == "noise+prompt+reflection" else { return cost.perSample }
        // The corrector role integrates with the built-in Euler integrator (a sampler
        // plugin runs on the base role only).
        return o.string("corrector") == "trained" ? cost.steps * cost.evaluationsPerSample
            : cost.segment(from: Float(o.double("strength")), to: 0)
    }

    public func plannedNFE(_ o: StrategyOptions, cost: SearchCost) -> Int {
        o.int("n") * cost.perSample
            + o.int("rounds") * o.int("branches") * o.int("per_branch") * ReflectStrategy.perCandidate(o, cost: cost)
    }

    public func run(_ kit: SearchToolkit) throws {
        let o = kit.options
        let levels = o.string("levels")
        let usePrompt = levels != "noise", correct = levels == "noise+prompt+reflection"
        let trained = correct && o.string("corrector") == "trained"
        let strength = Float(o.double("strength"))
        let base = kit.conditions[0]
        // Where every finished image lives (its batch and row), to correct it later; and the
        // reflections of each image's lineage, oldest first.
        var finished: [Int: (LatentBatch, Int)] = [:]
        var history: [Int: [String]] = [:]

        func keep(_ b: LatentBatch, lineage: [String]) throws {
            let made = try kit.finish(b)
            for (row, c) in made.enumerated() {
                finished[c.node] = (b, row)
                history[c.node] = lineage
            }
        }

        var n = o.int("n")
        let perSample = kit.nfePerSample ?? kit.cost.perSample
        if n * perSample > kit.meter.nfeLeft {
            let fit = max(1, kit.meter.nfeLeft / max(1, perSample))
            kit.note("the budget (\(kit.meter.nfeLeft) NFEs) pays for \(fit) of the \(n) first-round images")
            n = fit
        }
        let first = try kit.integrate(try kit.roots(n), to: 0)
        try keep(first, lineage: [])
        var heads = Array(kit.order(first.nodes).prefix(o.int("branches")))
        let per = ReflectStrategy.perCandidate(o, cost: kit.cost)
        for round in 1...max(1, o.int("rounds")) where o.int("rounds") > 0 {
            let needed = heads.count * o.int("per_branch") * per
            if needed > kit.meter.nfeLeft {
                kit.note("round \(round): the budget left (\(kit.meter.nfeLeft) NFEs) does not pay for its \(needed)")
                throw kit.meter.outOfBudget(needing: needed)
            }
            var texts: [String?] = Array(repeating: nil, count: heads.count)
            if usePrompt {
                let out = try kit.reflect(heads, history: heads.map { ReflectStrategy.historyJSON(history[$0] ?? []) })
                texts = out.map { Optional($0) }
            }
            for (b, id) in heads.enumerated() {
                let reflection = texts[b].map { Reflection(json: $0) } ?? Reflection()
                let cond = usePrompt
                    ? kit.condition(Condition(prompt: reflection.revisedPrompt ?? base.prompt,
                                              negativePrompt: base.guidance > 1 ? (reflection.negativePrompt ?? base.negativePrompt) : base.negativePrompt,
                                              guidance: base.guidance))
                    : 0
                let lineage = (history[id] ?? []) + (texts[b].map { [$0] } ?? [])
                let next: LatentBatch
                if trained {
                    let fix = kit.condition(Condition(prompt: base.prompt, guidance: base.guidance,
                                                      instruction: reflection.feedback ?? "", reference: id))
                    next = try kit.freshNoise(children: [id], copies: o.int("per_branch"), role: "corrector", conditions: [fix])
                } else if correct {
                    let (batch, row) = finished[id]!
                    let noisy = kit.renoise(batch.rows([row]), to: strength, copies: o.int("per_branch"))
                    next = kit.withCondition(noisy, rows: Array(0..<noisy.count), condition: cond)
                } else {
                    next = try kit.roots(o.int("per_branch"), condition: cond)
                }
                let children = try kit.integrate(next, to: 0)
                try keep(children, lineage: lineage)
                heads[b] = kit.order(children.nodes).first ?? id
            }
        }
    }

    /// A lineage's reflections as the JSON array ext/reflector.h takes as history (oldest
    /// first); nil for none.
    static func historyJSON(_ reflections: [String]) -> String? {
        reflections.isEmpty ? nil : "[" + reflections.joined(separator: ",") + "]"
    }
}
