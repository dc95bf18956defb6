import AssayCore
import AssayPluginHost
import AssayStrategies
import Foundation
import XCTest

/// The strategy test kit: runs a strategy in process against real loaded plugins (the
/// build's shapes model and verifiers, dlopen'ed once per test process) with a real meter,
/// without D-Bus or a daemon, so every strategy gets fast unit tests. Plans go through the
/// real planner, so options are validated exactly as at Submit.
final class StrategyKit: @unchecked Sendable {
    struct Run {
        let kit: SearchToolkit
        /// What stopped the search early (budget, target, cancelled), nil when it completed.
        let stop: StopReason?
        var best: Candidate? { kit.best }
    }

    static let shared: StrategyKit? = {
        _ = TestEnvironment.pluginsBuilt
        let dir = TestEnvironment.buildPluginsDirectory
        guard FileManager.default.fileExists(atPath: dir + "/shapes.so"),
              FileManager.default.fileExists(atPath: dir + "/shapes-checker.so") else { return nil }
        let loader = try! DlopenPluginLoader(privateDirectory: TestEnvironment.temporaryDirectory("kit-private"))
        let registry = PluginRegistry(directories: [dir], loader: loader, onEvent: { _ in })
        registry.scanAll()
        return StrategyKit(registry: registry)
    }()

    let registry: PluginRegistry
    let planner: JobPlanner
    private var nextID: UInt64 = 1

    init(registry: PluginRegistry) {
        self.registry = registry
        planner = JobPlanner(registry: registry, catalog: BuiltinStrategies.catalog,
                             defaults: JobDefaults(models: ["shapes"], verifiers: ["shapes-checker"], strategy: "single"))
    }

    static func require() throws -> StrategyKit {
        guard let k = shared else { throw XCTSkip("the shapes plugins are not built (make -C Plugins)") }
        return k
    }

    func plan(_ prompt: String, _ options: [String: OptionValue]) throws -> JobPlan {
        try planner.plan(prompt: prompt, options: try JobOptions.parse(options))
    }

    /// Plans and runs one job's strategy; `cancelWhen` is polled by the meter.
    func run(_ prompt: String, _ options: [String: OptionValue],
             cancelWhen: (@Sendable (Job) -> Bool)? = nil) throws -> Run {
        let plan = try self.plan(prompt, options)
        let job = Job(id: nextID, prompt: prompt, plan: plan, client: "kit")
        nextID += 1
        let meter = BudgetMeter(nfeBudget: plan.budgetNFE, verifierBudget: plan.budgetVerifierCalls,
                                reflectorBudget: plan.budgetReflectorCalls, deadlineMs: plan.deadlineMs,
                                isCancelled: { [job] in cancelWhen?(job) ?? false })
        let call = PluginCallContext(jobID: job.id, isCancelled: { [meter] in meter.shouldStop })
        let (kit, _) = try JobRunner.makeToolkit(for: job, registry: registry, meter: meter, call: call)
        var stop: StopReason?
        do {
            try BuiltinStrategies.catalog.strategy(named: plan.strategy).run(kit)
        } catch let r as BudgetRefusal {
            stop = r.reason
        }
        return Run(kit: kit, stop: stop)
    }
}
