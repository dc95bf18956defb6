import AssayPluginHost

/// Everything a strategy may do for a job, each action counted and checked, and recorded
/// as nodes of the job's search tree (`nodes`, written to the manifest as its lineage).
///
/// Operations take a `LatentBatch` and return a new one whose rows are new child nodes.
/// Random operations draw their noise from the child's position in the tree (its
/// `seedPath`), never from a stream shared by the batch, and the model is batch-invariant
/// (ext/model.h), so every node has the same value whatever batch or wave computed it,
/// and `replay` recomputes any node alone. A refused action (budget, deadline, cancel)
/// throws `BudgetRefusal` and adds nothing: what was finished before it stays.
///
/// Pools: scored rows are ranked only against rows of the same pool ("final" holds the
/// finished candidates; x0-predictions go to a probe pool), by the verifier, or by the
/// ensemble's mean rank when the job has several.
public final class SearchToolkit: @unchecked Sendable {
    public static let finalPool = "final"

    public let job: Job
    public let plan: JobPlan
    /// The strategy's resolved options.
    public var options: StrategyOptions { plan.strategyOptions }
    /// One metered denoiser per model role; `base` is the job's model.
    public let denoisers: [String: Denoiser]
    public var base: Denoiser { denoisers["base"]! }
    public let verifiers: [VerifierPlugin]
    public let reflector: ReflectorPlugin?
    public let sampler: SamplerPlugin?
    public let meter: BudgetMeter
    public let call: PluginCallContext
    /// What integration costs on the base model.
    public let cost: SearchCost

    /// The conditions rows refer to; 0 is the job's own (prompt, negative prompt, guidance).
    public private(set) var conditions: [Condition]
    /// The search tree, by node id.
    public private(set) var nodes: [SearchNode] = []
    /// Every finished candidate, in order of completion.
    public private(set) var candidates: [Candidate] = []
    /// Decoded images of scored nodes, by node id.
    public private(set) var images: [Int: RGBImage] = [:]
    /// Verifier details of scored nodes: [node: [verifier: JSON]].
    public private(set) var details: [Int: [String: String]] = [:]
    /// What the strategy changed from its plan and why (the manifest's `notes`).
    public private(set) var notes: [String] = []
    public private(set) var verifierNs: UInt64 = 0
    public private(set) var samplingNs: UInt64 = 0
    public private(set) var decodeNs: UInt64 = 0
    private var childCount: [Int] = []
    private var rootCount = 0
    private var measuredNFEPerSample: Int?

    public init(job: Job, denoisers: [String: Denoiser], verifiers: [VerifierPlugin], reflector: ReflectorPlugin?,
                sampler: SamplerPlugin?, meter: BudgetMeter, call: PluginCallContext) {
        precondition(denoisers["base"] != nil, "a job has a base model")
        self.job = job
        self.plan = job.plan
        self.denoisers = denoisers
        self.verifiers = verifiers
        self.reflector = reflector
        self.sampler = sampler
        self.meter = meter
        self.call = call
        conditions = [Condition(prompt: job.prompt, negativePrompt: job.plan.negativePrompt, guidance: job.plan.guidance)]
        cost = SearchCost(steps: job.plan.steps, evaluationsPerSample: conditions[0].evaluationsPerSample,
                          scheduleShift: denoisers["base"]!.info.scheduleShift, samplerFactor: sampler == nil ? 1 : 2)
        // A condition with a reference image (a corrector's) names a node; its pixels are
        // the decoded image this toolkit holds.
        for d in denoisers.values { d.referenceImage = { [unowned self] in self.images[$0] } }
    }

    // MARK: conditions and costs

    /// The index of `condition`, adding it to the table if new.
    public func condition(_ c: Condition) -> Int {
        if let i = conditions.firstIndex(of: c) { return i }
        conditions.append(c)
        return conditions.count - 1
    }

    /// NFEs one full sample costs: exact for the built-in integrator; for a plugin sampler
    /// known only once one has run (nil before).
    public var nfePerSample: Int? {
        sampler == nil ? cost.perSample : measuredNFEPerSample
    }

    /// The model's schedule for the base role (t_0 = 1 ... t_steps = 0).
    public var times: [Float] { cost.times }

    // MARK: making nodes

    private func denoiser(_ role: String) throws -> Denoiser {
        guard let d = denoisers[role] else {
            throw AssayError.failed("strategy '\(plan.strategy)' used model role '\(role)', which the job does not have (roles: \(denoisers.keys.sorted().joined(separator: ", ")))")
        }
        return d
    }

    /// Adds one child of each parent (nil = a root) and returns their ids.
    private func addNodes(parents: [Int?], op: SearchNode.Operation, role: String, tFrom: Float, tTo: Float,
                          conditions rowConditions: [Int], nfe: [Int], x: [Float], steps: Int? = nil,
                          strength: Double? = nil) -> [Int] {
        let ss = x.count / max(1, parents.count)
        let model = denoisers[role]?.model.instance.id ?? role
        var ids: [Int] = []
        for (k, parent) in parents.enumerated() {
            let path: [UInt64]
            if let p = parent {
                path = nodes[p].seedPath + [UInt64(childCount[p])]
                childCount[p] += 1
            } else {
                path = [UInt64(rootCount)]
                rootCount += 1
            }
            let id = nodes.count
            let sha = x[k * ss..<(k + 1) * ss].withUnsafeBytes { SHA256.hex(Array($0)) }
            nodes.append(SearchNode(id: id, parent: parent, op: op, role: role, model: model, tFrom: Double(tFrom),
                                    tTo: Double(tTo), condition: rowConditions[k], seedPath: path, nfe: nfe[k],
                                    steps: steps, strength: strength, latentSHA256: sha))
            childCount.append(0)
            ids.append(id)
        }
        return ids
    }

    /// The seed of the next child of `parent` (nil: the next root), for random operations.
    private func nextSeeds(parents: [Int?]) -> [UInt64] {
        var pending: [Int: Int] = [:]
        var roots = 0
        return parents.map { p in
            let path: [UInt64]
            if let p {
                let k = childCount[p] + pending[p, default: 0]
                pending[p, default: 0] += 1
                path = nodes[p].seedPath + [UInt64(k)]
            } else {
                path = [UInt64(rootCount + roots)]
                roots += 1
            }
            return NoiseSource.seed(jobSeed: plan.seed, path: path)
        }
    }

    /// `count` roots: fresh noise at t = 1, root i keyed by its root index (so the roots of
    /// any search are the candidates of best-of-n with the same seed). Costs nothing.
    public func roots(_ count: Int, condition: Int = 0, role: String = "base") throws -> LatentBatch {
        let ss = try denoiser(role).info.sampleSize
        let seeds = nextSeeds(parents: Array(repeating: nil, count: count))
        var x = [Float]()
        x.reserveCapacity(count * ss)
        for s in seeds { x.append(contentsOf: NoiseSource.gaussian(seed: s, count: ss)) }
        let conds = Array(repeating: condition, count: count)
        let ids = addNodes(parents: Array(repeating: nil, count: count), op: .noise, role: role, tFrom: 1, tTo: 1,
                           conditions: conds, nfe: Array(repeating: 0, count: count), x: x)
        return LatentBatch(nodes: ids, x: x, t: 1, conditions: conds, role: role)
    }

    /// Fresh noise at t = 1 on `role`, `copies` children of each node of `parents`: a
    /// lineage that continues from an image through its condition (a corrector's reference
    /// image) rather than through its latent. Child k is keyed by its place in the tree like
    /// every random operation, so replay recomputes it alone. Costs nothing.
    public func freshNoise(children parents: [Int], copies: Int, role: String, conditions rowConditions: [Int]) throws -> LatentBatch {
        precondition(rowConditions.count == parents.count)
        let ss = try denoiser(role).info.sampleSize
        let ps = parents.flatMap { Array(repeating: Optional($0), count: copies) }
        let conds = rowConditions.flatMap { Array(repeating: $0, count: copies) }
        var x = [Float]()
        x.reserveCapacity(ps.count * ss)
        for s in nextSeeds(parents: ps) { x.append(contentsOf: NoiseSource.gaussian(seed: s, count: ss)) }
        let ids = addNodes(parents: ps, op: .noise, role: role, tFrom: 1, tTo: 1, conditions: conds,
                           nfe: Array(repeating: 0, count: ps.count), x: x)
        return LatentBatch(nodes: ids, x: x, t: 1, conditions: conds, role: role)
    }

    /// The same rows with another condition (e.g. one candidate continues with its own
    /// negative prompt). Not a new node: the condition applies to what is made from them.
    public func withCondition(_ b: LatentBatch, rows: [Int], condition: Int) -> LatentBatch {
        var out = b
        for r in rows { out.conditions[r] = condition }
        out.velocity = nil
        return out
    }

    // MARK: integration

    /// Integrates every row from the batch's t down to `to` in lockstep (one model call per
    /// step for all rows): the built-in Euler integrator on the model's schedule restricted
    /// to the segment (or `steps` steps of its own), or the job's sampler plugin on the base
    /// role. Returns the child nodes.
    ///
    /// `sampler`: nil uses the job's sampler plugin when it has one (base role, no `steps`);
    /// false forces the built-in Euler integrator (e.g. Co-Fusion's base-model segments,
    /// which must be the base trajectory exactly); true requires the job's sampler.
    public func integrate(_ b: LatentBatch, to tb: Float, steps: Int? = nil, sampler useSampler: Bool? = nil) throws -> LatentBatch {
        precondition(tb < b.t, "integrate goes down in time")
        guard b.count > 0 else { return b }
        let start = DispatchTimeClock.now()
        defer { samplingNs += DispatchTimeClock.now() - start }
        let d = try denoiser(b.role)
        let conds = b.conditions.map { conditions[$0] }
        let ss = d.info.sampleSize, n = b.count
        var x = b.x
        let before = meter.nfeUsed
        var evaluations = 0
        if useSampler == true && (sampler == nil || b.role != "base" || steps != nil) {
            throw AssayError.failed("strategy '\(plan.strategy)' integrates with the job's sampler, but \(sampler == nil ? "the job has no sampler" : "a sampler runs only on the base role with the model's schedule")")
        }
        var samplerID: String?
        let flopsBefore = (d.flopsRun, d.flopsUncached)
        if let sampler, b.role == "base", steps == nil, useSampler != false {
            samplerID = sampler.instance.id
            try advance(sampler, &x, from: b.t, to: tb, denoiser: d, conditions: conds)
            let used = meter.nfeUsed - before
            if b.t == 1 && tb == 0 { measuredNFEPerSample = used / n }
            evaluations = used / max(1, Denoiser.nfe(conds))
        } else {
            let times = Schedule.segment(from: b.t, to: tb, steps: plan.steps, shift: d.info.scheduleShift,
                                         stepsInSegment: steps)
            var v = [Float](repeating: 0, count: n * ss)
            for i in 0..<(times.count - 1) {
                if i == 0, let cached = b.velocity {
                    v = cached
                } else {
                    let ts = [Float](repeating: times[i], count: n)
                    try x.withUnsafeBufferPointer { xb in
                        try v.withUnsafeMutableBufferPointer { vb in
                            try d.velocity(x: xb.baseAddress!, t: ts, conditions: conds, out: vb.baseAddress!)
                        }
                    }
                    evaluations += 1
                }
                let dt = times[i + 1] - times[i]
                for j in 0..<(n * ss) { x[j] += dt * v[j] }
                reportProgress()
            }
        }
        let nfe = conds.map { $0.evaluationsPerSample * evaluations }
        let ids = addNodes(parents: b.nodes, op: .integrate, role: b.role, tFrom: b.t, tTo: tb, conditions: b.conditions,
                           nfe: nfe, x: x, steps: steps)
        let uncached = d.flopsUncached - flopsBefore.1
        for id in ids {
            nodes[id].sampler = samplerID
            if samplerID != nil, uncached > 0 { nodes[id].flopRatio = (d.flopsRun - flopsBefore.0) / uncached }
        }
        return LatentBatch(nodes: ids, x: x, t: tb, conditions: b.conditions, role: b.role)
    }

    private func advance(_ sampler: SamplerPlugin, _ x: inout [Float], from: Float, to: Float, denoiser d: Denoiser,
                         conditions conds: [Condition]) throws {
        let info = d.info, n = conds.count
        var refusal: Error?
        // A refusal or failure inside a callback becomes the code the ABI asks for; the
        // error itself is rethrown after `advance` (the host's reason, not the plugin's).
        func code(_ body: () throws -> Void) -> Int32 {
            do {
                try body()
                return ModelAccess.ok
            } catch let e as BudgetRefusal {
                refusal = e
                return e.reason == .budget ? ModelAccess.refusedBudget : ModelAccess.refusedCancelled
            } catch {
                refusal = error
                return ModelAccess.failed
            }
        }
        let blocks = BlockEvaluation.make(d, conditions: conds).map { be in
            BlockAccess(info: be.blocks.info, rows: be.rows,
                        prologue: { [self] x, t, h, c in code { try be.prologue(x: x, t: t, hidden: h, context: c); reportProgress() } },
                        block: { i, h, c in code { try be.block(i, hidden: h, context: c) } },
                        blockRows: { i, l, h, c in code { try be.blockRows(i, l, hidden: h, context: c) } },
                        epilogue: { h, c, v in code { try be.epilogue(hidden: h, context: c, v: v) } })
        }
        let access = ModelAccess(batch: n, channels: info.channels, height: info.height, width: info.width,
                                 nfePerEvaluation: Denoiser.nfe(conds), blocks: blocks) { [self] xp, t, vp in
            do {
                try d.velocity(x: xp, t: [Float](repeating: t, count: n), conditions: conds, out: vp)
                reportProgress()
                return ModelAccess.ok
            } catch let e as BudgetRefusal {
                refusal = e
                return e.reason == .budget ? ModelAccess.refusedBudget : ModelAccess.refusedCancelled
            } catch {
                refusal = error
                return ModelAccess.failed
            }
        }
        var options: [(String, PluginOption)] = [("steps", .number(Double(plan.steps)))]
        options += plan.samplerOptions.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        do {
            try sampler.advance(&x, from: Double(from), to: Double(to), access: access, options: options, context: call)
        } catch {
            if let refusal { throw refusal } // the host's refusal, not the plugin's words
            if let stop = meter.stopRefusal() { throw stop } // the plugin saw is_cancelled
            throw error
        }
        if let refusal { throw refusal } // a sampler that ignored a refusal still loses the batch
    }

    /// The x0-prediction of every row, x̂0 = x_t - t v(x_t), as child nodes at t = 0 (for
    /// scoring; one evaluation). The velocity is kept on `b`, so integrating `b` next does
    /// not pay for it again.
    public func predictX0(_ b: inout LatentBatch) throws -> LatentBatch {
        guard b.count > 0 else { return b }
        let d = try denoiser(b.role)
        let conds = b.conditions.map { conditions[$0] }
        let v: [Float]
        var nfe = Array(repeating: 0, count: b.count)
        if let cached = b.velocity { v = cached } else {
            let start = DispatchTimeClock.now()
            defer { samplingNs += DispatchTimeClock.now() - start }
            var out = [Float](repeating: 0, count: b.x.count)
            try b.x.withUnsafeBufferPointer { xb in
                try out.withUnsafeMutableBufferPointer { vb in
                    try d.velocity(x: xb.baseAddress!, t: [Float](repeating: b.t, count: b.count), conditions: conds,
                                   out: vb.baseAddress!)
                }
            }
            v = out
            b.velocity = out
            nfe = conds.map(\.evaluationsPerSample)
            reportProgress()
        }
        let t = b.t
        let x0 = zip(b.x, v).map { $0.0 - t * $0.1 }
        let ids = addNodes(parents: b.nodes, op: .x0, role: b.role, tFrom: t, tTo: 0, conditions: b.conditions,
                           nfe: nfe, x: x0)
        return LatentBatch(nodes: ids, x: x0, t: 0, conditions: b.conditions, role: b.role)
    }

    /// One stochastic step of every row from its t down to `to` that keeps the flow's
    /// marginals: with x̂0 = x - t v and ε̂ = x + (1 - t) v,
    /// x' = (1 - t') x̂0 + t' (sqrt(1 - η²) ε̂ + η ε), ε fresh noise keyed by the child node
    /// (η = `churn`; 0 is the ODE's Euler step). Returns the next states and the rows'
    /// x0-predictions (free: same evaluation).
    public func stochasticStep(_ b: LatentBatch, to t2: Float, churn: Double) throws -> (next: LatentBatch, x0: LatentBatch) {
        var src = b
        let x0 = try predictX0(&src)
        let v = src.velocity!, t = b.t
        let seeds = nextSeeds(parents: b.nodes)
        let ss = b.sampleSize
        let eta = Float(min(1, max(0, churn))), keep = (1 - eta * eta).squareRoot()
        var x = [Float](repeating: 0, count: b.x.count)
        for r in 0..<b.count {
            let e = NoiseSource.gaussian(seed: seeds[r], count: ss)
            for i in 0..<ss {
                let j = r * ss + i
                let xh = b.x[j] - t * v[j], eh = b.x[j] + (1 - t) * v[j]
                x[j] = (1 - t2) * xh + t2 * (keep * eh + eta * e[i])
            }
        }
        let ids = addNodes(parents: b.nodes, op: .sde, role: b.role, tFrom: t, tTo: t2, conditions: b.conditions,
                           nfe: Array(repeating: 0, count: b.count), x: x, strength: churn)
        // The evaluation's NFEs are booked on the x0 node; the step itself is free.
        return (LatentBatch(nodes: ids, x: x, t: t2, conditions: b.conditions, role: b.role), x0)
    }

    // MARK: random moves without the model

    /// `count` zero-order neighbours of row `row` (at t = 1): see `NoiseSource.neighbour`.
    public func neighbours(of b: LatentBatch, row: Int, count: Int, similarity: Double) -> LatentBatch {
        precondition(b.t == 1, "neighbours are taken of noise")
        let parents = Array(repeating: Optional(b.nodes[row]), count: count)
        let seeds = nextSeeds(parents: parents)
        let pivot = b.latent(row)
        let x = seeds.flatMap { NoiseSource.neighbour(of: pivot, similarity: similarity, seed: $0) }
        let conds = Array(repeating: b.conditions[row], count: count)
        let ids = addNodes(parents: parents, op: .neighbour, role: b.role, tFrom: 1, tTo: 1, conditions: conds,
                           nfe: Array(repeating: 0, count: count), x: x, strength: similarity)
        return LatentBatch(nodes: ids, x: x, t: 1, conditions: conds, role: b.role)
    }

    /// `copies` forward noisings of every row from its t up to `to` (children of row r are
    /// rows r*copies ..< (r+1)*copies).
    public func renoise(_ b: LatentBatch, to t2: Float, copies: Int) -> LatentBatch {
        precondition(t2 > b.t && b.t < 1)
        let parents = b.nodes.flatMap { Array(repeating: Optional($0), count: copies) }
        let seeds = nextSeeds(parents: parents)
        var x = [Float]()
        for (k, p) in parents.enumerated() {
            let r = k / copies
            _ = p
            x += NoiseSource.renoise(b.latent(r), from: Double(b.t), to: Double(t2), seed: seeds[k])
        }
        let conds = b.conditions.flatMap { Array(repeating: $0, count: copies) }
        let ids = addNodes(parents: parents, op: .renoise, role: b.role, tFrom: b.t, tTo: t2, conditions: conds,
                           nfe: Array(repeating: 0, count: parents.count), x: x)
        return LatentBatch(nodes: ids, x: x, t: t2, conditions: conds, role: b.role)
    }

    /// Copies of rows (particle resampling; repeats allowed): each copy is a new child node.
    public func copy(_ b: LatentBatch, rows: [Int]) -> LatentBatch {
        let sel = b.rows(rows)
        let ids = addNodes(parents: sel.nodes.map { Optional($0) }, op: .resample, role: b.role, tFrom: b.t, tTo: b.t,
                           conditions: sel.conditions, nfe: Array(repeating: 0, count: sel.count), x: sel.x)
        return LatentBatch(nodes: ids, x: sel.x, t: b.t, conditions: sel.conditions, role: b.role, velocity: sel.velocity)
    }

    /// The rows handed to model role `role`: allowed only when both models declare the same
    /// latent space (ext/draft/latent-space.h), since equal shapes alone do not make equal
    /// meaning. Each row keeps its prompt but takes the new model's default guidance (a
    /// distilled student runs unguided, so its rows drop their negative prompt), unless
    /// `condition` names the condition to continue with.
    public func handOver(_ b: LatentBatch, to role: String, condition: Int? = nil) throws -> LatentBatch {
        let from = try denoiser(b.role), to = try denoiser(role)
        guard let a = from.latentSpace, let c = to.latentSpace, a == c else {
            throw AssayError.invalidArgument("model '\(to.model.instance.id)' (role \(role)) cannot continue latents of model '\(from.model.instance.id)' (role \(b.role)): their latent spaces are \(from.latentSpace ?? "undeclared") and \(to.latentSpace ?? "undeclared") (a hand-over needs both to declare the same id)")
        }
        let g = to.info.defaultGuidance
        let conds = b.conditions.map { i -> Int in
            if let condition { return condition }
            let old = conditions[i]
            return self.condition(Condition(prompt: old.prompt, negativePrompt: g != 1 ? old.negativePrompt : nil, guidance: g))
        }
        let ids = addNodes(parents: b.nodes.map { Optional($0) }, op: .handover, role: role, tFrom: b.t, tTo: b.t,
                           conditions: conds, nfe: Array(repeating: 0, count: b.count), x: b.x)
        return LatentBatch(nodes: ids, x: b.x, t: b.t, conditions: conds, role: role)
    }

    /// Records a departure from the plan (fewer candidates, a step skipped) for the manifest.
    public func note(_ text: String) { notes.append(text) }

    // MARK: scoring, pools, candidates

    /// Decodes the rows (t = 0) into images without scoring them (previews for a reflector
    /// or for the report); no verifier call. Returns the node ids.
    @discardableResult
    public func decode(_ b: LatentBatch) throws -> [Int] {
        precondition(b.t == 0, "only clean latents (t = 0) are decoded")
        guard b.count > 0 else { return [] }
        let d = try denoiser(b.role)
        let start = DispatchTimeClock.now()
        let imgs = try d.model.decode(b.x, count: b.count, context: call)
        decodeNs += DispatchTimeClock.now() - start
        for (k, id) in b.nodes.enumerated() { images[id] = imgs[k] }
        return b.nodes
    }

    /// Decodes the rows (t = 0) and scores them under every verifier in `pool`; returns
    /// the node ids. Each verifier call is metered (one per image).
    @discardableResult
    public func score(_ b: LatentBatch, pool: String) throws -> [Int] {
        precondition(b.t == 0, "only clean latents (t = 0) are decoded and scored")
        guard b.count > 0 else { return [] }
        let d = try denoiser(b.role)
        let decodeStart = DispatchTimeClock.now()
        let imgs = try d.model.decode(b.x, count: b.count, context: call)
        decodeNs += DispatchTimeClock.now() - decodeStart
        let start = DispatchTimeClock.now()
        var scores: [[String: Double]] = Array(repeating: [:], count: b.count)
        var det: [[String: String]] = Array(repeating: [:], count: b.count)
        for verifier in verifiers {
            try meter.reserveVerifierCalls(imgs.count)
            let (s, dd) = try verifier.score(prompt: job.prompt, images: imgs, context: call)
            for k in 0..<b.count {
                scores[k][verifier.instance.id] = s[k]
                if let x = dd[k] { det[k][verifier.instance.id] = x }
            }
        }
        verifierNs += DispatchTimeClock.now() - start
        for (k, id) in b.nodes.enumerated() {
            nodes[id].pool = pool
            nodes[id].scores = scores[k]
            images[id] = imgs[k]
            if !det[k].isEmpty { details[id] = det[k] }
        }
        rank(pool: pool)
        reportProgress()
        return b.nodes
    }

    /// Finished candidates: scores the rows (t = 0) in the final pool and records them.
    /// Stops the job (`StopReason.target`) when one reaches the plan's `target_score`.
    @discardableResult
    public func finish(_ b: LatentBatch) throws -> [Candidate] {
        guard b.count > 0 else { return [] }
        if verifiers.isEmpty {
            // Decode without scoring (the single strategy may run with no verifier).
            let d = try denoiser(b.role)
            let imgs = try d.model.decode(b.x, count: b.count, context: call)
            for (k, id) in b.nodes.enumerated() { images[id] = imgs[k]; nodes[id].pool = SearchToolkit.finalPool }
        } else {
            try score(b, pool: SearchToolkit.finalPool)
        }
        var made: [Candidate] = []
        for (k, id) in b.nodes.enumerated() {
            var c = Candidate(index: candidates.count, node: id, seed: NoiseSource.seed(jobSeed: plan.seed, path: [nodes[root(of: id)].seedPath[0]]),
                              latent: Array(b.latent(k)), image: images[id]!)
            c.scores = nodes[id].scores
            c.details = details[id] ?? [:]
            nodes[id].candidate = c.index
            candidates.append(c)
            made.append(c)
        }
        refreshCandidateRanks()
        reportProgress()
        if let target = plan.targetScore, let primary = verifiers.first?.instance.id,
           made.contains(where: { ($0.scores[primary] ?? -.infinity) >= target }) {
            throw meter.reachTarget("a candidate reached target_score \(target) under \(primary)")
        }
        return made
    }

    /// The root a node descends from.
    public func root(of id: Int) -> Int {
        var i = id
        while let p = nodes[i].parent { i = p }
        return i
    }

    /// Node ids from a root down to `id`.
    public func path(to id: Int) -> [Int] {
        var out = [id]
        var i = id
        while let p = nodes[i].parent { out.append(p); i = p }
        return out.reversed()
    }

    private func rank(pool: String) {
        guard !verifiers.isEmpty else { return }
        let members = nodes.indices.filter { nodes[$0].pool == pool }
        let byVerifier = verifiers.map { v in members.map { nodes[$0].scores[v.instance.id] ?? -.infinity } }
        for (k, r) in Ranking.meanRanks(byVerifier).enumerated() { nodes[members[k]].meanRank = r }
    }

    private func refreshCandidateRanks() {
        for k in candidates.indices { candidates[k].meanRank = nodes[candidates[k].node].meanRank }
    }

    /// `ids` (scored nodes) best first, ranked among themselves: by the verifier, or by the
    /// ensemble's mean rank within this set; ties by the first verifier, then by id.
    public func order(_ ids: [Int]) -> [Int] {
        guard let primary = verifiers.first?.instance.id else { return ids }
        let byVerifier = verifiers.map { v in ids.map { nodes[$0].scores[v.instance.id] ?? -.infinity } }
        let means = Ranking.meanRanks(byVerifier)
        let idx = ids.indices.sorted { a, b in
            if means[a] != means[b] { return means[a] < means[b] }
            let sa = nodes[ids[a]].scores[primary] ?? -.infinity, sb = nodes[ids[b]].scores[primary] ?? -.infinity
            if sa != sb { return sa > sb }
            return ids[a] < ids[b]
        }
        return idx.map { ids[$0] }
    }

    /// One number per scored node, higher = better, for potentials and comparisons: the
    /// verifier's score with one verifier; with an ensemble, 1 - (mean rank - 1)/(n - 1)
    /// within `ids` (scores of different verifiers are never averaged).
    public func values(_ ids: [Int]) -> [Double] {
        guard let primary = verifiers.first?.instance.id else { return ids.map { _ in 0 } }
        if verifiers.count == 1 { return ids.map { nodes[$0].scores[primary] ?? -.infinity } }
        let byVerifier = verifiers.map { v in ids.map { nodes[$0].scores[v.instance.id] ?? -.infinity } }
        let n = Double(max(1, ids.count - 1))
        return Ranking.meanRanks(byVerifier).map { ids.count == 1 ? 1 : 1 - ($0 - 1) / n }
    }

    /// True when node `a` beats node `b` (both scored): `order` on the pair.
    public func beats(_ a: Int, _ b: Int) -> Bool { order([a, b]).first == a && a != b && !tied(a, b) }

    private func tied(_ a: Int, _ b: Int) -> Bool {
        verifiers.allSatisfy { nodes[a].scores[$0.instance.id] == nodes[b].scores[$0.instance.id] }
    }

    /// The best finished candidate (lowest mean rank in the final pool; the first when unscored).
    public var best: Candidate? {
        guard !candidates.isEmpty else { return nil }
        guard verifiers.first != nil else { return candidates.first }
        let bestNode = order(candidates.map(\.node)).first!
        return candidates.first { $0.node == bestNode }
    }

    public var bestScore: Double {
        guard let primary = verifiers.first?.instance.id, let b = best else { return .nan }
        return b.scores[primary] ?? .nan
    }

    // MARK: reflection

    /// The reflector's feedback on scored nodes (one JSON object each; see ext/reflector.h),
    /// with their verifier details and `history`. Metered: one reflector call per node.
    public func reflect(_ ids: [Int], history: [String?]? = nil) throws -> [String] {
        guard let reflector else {
            throw AssayError.failed("strategy '\(plan.strategy)' reflects, but the job has no reflector")
        }
        try meter.reserveReflectorCalls(ids.count)
        let imgs = try ids.map { id -> RGBImage in
            guard let i = images[id] else { throw AssayError.failed("node \(id) has no image to reflect on: score it first") }
            return i
        }
        let det: [String?] = ids.map { id in
            verifiers.first.flatMap { details[id]?[$0.instance.id] }
        }
        let out = try reflector.reflect(prompt: job.prompt, images: imgs, details: det, history: history, context: call)
        // Lineage: what was said about each image stays on its node (manifest, report).
        for (k, id) in ids.enumerated() { nodes[id].reflection = out[k] }
        reportProgress()
        return out
    }

    /// Visual reflection (SF2 Eq. 13): the reflector sees several images of each lineage
    /// (`views[i]` are node ids with images, e.g. [preview, sketch]; `names` their view
    /// names, ext/draft/reflector-views.h) and returns one JSON object per lineage, stored
    /// on node `on[i]`. A reflector without the views extension sees the last view only.
    /// Metered: one reflector call per lineage.
    public func reflect(views: [[Int]], names: [String], on: [Int]) throws -> [String] {
        guard let reflector else {
            throw AssayError.failed("strategy '\(plan.strategy)' reflects, but the job has no reflector")
        }
        precondition(views.count == on.count && views.allSatisfy { $0.count == names.count })
        guard !views.isEmpty else { return [] }
        try meter.reserveReflectorCalls(views.count)
        let imgs = try views.map { row in
            try row.map { id -> RGBImage in
                guard let i = images[id] else { throw AssayError.failed("node \(id) has no image to reflect on: decode it first") }
                return i
            }
        }
        let det: [String?] = views.map { row in verifiers.first.flatMap { details[row.last!]?[$0.instance.id] } }
        let out: [String]
        if reflector.hasViews {
            out = try reflector.reflectViews(prompt: job.prompt, names: names, images: imgs, details: det, context: call)
        } else {
            out = try reflector.reflect(prompt: job.prompt, images: imgs.map { $0.last! }, details: det, history: nil, context: call)
        }
        for (k, id) in on.enumerated() { nodes[id].reflection = out[k] }
        reportProgress()
        return out
    }

    // MARK: replay

    /// Recomputes node `id` alone (batch of one) from its ancestors, through the same
    /// metered denoisers. Equal to its value in the search when the model is batch
    /// invariant; the manifest's `latent_sha256` of every node makes that checkable.
    public func replay(_ id: Int) throws -> [Float] {
        var memo: [Int: [Float]] = [:]
        return try replayLatent(id, &memo)
    }

    private func replayLatent(_ id: Int, _ memo: inout [Int: [Float]]) throws -> [Float] {
        if let m = memo[id] { return m }
        let node = nodes[id]
        let d = try denoiser(node.role)
        let ss = d.info.sampleSize
        let seed = NoiseSource.seed(jobSeed: plan.seed, path: node.seedPath)
        let cond = conditions[node.condition]
        func parent() throws -> [Float] { try replayLatent(node.parent!, &memo) }
        func velocity(_ x: [Float], _ t: Float) throws -> [Float] {
            var v = [Float](repeating: 0, count: ss)
            try x.withUnsafeBufferPointer { xb in
                try v.withUnsafeMutableBufferPointer { vb in
                    try d.velocity(x: xb.baseAddress!, t: [t], conditions: [cond], out: vb.baseAddress!)
                }
            }
            return v
        }
        let tf = Float(node.tFrom), tt = Float(node.tTo)
        var x: [Float]
        switch node.op {
        case .noise:
            x = NoiseSource.gaussian(seed: seed, count: ss)
        case .neighbour:
            x = NoiseSource.neighbour(of: try parent()[...], similarity: node.strength ?? 0.95, seed: seed)
        case .renoise:
            x = NoiseSource.renoise(try parent()[...], from: node.tFrom, to: node.tTo, seed: seed)
        case .resample, .handover:
            x = try parent()
        case .x0:
            let p = try parent()
            let v = try velocity(p, tf)
            x = zip(p, v).map { $0.0 - tf * $0.1 }
        case .sde:
            let p = try parent()
            let v = try velocity(p, tf)
            let e = NoiseSource.gaussian(seed: seed, count: ss)
            let eta = Float(min(1, max(0, node.strength ?? 0))), keep = (1 - eta * eta).squareRoot()
            x = (0..<ss).map { i in
                let xh = p[i] - tf * v[i], eh = p[i] + (1 - tf) * v[i]
                return (1 - tt) * xh + tt * (keep * eh + eta * e[i])
            }
        case .integrate:
            x = try parent()
            if node.sampler != nil, let sampler {
                try advance(sampler, &x, from: tf, to: tt, denoiser: d, conditions: [cond])
            } else {
                let times = Schedule.segment(from: tf, to: tt, steps: plan.steps, shift: d.info.scheduleShift,
                                             stepsInSegment: node.steps)
                for i in 0..<(times.count - 1) {
                    let v = try velocity(x, times[i])
                    let dt = times[i + 1] - times[i]
                    for j in 0..<ss { x[j] += dt * v[j] }
                }
            }
        }
        memo[id] = x
        return x
    }

    // MARK: compute

    /// Model FLOPs run over what the same evaluations cost uncached, over every role (1 when
    /// nothing was cached; nil when no model reports FLOPs, see ext/blocks.h).
    public var flopRatio: Double? {
        let run = denoisers.values.reduce(0) { $0 + $1.flopsRun }
        let all = denoisers.values.reduce(0) { $0 + $1.flopsUncached }
        return all > 0 ? run / all : nil
    }

    /// The same over the middle blocks only (nil when no evaluation went through blocks).
    public var middleFlopRatio: Double? {
        let run = denoisers.values.reduce(0) { $0 + $1.middleFlopsRun }
        let all = denoisers.values.reduce(0) { $0 + $1.middleFlopsUncached }
        return all > 0 ? run / all : nil
    }

    // MARK: progress

    /// Publishes NFEs used and progress (the D-Bus layer rate-limits the signals).
    public func reportProgress() {
        let used = meter.nfeUsed
        let score = bestScore
        let count = candidates.count
        let ratio = flopRatio
        job.update {
            $0.nfeUsed = used
            $0.verifierCalls = meter.verifierCalls
            $0.reflectorCalls = meter.reflectorCalls
            $0.progress = min(1, Double(used) / Double(max(1, plan.budgetNFE)))
            $0.bestScore = score
            $0.candidates = count
            $0.flopRatio = ratio
        }
    }
}
