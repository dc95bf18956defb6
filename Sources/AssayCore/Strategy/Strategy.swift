import AssayPluginHost

/// A search strategy: how a job spends its budget to find the best image.
///
/// Strategies only talk to `SearchToolkit`, which routes every model evaluation, verifier
/// and reflector call through the job's meter, so no strategy can overspend; when the meter
/// refuses, the refusal propagates out of `run` and the runner keeps what was finished.
///
/// A strategy owns its options: it declares them (`options`, checked at Submit), their
/// cross-checks (`validate`), which one sizes the search to a budget (`sizeOption`), and
/// what a plan costs (`plannedNFE`, the default budget). The generic planner knows none
/// of their meanings.
public protocol Strategy: Sendable {
    /// The `strategy` option value that selects it.
    var name: String { get }
    /// One sentence for `ListStrategies`.
    var summary: String { get }
    var needsVerifier: Bool { get }
    /// The model roles it uses; `base` first.
    var roles: [StrategyRole] { get }
    var options: [StrategyOption] { get }
    /// The count option that grows with the budget: when a client gives `budget_nfe` but
    /// not this option, the planner picks the largest value whose `plannedNFE` fits.
    var sizeOption: String? { get }
    /// Relations between options (each is already in its range), with a message that says
    /// what to change. `cost` describes the base model as the job will run it.
    func validate(_ options: StrategyOptions, cost: SearchCost) throws
    /// The size that fills `budget`, for a strategy whose last round may run partly (so the
    /// largest size whose full plan fits would leave budget unspent); nil = that largest size.
    func size(toFill budget: Int, _ options: StrategyOptions, cost: SearchCost) -> Int?
    /// Checks that the job has what these options use (a reflector, a sampler), with a
    /// message that says what to add; called at Submit after the roles are bound.
    func validate(_ options: StrategyOptions, resources: StrategyResources) throws
    /// NFEs the plan costs when nothing stops it early (a partial last round included).
    func plannedNFE(_ options: StrategyOptions, cost: SearchCost) -> Int
    /// Runs the search.
    func run(_ kit: SearchToolkit) throws
}

extension Strategy {
    public var roles: [StrategyRole] { [.base] }
    public var sizeOption: String? { nil }
    public func validate(_ options: StrategyOptions, cost: SearchCost) throws {}
    public func size(toFill budget: Int, _ options: StrategyOptions, cost: SearchCost) -> Int? { nil }
    public func validate(_ options: StrategyOptions, resources: StrategyResources) throws {}
}

/// What a job brings besides its base model, for `Strategy.validate(_:resources:)`.
public struct StrategyResources: Sendable {
    /// Model ids by role (`base` included).
    public let models: [String: String]
    public let reflector: String?
    public let sampler: String?
    public init(models: [String: String], reflector: String?, sampler: String?) {
        self.models = models
        self.reflector = reflector
        self.sampler = sampler
    }
}

/// What integration costs on the job's base model, so a strategy can price a plan before
/// it runs: NFEs of an integration over a segment on the model's schedule.
public struct SearchCost: Sendable {
    /// Steps of a full 1 → 0 integration.
    public let steps: Int
    /// Model rows per evaluation of one sample (2 with guidance).
    public let evaluationsPerSample: Int
    public let scheduleShift: Double
    /// A plugin sampler's evaluations per Euler step (unknown in advance; assumed 2).
    public let samplerFactor: Int

    public init(steps: Int, evaluationsPerSample: Int, scheduleShift: Double, samplerFactor: Int = 1) {
        self.steps = steps
        self.evaluationsPerSample = evaluationsPerSample
        self.scheduleShift = scheduleShift
        self.samplerFactor = samplerFactor
    }

    /// NFEs of one sample from noise to image.
    public var perSample: Int { steps * evaluationsPerSample * samplerFactor }
    /// NFEs of one evaluation of one sample (an x0-prediction, an sde step).
    public var perEvaluation: Int { evaluationsPerSample }
    /// NFEs of one sample integrated from `from` down to `to`.
    public func segment(from: Float, to: Float, steps k: Int? = nil) -> Int {
        (Schedule.segment(from: from, to: to, steps: steps, shift: scheduleShift, stepsInSegment: k).count - 1)
            * evaluationsPerSample * samplerFactor
    }
    /// The model's schedule times (t_0 = 1 ... t_steps = 0).
    public var times: [Float] { Schedule.times(steps: steps, shift: scheduleShift) }
}

/// One finished sample of a job: a node of the final pool.
public struct Candidate: Sendable {
    public let index: Int
    public let node: Int
    public let seed: UInt64
    public let latent: [Float]
    public let image: RGBImage
    /// Score under each verifier (by id).
    public var scores: [String: Double] = [:]
    public var details: [String: String] = [:]
    /// Mean rank across verifiers among the job's candidates (1 = best); nil if unscored.
    public var meanRank: Double?
    public init(index: Int, node: Int, seed: UInt64, latent: [Float], image: RGBImage) {
        self.index = index
        self.node = node
        self.seed = seed
        self.latent = latent
        self.image = image
    }
}

/// The strategies the daemon knows, by name.
public struct StrategyCatalog: Sendable {
    public let strategies: [String: any Strategy]
    public init(_ list: [any Strategy]) {
        strategies = Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0) })
    }
    public func strategy(named name: String) throws -> any Strategy {
        guard let s = strategies[name] else {
            throw AssayError.invalidArgument("unknown strategy '\(name)'; known strategies: \(strategies.keys.sorted().joined(separator: ", "))")
        }
        return s
    }

    /// Resolves a client's strategy options: unknown names refused, each value checked
    /// against its declaration, defaults filled in, then the strategy's own cross-checks.
    /// With a budget and no size given, the size grows to fill the budget.
    public func resolve(_ strategy: any Strategy, given: [String: OptionValue], budget: Int?,
                        cost: SearchCost) throws -> StrategyOptions {
        let declared = Dictionary(uniqueKeysWithValues: strategy.options.map { ($0.name, $0) })
        var values: [String: PluginOption] = [:]
        for key in given.keys.sorted() {
            guard let d = declared[key] else {
                let known = strategy.options.map(\.name)
                throw AssayError.invalidArgument("strategy '\(strategy.name)' has no option '\(key)'; its options: \(known.isEmpty ? "none" : known.joined(separator: ", "))")
            }
            values[key] = try d.parse(given[key]!, strategy: strategy.name)
        }
        for d in strategy.options where values[d.name] == nil { values[d.name] = d.defaultValue }
        var options = StrategyOptions(values)
        if let budget, let size = strategy.sizeOption, given[size] == nil,
           case .count(let range)? = declared[size]?.kind {
            // Largest size whose plan fits; plannedNFE grows with the size.
            var lo = range.lowerBound, hi = range.upperBound
            func price(_ s: Int) -> Int {
                var o = options
                o.values[size] = .number(Double(s))
                return strategy.plannedNFE(o, cost: cost)
            }
            if let own = strategy.size(toFill: budget, options, cost: cost) {
                lo = min(hi, max(lo, own))
            } else if price(lo) <= budget {
                while lo < hi {
                    let mid = lo + (hi - lo + 1) / 2
                    if price(mid) <= budget { lo = mid } else { hi = mid - 1 }
                }
            }
            options.values[size] = .number(Double(lo))
        }
        try strategy.validate(options, cost: cost)
        return options
    }
}
