import AssayPluginHost
import FoundationEssentials

/// The record of one job, written next to its result: enough to audit it (who scored
/// what, what it cost), to see its search (`nodes`, the lineage of every state the search
/// made), and to replay it (`plan` + the plugin hashes).
///
/// Versions: 1 (Assay before the search engine) had candidates only; 2 adds
/// `manifest_version`, `conditions`, `nodes`, `result_node` and `chosen_path`, and moves
/// best-of-n's `n` into `plan.strategy_options`. Both decode; a newer version is refused.
public struct Manifest: Codable, Sendable {
    public static let currentVersion = 2
    public struct Plugin: Codable, Sendable, Equatable {
        public var id: String
        public var kind: String
        public var version: String
        public var path: String
        public var sha256: String
        public var generation: UInt64
    }
    public struct CandidateRecord: Codable, Sendable {
        public var index: Int
        /// Its node in `nodes` (version 2).
        public var node: Int?
        public var seed: UInt64
        public var scores: [String: Double]
        public var meanRank: Double?
        public var details: [String: String]
        public var latentSHA256: String
        public var image: String?
        enum CodingKeys: String, CodingKey {
            case index, node, seed, scores, details, image
            case meanRank = "mean_rank"
            case latentSHA256 = "latent_sha256"
        }
    }
    /// Where a job's time went. `sampling_ms` is the time in the sampling loops (noise,
    /// every evaluation with its guidance and bookkeeping, the integrator), of which
    /// `model_ms` is inside the model plugin: their difference is the host's per-evaluation
    /// overhead. `decode_ms`, `verifier_ms` and `write_ms` (PNG encoding and files) are
    /// per-candidate and per-job costs around it.
    public struct Timings: Codable, Sendable {
        public var queuedMs: Double
        public var runMs: Double
        public var samplingMs: Double
        public var modelMs: Double
        public var decodeMs: Double
        public var verifierMs: Double
        public var writeMs: Double
        enum CodingKeys: String, CodingKey {
            case queuedMs = "queued_ms", runMs = "run_ms", samplingMs = "sampling_ms", modelMs = "model_ms"
            case decodeMs = "decode_ms", verifierMs = "verifier_ms", writeMs = "write_ms"
        }
    }

    /// 1 when absent (manifests written before versions were recorded).
    public var manifestVersion: Int?
    public var assayVersion: String
    public var abiVersion: String
    public var jobID: UInt64
    public var prompt: String
    public var plan: JobPlan
    public var plugins: [Plugin]
    public var candidates: [CandidateRecord]
    public var conditions: [Condition]?
    public var nodes: [SearchNode]?
    public var resultNode: Int?
    /// Node ids from a root to the result.
    public var chosenPath: [Int]?
    public var bestIndex: Int?
    public var bestScore: Double?
    public var result: String?
    public var resultSHA256: String?
    public var state: String
    public var stopReason: String
    public var error: String?
    public var nfeUsed: Int
    public var verifierCalls: Int
    public var reflectorCalls: Int
    /// Model FLOPs run over FLOPs uncached (a caching sampler's saving); nil when the
    /// models report no FLOPs (ext/blocks.h).
    public var flopRatio: Double?
    /// The same over the middle blocks alone (what a caching sampler can skip); nil when no
    /// evaluation went through the blocks (no caching sampler ran).
    public var middleFlopRatio: Double? = nil
    /// What the strategy changed from its plan and why (e.g. fewer sketches under a budget).
    public var notes: [String]?
    public var timings: Timings

    enum CodingKeys: String, CodingKey {
        case prompt, plan, plugins, candidates, result, state, error, timings, conditions, nodes
        case manifestVersion = "manifest_version", resultNode = "result_node", chosenPath = "chosen_path"
        case assayVersion = "assay_version", abiVersion = "abi_version", jobID = "job_id"
        case bestIndex = "best_index", bestScore = "best_score", resultSHA256 = "result_sha256"
        case stopReason = "stop_reason", nfeUsed = "nfe_used", verifierCalls = "verifier_calls"
        case reflectorCalls = "reflector_calls", flopRatio = "flop_ratio", middleFlopRatio = "middle_flop_ratio", notes
    }

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return Array(try encoder.encode(self)) + [10]
    }

    public static func decode(_ bytes: [UInt8]) throws -> Manifest {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let m = try decoder.decode(Manifest.self, from: Data(bytes))
        if let v = m.manifestVersion, v > currentVersion {
            throw AssayError.invalidArgument("this manifest has version \(v), written by a newer Assay (\(m.assayVersion)); this one reads versions 1 to \(currentVersion)")
        }
        return m
    }
}

/// Where a job's files go: `<state>/jobs/<id>/{result.png,manifest.json,candidates/}`.
public struct ResultStore: Sendable {
    public let root: String
    public init(root: String) throws {
        try FileIO.makeDirectories(root + "/jobs", mode: 0o755)
        self.root = root
    }
    public func directory(for jobID: UInt64) -> String { "\(root)/jobs/\(jobID)" }
}
