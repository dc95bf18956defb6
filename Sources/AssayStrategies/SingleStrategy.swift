import AssayCore

/// One sample from the job's seed: the baseline every search is compared with. If
/// verifiers are configured it is scored too, so its quality is on record.
public struct SingleStrategy: Strategy {
    public init() {}
    public var name: String { "single" }
    public var summary: String { "one sample from the job's seed, no search (the baseline)" }
    public var needsVerifier: Bool { false }
    public var options: [StrategyOption] { [] }
    public func plannedNFE(_ options: StrategyOptions, cost: SearchCost) -> Int { cost.perSample }
    public func run(_ kit: SearchToolkit) throws {
        try kit.finish(try kit.integrate(try kit.roots(1), to: 0))
    }
}
