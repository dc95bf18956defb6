import AssayPluginHost

/// A search strategy: how a job spends its budget to find the best image.
///
/// Strategies only talk to `JobContext`, which routes every model evaluation and verifier
/// call through the job's meter, so no strategy can overspend; when the meter refuses, a
/// strategy returns the candidates it has and the runner reports the stop reason.
public protocol Strategy: Sendable {
    /// The `strategy` option value that selects it.
    var name: String { get }
    var needsVerifier: Bool { get }
    /// Default number of candidates when `n` is left out; nil if `n` does not apply.
    var defaultN: Int? { get }
    /// NFEs the strategy plans to spend (the default budget, and 100% progress).
    func plannedNFE(n: Int, nfePerCandidate: Int) -> Int
    /// Runs the search. Finished candidates go to `context.candidates` as they complete, so
    /// a refusal (budget, deadline, cancel) thrown out of here loses nothing.
    func run(_ context: JobContext) throws
}

/// One finished sample of a job.
public struct Candidate: Sendable {
    public let index: Int
    public let seed: UInt64
    public let latent: [Float]
    public let image: RGBImage
    /// Score under each verifier (by id), filled in by `JobContext.score`.
    public var scores: [String: Double] = [:]
    public var details: [String: String] = [:]
    /// Mean rank across verifiers among the job's candidates (1 = best); nil if unscored.
    public var meanRank: Double?
    public init(index: Int, seed: UInt64, latent: [Float], image: RGBImage) {
        self.index = index
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
}
