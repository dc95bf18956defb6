/// One node of a job's search tree, as the manifest records it: where it came from
/// (parent, operation, model, time range, condition), the key of its noise, what it cost
/// and how it scored. Nodes are the lineage: following `parent` from the result leads to
/// a root, and `SearchToolkit.replay` recomputes any node alone from its ancestors.
public struct SearchNode: Codable, Sendable, Equatable {
    /// What made a node. Random operations draw their noise from the node's `seedPath`.
    public enum Operation: String, Codable, Sendable {
        /// Fresh Gaussian noise at t = 1 (random): a root, or, with a parent, a new start
        /// for a lineage that continues from the parent's image through its condition (a
        /// corrector conditioned on the parent as its reference image).
        case noise
        /// The parent integrated from t_from down to t_to by the ODE (Euler or a sampler).
        case integrate
        /// The parent's x0-prediction x̂0 = x_t - t v(x_t) (a probe; t_to = 0).
        case x0
        /// A zero-order neighbour of the parent noise (random).
        case neighbour
        /// The parent noised forward from t_from up to t_to (random).
        case renoise
        /// One stochastic step from t_from to t_to that keeps the marginals (random).
        case sde
        /// A copy of the parent (particle resampling).
        case resample
        /// The parent's latent handed to another model role with the same latent space.
        case handover
    }

    public var id: Int
    public var parent: Int?
    public var op: Operation
    public var role: String
    public var model: String
    public var tFrom: Double
    public var tTo: Double
    /// Index into the manifest's `conditions`.
    public var condition: Int
    /// The node's position in the tree: [root index, child position, ...]; its noise seed
    /// is `NoiseSource.seed(jobSeed:path:)` of it.
    public var seedPath: [UInt64]
    /// NFEs spent to make this node (its share of a batched evaluation).
    public var nfe: Int
    /// Integration steps (for `integrate` with its own step count; nil = the model's schedule).
    public var steps: Int?
    /// Strength of the random operation: cosine similarity of a neighbour, churn of an sde step.
    public var strength: Double?
    /// The pool it was ranked in, when scored ("final" for finished candidates).
    public var pool: String?
    public var scores: [String: Double] = [:]
    public var meanRank: Double?
    /// The candidate index when it is a finished candidate.
    public var candidate: Int?
    /// Image file relative to the job directory (when images are kept).
    public var image: String?
    public var latentSHA256: String
    /// The sampler plugin that integrated it (nil: the built-in Euler integrator).
    public var sampler: String?
    /// For a sampler's integration: model FLOPs run over FLOPs uncached (a caching sampler's
    /// saving; see ext/blocks.h).
    public var flopRatio: Double?
    /// The reflector's JSON on this node (visual reflection), when it was reflected on.
    public var reflection: String?

    enum CodingKeys: String, CodingKey {
        case id, parent, op, role, model, condition, nfe, steps, strength, pool, scores, candidate, image
        case tFrom = "t_from", tTo = "t_to", seedPath = "seed_path", meanRank = "mean_rank"
        case latentSHA256 = "latent_sha256", sampler, flopRatio = "flop_ratio", reflection
    }
}
