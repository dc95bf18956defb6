import AssayCore
import AssayPluginHost
import AssayStrategies
import XCTest

/// Every strategy, in process through the strategy test kit, on the embedded shapes model
/// and the exact checker (8 steps with guidance: 16 NFEs a sample, to keep tests quick).
final class StrategyTests: XCTestCase {
    static let prompt = "a red circle"
    static let common: [String: OptionValue] = ["steps": .unsigned(8), "seed": .unsigned(11)]
    /// A small search per strategy.
    static let searches: [(String, [String: OptionValue])] = [
        ("single", [:]),
        ("best-of-n", ["n": .unsigned(4)]),
        ("zero-order", ["n": .unsigned(2), "iterations": .unsigned(2)]),
        ("paths", ["n": .unsigned(2), "m": .unsigned(2), "length": .unsigned(2)]),
        ("halving", ["n": .unsigned(6), "rounds": .unsigned(2)]),
        ("particles", ["n": .unsigned(3), "interval": .unsigned(2)]),
        ("cofusion", ["n": .unsigned(4), "k": .unsigned(3), "m": .unsigned(2)]),
        ("reflect", ["n": .unsigned(3), "rounds": .unsigned(2), "branches": .unsigned(2), "per_branch": .unsigned(1)]),
    ]
    /// Job options a strategy needs besides its own (its model roles).
    static let needs: [String: [String: OptionValue]] = [
        "cofusion": ["models": .dictionary(["draft": .string("shapes-turbo")])],
        "reflect": ["reflector": .string("shapes-reflector")],
    ]

    func options(_ strategy: String, _ own: [String: OptionValue], _ extra: [String: OptionValue] = [:]) -> [String: OptionValue] {
        var o = StrategyTests.common.merging(StrategyTests.needs[strategy] ?? [:]) { $1 }.merging(extra) { $1 }
        o["strategy"] = .string(strategy)
        if !own.isEmpty { o["strategy_options"] = .dictionary(own) }
        return o
    }

    func testEveryStrategyIsTestedHere() {
        XCTAssertEqual(Set(StrategyTests.searches.map(\.0)), Set(BuiltinStrategies.catalog.strategies.keys))
    }

    /// Same plan, same search: every node bit for bit, the same result; and the lineage
    /// holds together (parents exist and come first, the result's path leads to a root, the
    /// nodes' NFEs add up to what the meter counted).
    func testEveryStrategyReplaysBitIdenticallyWithConsistentLineage() throws {
        let k = try StrategyKit.require()
        for (name, own) in StrategyTests.searches {
            let a = try k.run(StrategyTests.prompt, options(name, own))
            let b = try k.run(StrategyTests.prompt, options(name, own))
            XCTAssertNil(a.stop, "\(name) stopped early: \(String(describing: a.stop))")
            XCTAssertEqual(a.kit.nodes, b.kit.nodes, "\(name): the search tree differs between two runs of one plan")
            XCTAssertEqual(a.best?.node, b.best?.node, name)
            XCTAssertEqual(a.best?.latent, b.best?.latent, name)
            let nodes = a.kit.nodes
            XCTAssertFalse(nodes.isEmpty, name)
            for n in nodes {
                XCTAssertEqual(n.id, nodes.firstIndex(of: n), name)
                if let p = n.parent { XCTAssertLessThan(p, n.id, "\(name): node \(n.id)'s parent comes after it") } else {
                    XCTAssertEqual(n.op, .noise, "\(name): root \(n.id) is not a noise")
                }
            }
            guard let best = a.best else { return XCTFail("\(name) found nothing") }
            let path = a.kit.path(to: best.node)
            XCTAssertNil(nodes[path[0]].parent, name)
            XCTAssertEqual(path.last, best.node, name)
            XCTAssertEqual(nodes[best.node].pool, SearchToolkit.finalPool, name)
            XCTAssertEqual(nodes[best.node].tTo, 0, name)
            XCTAssertEqual(nodes.reduce(0) { $0 + $1.nfe }, a.kit.meter.nfeUsed, "\(name): nodes' NFEs do not add up to the meter's")
            XCTAssertEqual(a.kit.meter.nfeUsed, BuiltinStrategies.catalog.strategies[name]!.plannedNFE(a.kit.options, cost: a.kit.cost),
                           "\(name) spent other than it planned")
        }
    }

    /// A node recomputed alone (a batch of one, from its ancestors) equals its value in the
    /// search's batches: the model's batch invariance and tree-keyed noise together.
    func testNodesReplayedAloneEqualTheirValueInTheBatch() throws {
        let k = try StrategyKit.require()
        for (name, own) in StrategyTests.searches where name != "single" {
            let r = try k.run(StrategyTests.prompt, options(name, own, ["budget_nfe": .unsigned(100_000)]))
            let nodes = r.kit.nodes
            var picks = Set([r.best!.node, nodes.count - 1, nodes.count / 2])
            if let x0 = nodes.last(where: { $0.op == .x0 }) { picks.insert(x0.id) }
            for id in picks.sorted() {
                let alone = try r.kit.replay(id)
                let sha = alone.withUnsafeBytes { SHA256.hex(Array($0)) }
                XCTAssertEqual(sha, nodes[id].latentSHA256, "\(name): node \(id) (\(nodes[id].op)) replayed alone differs from its value in the batch")
            }
        }
    }

    /// Halving's checkpoints split the schedule at its own points and reuse the probe's
    /// velocity, so its survivors are exactly best-of-n's candidates of the same roots.
    func testHalvingSurvivorsAreBestOfNsCandidatesOfTheSameSeeds() throws {
        let k = try StrategyKit.require()
        let halving = try k.run(StrategyTests.prompt, options("halving", ["n": .unsigned(6), "rounds": .unsigned(2),
                                                                          "keep": .double(0.5), "first": .double(0.25)]))
        let bon = try k.run(StrategyTests.prompt, options("best-of-n", ["n": .unsigned(6)]))
        XCTAssertEqual(halving.kit.candidates.count, 1, "6 -> 3 -> 1 with keep 0.5")
        for c in halving.kit.candidates {
            let root = Int(halving.kit.nodes[halving.kit.root(of: c.node)].seedPath[0])
            XCTAssertEqual(c.latent, bon.kit.candidates[root].latent, "halving's survivor of root \(root) differs from best-of-n's candidate \(root)")
        }
        // It costs less: 6 candidates for 2 steps, 3 for 3, 1 for 3, plus one probe for each
        // of the 5 dropped (guided, 2 NFEs an evaluation): 2*(12+9+3+5) = 58 < 96.
        XCTAssertEqual(halving.kit.meter.nfeUsed, 58)
        XCTAssertEqual(bon.kit.meter.nfeUsed, 96)
    }

    /// No strategy ever spends past its budget, tiny budgets included, and one too small
    /// for a sample is refused at planning.
    func testNoStrategyExceedsItsBudget() throws {
        let k = try StrategyKit.require()
        let big: [String: [String: OptionValue]] = [
            "best-of-n": ["n": .unsigned(50)], "zero-order": ["iterations": .unsigned(20)],
            "paths": ["m": .unsigned(8), "length": .unsigned(2)], "halving": ["n": .unsigned(40)],
            "particles": ["n": .unsigned(20)], "single": [:], "cofusion": ["n": .unsigned(12), "k": .unsigned(3), "m": .unsigned(3)],
            "reflect": ["n": .unsigned(2), "rounds": .unsigned(6)],
        ]
        for (name, own) in big {
            for budget in [16, 17, 31, 50, 75] {
                let r = try k.run(StrategyTests.prompt, options(name, own, ["budget_nfe": .unsigned(UInt64(budget))]))
                XCTAssertLessThanOrEqual(r.kit.meter.nfeUsed, budget, "\(name) overspent budget \(budget)")
                // Work lost to a refusal mid-batch is spent but makes no node.
                XCTAssertLessThanOrEqual(r.kit.nodes.reduce(0) { $0 + $1.nfe }, r.kit.meter.nfeUsed, name)
                // Two samples' worth always finishes something (paths pays one extra step for
                // splitting the schedule at sigma, so one sample's worth may not).
                if budget >= 31 { XCTAssertFalse(r.kit.candidates.isEmpty, "\(name) with budget \(budget) finished nothing") }
                if name == "paths" || name == "best-of-n" || name == "zero-order" {
                    XCTAssertEqual(r.stop, .budget, "\(name) was cut short by budget \(budget) but says \(String(describing: r.stop))")
                }
            }
        }
        // Sized to the budget when the size is left out: best-of-n at 80 NFEs runs 5 samples.
        let sized = try k.plan(StrategyTests.prompt, options("best-of-n", [:], ["budget_nfe": .unsigned(80)]))
        XCTAssertEqual(sized.strategyOptions.int("n"), 5)
        // Zero-order's last iteration may be partial, so it spends what the budget pays for:
        // 72 NFEs = 4 samples = the pivot and one iteration of 3 neighbours.
        let zo = try k.run(StrategyTests.prompt, options("zero-order", [:], ["budget_nfe": .unsigned(72)]))
        XCTAssertEqual(zo.kit.options.int("iterations"), 1)
        XCTAssertEqual(zo.kit.candidates.count, 4)
        XCTAssertNil(zo.stop)
        let calls = try k.run(StrategyTests.prompt, options("best-of-n", ["n": .unsigned(6)], ["budget_verifier_calls": .unsigned(3)]))
        XCTAssertLessThanOrEqual(calls.kit.meter.verifierCalls, 3)
        XCTAssertEqual(calls.stop, .budget)
    }

    func testBadStrategyOptionsAreRefusedWithWhatToChange() throws {
        let k = try StrategyKit.require()
        func refusal(_ strategy: String, _ own: [String: OptionValue], _ extra: [String: OptionValue] = [:]) -> String {
            do {
                _ = try k.plan(StrategyTests.prompt, options(strategy, own, extra))
                return "(accepted)"
            } catch let e as AssayError {
                XCTAssertEqual(e.name, "io.assay.Error.InvalidArgument")
                return e.message
            } catch { return "\(error)" }
        }
        var m = refusal("paths", ["forward": .double(0.8), "backward": .double(0.5)])
        XCTAssertTrue(m.contains("backward > forward") && m.contains("raise backward"), m)
        m = refusal("zero-order", ["neighbors": .unsigned(3)])
        XCTAssertTrue(m.contains("has no option 'neighbors'") && m.contains("n, iterations, similarity"), m)
        m = refusal("zero-order", ["similarity": .double(1.5)])
        XCTAssertTrue(m.contains("'similarity'") && m.contains("between 0.0 and 0.9999"), m)
        m = refusal("particles", ["potential": .string("mean")])
        XCTAssertTrue(m.contains("one of max, diff, last"), m)
        m = refusal("halving", ["n": .string("8")])
        XCTAssertTrue(m.contains("must be a whole number (u)"), m)
        m = refusal("best-of-n", ["n": .unsigned(3)], ["n": .unsigned(4)])
        XCTAssertTrue(m.contains("disagree"), m)
        m = refusal("single", ["n": .unsigned(3)])
        XCTAssertTrue(m.contains("strategy 'single' has no option 'n'"), m)
        m = refusal("zero-order", [:], ["models": .dictionary(["draft": .string("shapes-turbo")])])
        XCTAssertTrue(m.contains("has no model role 'draft'"), m)
    }

    /// Cancelled mid-search, a strategy keeps what it finished: the best so far.
    func testCancelMidSearchKeepsTheBestSoFar() throws {
        let k = try StrategyKit.require()
        let r = try k.run(StrategyTests.prompt, options("zero-order", ["n": .unsigned(1), "iterations": .unsigned(8)]),
                          cancelWhen: { $0.snapshot.candidates >= 3 })
        XCTAssertEqual(r.stop, .cancelled)
        XCTAssertGreaterThanOrEqual(r.kit.candidates.count, 3)
        XCTAssertLessThan(r.kit.candidates.count, 9)
        XCTAssertNotNil(r.best)
    }

    /// target_score makes any search anytime: it stops at the first finished candidate that
    /// reaches it.
    func testTargetScoreStopsTheSearchAtTheFirstCandidateThatReachesIt() throws {
        let k = try StrategyKit.require()
        let r = try k.run(StrategyTests.prompt, options("best-of-n", ["n": .unsigned(16)], ["target_score": .double(1)]))
        XCTAssertEqual(r.stop, .target)
        XCTAssertGreaterThanOrEqual(r.kit.bestScore, 1)
        XCTAssertLessThan(r.kit.candidates.count, 16, "it ran on after reaching the target")
        XCTAssertLessThan(r.kit.meter.nfeUsed, r.kit.plan.budgetNFE)
    }

    /// Particles resample (keyed, so it replays) and, on the stochastic sampler, copies of
    /// one particle part ways after resampling instead of staying identical.
    func testParticlesResampleAndTheirCopiesDiverge() throws {
        let k = try StrategyKit.require()
        let own: [String: OptionValue] = ["n": .unsigned(4), "interval": .unsigned(2), "resample": .string("interval"),
                                          "lambda": .double(50), "potential": .string("diff")]
        let r = try k.run(StrategyTests.prompt, options("particles", own))
        XCTAssertNil(r.stop)
        let nodes = r.kit.nodes
        let copies = nodes.filter { $0.op == .resample }
        XCTAssertEqual(copies.count, 4 * 3, "3 resamplings of 4 particles at steps 2, 4, 6 of 8")
        let byParent = Dictionary(grouping: copies, by: { $0.parent! })
        let twins = try XCTUnwrap(byParent.values.first { $0.count >= 2 }, "resampling never picked a particle twice")
        let next = twins.prefix(2).map { t in nodes.first { $0.parent == t.id && $0.op == .sde }!.latentSHA256 }
        XCTAssertNotEqual(next[0], next[1], "copies of one particle stayed identical")
        XCTAssertEqual(try k.run(StrategyTests.prompt, options("particles", own)).kit.nodes, nodes)
    }

    /// Conditions per row: one row continues under its own negative prompt, costing the
    /// same, and differs from its twin; rows without it are untouched.
    func testRowsCarryTheirOwnConditions() throws {
        let k = try StrategyKit.require()
        let r = try k.run(StrategyTests.prompt, options("single", [:], ["budget_nfe": .unsigned(1000)]))
        let kit = r.kit
        let own = kit.condition(Condition(prompt: StrategyTests.prompt, negativePrompt: "a blue square", guidance: 3))
        let noise = try kit.roots(2)
        let mixed = kit.withCondition(noise, rows: [1], condition: own)
        let before = kit.meter.nfeUsed
        let out = try kit.integrate(mixed, to: 0)
        XCTAssertEqual(kit.meter.nfeUsed - before, 2 * 8 * 2)
        let plain = try kit.integrate(noise, to: 0)
        XCTAssertEqual(kit.nodes[out.nodes[1]].condition, own)
        XCTAssertEqual(Array(out.latent(0)), Array(plain.latent(0)), "a row is unaffected by its neighbour's condition")
        XCTAssertNotEqual(Array(out.latent(1)), Array(plain.latent(1)), "the negative prompt changed nothing")
        XCTAssertEqual(kit.conditions.count, 2)
    }
}

/// Reflector calls and model hand-overs through the toolkit.
final class ToolkitTests: XCTestCase {
    func options(_ extra: [String: OptionValue]) -> [String: OptionValue] {
        StrategyTests.common.merging(["strategy": .string("single"), "verifiers": .strings(["shapes-checker"])]) { $1 }
            .merging(extra) { $1 }
    }

    /// Reflector calls are metered like verifier calls: counted, and refused past
    /// budget_reflector_calls.
    func testReflectorCallsAreMeteredAndBudgeted() throws {
        let k = try StrategyKit.require()
        let r = try k.run(StrategyTests.prompt, options(["reflector": .string("shapes-reflector"), "budget_reflector_calls": .unsigned(2)]))
        let node = try XCTUnwrap(r.best?.node)
        let feedback = try r.kit.reflect([node, node])
        XCTAssertEqual(feedback.count, 2)
        XCTAssertTrue(feedback[0].contains("\"feedback\""), feedback[0])
        XCTAssertEqual(r.kit.meter.reflectorCalls, 2)
        XCTAssertEqual(r.kit.job.snapshot.reflectorCalls, 2)
        XCTAssertThrowsError(try r.kit.reflect([node])) { XCTAssertEqual(($0 as? BudgetRefusal)?.reason, .budget) }
        XCTAssertEqual(r.kit.meter.reflectorCalls, 2)
        // A job without a reflector cannot reflect, and an unknown one is refused at planning.
        let plain = try k.run(StrategyTests.prompt, options([:]))
        XCTAssertThrowsError(try plain.kit.reflect([plain.best!.node]))
        XCTAssertThrowsError(try k.plan(StrategyTests.prompt, options(["reflector": .string("shapes-checker")]))) {
            XCTAssertTrue("\($0)".contains("is a verifier, not a reflector"), "\($0)")
        }
    }

    /// A latent passes from one model role to another only when both declare the same
    /// latent space: the base model and its turbo student do, so the student can finish a
    /// base trajectory (Co-Fusion's hand-over).
    func testHandOverNeedsTheSameLatentSpace() throws {
        let k = try StrategyKit.require()
        let r = try k.run(StrategyTests.prompt, options(["budget_nfe": .unsigned(1000)]))
        let kit = r.kit
        let base = try XCTUnwrap(kit.base.latentSpace, "shapes declares no latent space")
        guard let turbo = k.registry.instance(id: "shapes-turbo") else { throw XCTSkip("shapes-turbo is not loaded") }
        XCTAssertEqual(turbo.latentSpaceID, base)
        let draft = Denoiser(role: "draft", model: ModelPlugin(turbo)!, meter: kit.meter, context: kit.call)
        let twoRoles = SearchToolkit(job: kit.job, denoisers: ["base": kit.base, "draft": draft], verifiers: kit.verifiers,
                                     reflector: nil, sampler: nil, meter: kit.meter, call: kit.call)
        let mid = try twoRoles.integrate(try twoRoles.roots(2), to: twoRoles.times[4])
        let handed = try twoRoles.handOver(mid, to: "draft")
        XCTAssertEqual(handed.role, "draft")
        let done = try twoRoles.integrate(handed, to: 0, steps: 2)
        XCTAssertEqual(twoRoles.nodes[done.nodes[0]].model, "shapes-turbo")
        XCTAssertEqual(twoRoles.nodes[done.nodes[0]].nfe, 2, "the student runs unguided: 1 NFE a step")
        XCTAssertEqual(try twoRoles.finish(done).count, 2)
        // A model that declares no latent space takes no hand-over.
        if let example = k.registry.instance(id: "example-model") {
            let other = Denoiser(role: "other", model: ModelPlugin(example)!, meter: kit.meter, context: kit.call)
            let mixed = SearchToolkit(job: kit.job, denoisers: ["base": kit.base, "other": other], verifiers: [],
                                      reflector: nil, sampler: nil, meter: kit.meter, call: kit.call)
            XCTAssertThrowsError(try mixed.handOver(try mixed.roots(1), to: "other")) {
                XCTAssertTrue("\($0)".contains("latent spaces are"), "\($0)")
            }
        }
    }
}
