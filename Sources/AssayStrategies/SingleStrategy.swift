import AssayCore

/// One sample from the job's seed: the baseline every search is compared with. If
/// verifiers are configured it is scored too, so its quality is on record.
public struct SingleStrategy: Strategy {
    public init() {}
    public var name: String { "single" }
    public var needsVerifier: Bool { false }
    public var defaultN: Int? { nil }
    public func plannedNFE(n: Int, nfePerCandidate: Int) -> Int { nfePerCandidate }
    public func run(_ context: JobContext) throws {
        try context.generate(indices: [0])
    }
}
