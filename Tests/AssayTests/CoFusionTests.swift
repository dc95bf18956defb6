import AssayCore
import AssayPluginHost
import AssayStrategies
import XCTest

/// SF2's Co-Fusion through the strategy test kit: the base model's first k steps, sketches
/// by the turbo student or a sampler plugin, early selection, continuation, reflection.
final class CoFusionTests: XCTestCase {
    func options(_ own: [String: OptionValue], _ extra: [String: OptionValue] = [:]) -> [String: OptionValue] {
        var o = StrategyTests.common.merging(StrategyTests.needs["cofusion"]!) { $1 }.merging(extra) { $1 }
        o["strategy"] = .string("cofusion")
        o["strategy_options"] = .dictionary(own)
        return o
    }

    /// A continuation starts from the exact stored x_{t_k}: without reflection the result is
    /// bit for bit the full base trajectory of its root, i.e. best-of-n's candidate of the
    /// same root index; the sketches come from the student, and selection is by sketch.
    func testContinuationIsTheFullBaseTrajectoryOfItsSeed() throws {
        let k = try StrategyKit.require()
        let r = try k.run(StrategyTests.prompt, options(["n": .unsigned(5), "k": .unsigned(3), "m": .unsigned(2)]))
        let bon = try k.run(StrategyTests.prompt, StrategyTests.common.merging(["strategy": .string("best-of-n"),
                                                                                "strategy_options": .dictionary(["n": .unsigned(5)])]) { $1 })
        XCTAssertNil(r.stop)
        XCTAssertEqual(r.kit.candidates.count, 2)
        let sketches = r.kit.nodes.filter { $0.pool == "sketch" }
        XCTAssertEqual(sketches.count, 5)
        XCTAssertTrue(sketches.allSatisfy { $0.model == "shapes-turbo" && $0.role == "draft" })
        for c in r.kit.candidates {
            let root = Int(r.kit.nodes[r.kit.root(of: c.node)].seedPath[0])
            XCTAssertEqual(c.latent, bon.kit.candidates[root].latent, "the continuation of root \(root) is not its base trajectory")
            // Its path: noise -> base to t_k -> base to 0, with the sketch a sibling branch.
            let path = r.kit.path(to: c.node).map { r.kit.nodes[$0] }
            XCTAssertEqual(path.map(\.op), [.noise, .integrate, .integrate])
            XCTAssertEqual(Float(path[1].tTo), r.kit.times[3])
        }
        // The continued ones are the best-ranked sketches.
        let ranked = r.kit.order(sketches.map(\.id))
        let continuedRoots = Set(r.kit.candidates.map { r.kit.root(of: $0.node) })
        XCTAssertEqual(continuedRoots, Set(ranked.prefix(2).map { r.kit.root(of: $0) }))
        // 5 x (3 steps x 2 NFE + a 4-step student from t = 5/8 entering at z = 2: 2 NFE) + 2 x 5 x 2.
        XCTAssertEqual(r.kit.meter.nfeUsed, 5 * (6 + 2) + 2 * 10)
    }

    /// Too small a budget: fewer sketches, and when no continuation fits, the best sketch is
    /// the result; both are noted, and the job stops on budget without overspending.
    func testABudgetTooSmallDegradesAndSaysSo() throws {
        let k = try StrategyKit.require()
        // The plan: 8 x (6 + 2) + 10 = 74 NFEs. 50 pays for 5 sketches and one continuation.
        let fewer = try k.run(StrategyTests.prompt, options(["n": .unsigned(8), "k": .unsigned(3)], ["budget_nfe": .unsigned(50)]))
        XCTAssertEqual(fewer.kit.nodes.filter { $0.pool == "sketch" }.count, 5)
        XCTAssertEqual(fewer.kit.candidates.count, 1)
        XCTAssertTrue(fewer.kit.notes.contains { $0.contains("5 of the 8 planned sketches") }, "\(fewer.kit.notes)")
        XCTAssertLessThanOrEqual(fewer.kit.meter.nfeUsed, 50)
        // 9 NFEs: one sketch (8) and no continuation (10).
        let sketchOnly = try k.run(StrategyTests.prompt, options(["n": .unsigned(4), "k": .unsigned(3)], ["budget_nfe": .unsigned(16)]))
        XCTAssertEqual(sketchOnly.stop, .budget)
        XCTAssertEqual(sketchOnly.kit.candidates.count, 1)
        XCTAssertEqual(sketchOnly.best.map { sketchOnly.kit.nodes[$0.node].role }, "draft", "the result is not the sketch")
        XCTAssertTrue(sketchOnly.kit.notes.contains { $0.contains("the best sketch is the result") }, "\(sketchOnly.kit.notes)")
        XCTAssertLessThanOrEqual(sketchOnly.kit.meter.nfeUsed, 16)
    }

    /// The fast path must share the base model's latent space; options that cannot work are
    /// refused at planning with what to change.
    func testRefusalsAtPlanning() throws {
        let k = try StrategyKit.require()
        func refusal(_ own: [String: OptionValue], _ extra: [String: OptionValue] = [:]) -> String {
            do { _ = try k.plan(StrategyTests.prompt, options(own, extra)); return "(accepted)" } catch { return "\(error)" }
        }
        if k.registry.instance(id: "example-model") != nil {
            let m = refusal([:], ["models": .dictionary(["draft": .string("example-model")])])
            XCTAssertTrue(m.contains("cannot continue latents") && m.contains("latent spaces are"), m)
        }
        var m = refusal(["k": .unsigned(8)])
        XCTAssertTrue(m.contains("'k'") && m.contains("below the job's 8 steps"), m)
        m = refusal(["n": .unsigned(2), "m": .unsigned(3)])
        XCTAssertTrue(m.contains("cannot exceed n"), m)
        m = refusal(["fast": .string("sampler")])
        XCTAssertTrue(m.contains("pass 'sampler'"), m)
        m = refusal(["reflect": .string("on")])
        XCTAssertTrue(m.contains("needs a reflector"), m)
        var noDraft = options([:])
        noDraft["models"] = nil
        do { _ = try k.plan(StrategyTests.prompt, noDraft); XCTFail("planned without a draft model") } catch {
            XCTAssertTrue("\(error)".contains("with fast=model needs a model for role 'draft'"), "\(error)")
        }
        XCTAssertNoThrow(try k.plan(StrategyTests.prompt, options(["fast": .string("sampler")], ["sampler": .string("example-heun"),
                                                                                                   "models": .dictionary([:])])))
    }

    /// Visual reflection: the reflector sees the preview and the sketch of each selected
    /// trajectory; its negative prompt conditions that trajectory's continuation only, and
    /// lineage records preview, reflection and final.
    func testVisualReflectionConditionsTheContinuation() throws {
        let k = try StrategyKit.require()
        let prompt = "a red circle above a blue square"
        var withNegative = 0
        for seed in [3, 5, 7] as [UInt64] {
            let own: [String: OptionValue] = ["n": .unsigned(4), "k": .unsigned(3), "m": .unsigned(2), "reflect": .string("on")]
            let r = try k.run(prompt, options(own, ["seed": .unsigned(seed), "reflector": .string("shapes-reflector")]))
            XCTAssertNil(r.stop)
            XCTAssertEqual(r.kit.meter.reflectorCalls, 2)
            let reflected = r.kit.nodes.filter { $0.reflection != nil }
            XCTAssertEqual(reflected.count, 2)
            let previews = r.kit.nodes.filter { $0.op == .x0 }
            XCTAssertEqual(previews.count, 2)
            XCTAssertTrue(previews.allSatisfy { r.kit.images[$0.id] != nil }, "a preview was not decoded")
            for c in r.kit.candidates {
                let path = r.kit.path(to: c.node)
                let at = r.kit.nodes[path[1]]
                let text = try XCTUnwrap(at.reflection, "the continued trajectory's x_{t_k} has no reflection")
                let cond = r.kit.conditions[r.kit.nodes[c.node].condition]
                if let neg = CoFusionStrategy.negativePrompt(text) {
                    withNegative += 1
                    XCTAssertEqual(cond.negativePrompt, neg, "the continuation ignored the reflector's negative prompt")
                } else {
                    XCTAssertEqual(r.kit.nodes[c.node].condition, 0)
                }
            }
            XCTAssertEqual(r.kit.meter.nfeUsed, r.kit.nodes.reduce(0) { $0 + $1.nfe })
        }
        XCTAssertGreaterThan(withNegative, 0, "the reflector never wrote a negative prompt on a failing prompt")
    }
}
