import AssayPluginHost

/// Everything a strategy may do for a job, each action counted and checked.
public final class JobContext: @unchecked Sendable {
    public let job: Job
    public let plan: JobPlan
    public let session: ModelSession
    public let verifiers: [VerifierPlugin]
    public let sampler: SamplerPlugin?
    public let meter: BudgetMeter
    public let call: PluginCallContext
    /// Every candidate finished so far, in index order of completion.
    public private(set) var candidates: [Candidate] = []
    public private(set) var verifierNs: UInt64 = 0
    public private(set) var samplingNs: UInt64 = 0
    public private(set) var decodeNs: UInt64 = 0
    private var measuredNFEPerCandidate: Int?

    init(job: Job, session: ModelSession, verifiers: [VerifierPlugin], sampler: SamplerPlugin?,
         meter: BudgetMeter, call: PluginCallContext) {
        self.job = job
        self.plan = job.plan
        self.session = session
        self.verifiers = verifiers
        self.sampler = sampler
        self.meter = meter
        self.call = call
    }

    /// NFEs one candidate costs: exact for the built-in Euler integrator; for a plugin
    /// sampler, known only after the first candidates were generated (nil before).
    public var nfePerCandidate: Int? {
        sampler == nil ? plan.steps * session.conditionsPerSample : measuredNFEPerCandidate
    }

    public func seed(forCandidate index: Int) -> UInt64 {
        NoiseSource.candidateSeed(jobSeed: plan.seed, index: index)
    }

    /// Generates the candidates with these indices as one batch, in lockstep (one model
    /// call per step for all of them), decodes them and adds them to `candidates`.
    /// Throws `BudgetRefusal` if the meter refuses part-way (none of the batch is kept).
    @discardableResult
    public func generate(indices: [Int]) throws -> [Candidate] {
        guard !indices.isEmpty else { return [] }
        let samplingStart = DispatchTimeClock.now()
        let info = session.info
        let n = indices.count, ss = info.sampleSize
        let seeds = indices.map { seed(forCandidate: $0) }
        var x = [Float]()
        x.reserveCapacity(n * ss)
        for s in seeds { x.append(contentsOf: NoiseSource.gaussian(seed: s, count: ss)) }
        let before = meter.nfeUsed

        if let sampler {
            var refusal: Error?
            let access = ModelAccess(batch: n, channels: info.channels, height: info.height, width: info.width,
                                     nfePerEvaluation: n * session.conditionsPerSample) { [self] xp, t, vp in
                do {
                    try session.velocity(x: xp, n: n, t: t, out: vp)
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
                try sampler.advance(&x, from: 1, to: 0, access: access, options: options, context: call)
            } catch {
                if let refusal { throw refusal } // the host's refusal, not the plugin's words
                if let stop = meter.stopRefusal() { throw stop } // the plugin saw is_cancelled
                throw error
            }
            if let refusal { throw refusal } // a sampler that ignored a refusal still loses the batch
            measuredNFEPerCandidate = (meter.nfeUsed - before) / n
        } else {
            let times = Schedule.times(steps: plan.steps, shift: info.scheduleShift)
            var v = [Float](repeating: 0, count: n * ss)
            for i in 0..<plan.steps {
                try x.withUnsafeBufferPointer { xb in
                    try v.withUnsafeMutableBufferPointer { vb in
                        try session.velocity(x: xb.baseAddress!, n: n, t: times[i], out: vb.baseAddress!)
                    }
                }
                let dt = times[i + 1] - times[i]
                for j in 0..<(n * ss) { x[j] += dt * v[j] }
                reportProgress()
            }
        }

        let decodeStart = DispatchTimeClock.now()
        samplingNs += decodeStart - samplingStart
        let images = try session.model.decode(x, count: n, context: call)
        decodeNs += DispatchTimeClock.now() - decodeStart
        var made: [Candidate] = []
        for (k, index) in indices.enumerated() {
            made.append(Candidate(index: index, seed: seeds[k], latent: Array(x[k * ss..<(k + 1) * ss]), image: images[k]))
        }
        if !verifiers.isEmpty { try score(&made) }
        candidates.append(contentsOf: made)
        rank()
        reportProgress()
        return made
    }

    /// Scores candidates under every verifier (n verifier calls each).
    public func score(_ batch: inout [Candidate]) throws {
        let start = DispatchTimeClock.now()
        defer { verifierNs += DispatchTimeClock.now() - start }
        let images = batch.map(\.image)
        for verifier in verifiers {
            try meter.reserveVerifierCalls(images.count)
            let (scores, details) = try verifier.score(prompt: job.prompt, images: images, context: call)
            for k in batch.indices {
                batch[k].scores[verifier.instance.id] = scores[k]
                if let d = details[k] { batch[k].details[verifier.instance.id] = d }
            }
        }
    }

    /// Recomputes every candidate's mean rank across the verifiers.
    private func rank() {
        guard !verifiers.isEmpty, !candidates.isEmpty else { return }
        let byVerifier = verifiers.map { v in candidates.map { $0.scores[v.instance.id] ?? -.infinity } }
        let means = Ranking.meanRanks(byVerifier)
        for k in candidates.indices { candidates[k].meanRank = means[k] }
    }

    /// The best candidate so far (lowest mean rank; the first one when unscored).
    public var best: Candidate? {
        guard !candidates.isEmpty else { return nil }
        guard let primary = verifiers.first?.instance.id else { return candidates.first }
        let i = Ranking.best(meanRanks: candidates.map { $0.meanRank ?? .infinity },
                             primaryScores: candidates.map { $0.scores[primary] ?? -.infinity })
        return i.map { candidates[$0] }
    }

    public var bestScore: Double {
        guard let primary = verifiers.first?.instance.id, let b = best else { return .nan }
        return b.scores[primary] ?? .nan
    }

    /// Publishes NFEs used and progress (the D-Bus layer rate-limits the signals).
    public func reportProgress() {
        let used = meter.nfeUsed
        let score = bestScore
        let count = candidates.count
        job.update {
            $0.nfeUsed = used
            $0.verifierCalls = meter.verifierCalls
            $0.progress = min(1, Double(used) / Double(max(1, plan.budgetNFE)))
            $0.bestScore = score
            $0.candidates = count
        }
    }
}
