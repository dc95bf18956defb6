import AssayCore
import AssayPluginHost
import AssayStrategies
import Foundation
import XCTest

/// ReflectionFlow's `reflect` strategy through the strategy test kit, with the real
/// shapes-reflector: rounds, lineage history, the three levels, budgets.
final class ReflectTests: XCTestCase {
    /// A prompt the 8-step model often gets wrong, so reflections have something to say.
    let prompt = "a red circle left of a blue square"

    func options(_ own: [String: OptionValue], _ extra: [String: OptionValue] = [:]) -> [String: OptionValue] {
        var o = StrategyTests.common.merging(["reflector": .string("shapes-reflector")]) { $1 }.merging(extra) { $1 }
        o["strategy"] = .string("reflect")
        o["strategy_options"] = .dictionary(own)
        return o
    }

    func reflection(_ text: String?) -> [String: Any] {
        (text.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any]) ?? [:]
    }

    /// Each round reflects on the best images so far; a lineage's history reaches the
    /// reflector in order (the shapes reflector numbers its reflection 1 + the reflections
    /// it was shown), and the reflection level corrects the flawed image itself: its
    /// children are that image re-noised to t = strength and regenerated with the revised
    /// and negative prompts.
    func testRoundsCarryTheirLineageHistoryAndCorrectTheFlawedImage() throws {
        let k = try StrategyKit.require()
        let own: [String: OptionValue] = ["n": .unsigned(3), "rounds": .unsigned(3), "branches": .unsigned(1),
                                          "per_branch": .unsigned(2), "strength": .double(0.75)]
        let r = try k.run(prompt, options(own, ["seed": .unsigned(5)]))
        XCTAssertNil(r.stop)
        XCTAssertEqual(r.kit.candidates.count, 3 + 3 * 1 * 2)
        XCTAssertEqual(r.kit.meter.reflectorCalls, 3)
        let reflected = r.kit.nodes.filter { $0.reflection != nil }
        XCTAssertEqual(reflected.count, 3)
        for node in reflected {
            // How many reflected ancestors this image has = the history it was reflected with.
            let ancestors = r.kit.path(to: node.id).dropLast().filter { r.kit.nodes[$0].reflection != nil }
            XCTAssertEqual(reflection(node.reflection)["round"] as? Int, ancestors.count + 1,
                           "node \(node.id): the reflector did not see its lineage's \(ancestors.count) earlier reflections")
        }
        // Corrections descend from the reflected image through a re-noising to t = 0.75.
        for c in r.kit.candidates.dropFirst(3) {
            let path = r.kit.path(to: c.node).map { r.kit.nodes[$0] }
            let i = try XCTUnwrap(path.lastIndex { $0.op == .renoise })
            XCTAssertEqual(path[i].tTo, 0.75, accuracy: 1e-6)
            XCTAssertNotNil(path[i - 1].reflection, "a correction's parent is not the image that was reflected on")
            let cond = r.kit.conditions[r.kit.nodes[c.node].condition]
            let said = reflection(path[i - 1].reflection)
            XCTAssertEqual(cond.prompt, said["revised_prompt"] as? String)
            XCTAssertEqual(cond.negativePrompt, said["negative_prompt"] as? String)
        }
        // The result is the best image of all rounds.
        let best = try XCTUnwrap(r.best)
        XCTAssertEqual(best.node, r.kit.order(r.kit.candidates.map(\.node)).first)
    }

    /// Noise level alone calls no reflector and is best-of-n spread over rounds; noise +
    /// prompt makes fresh noise with the reflector's prompts.
    func testTheLevelsScaleWhatTheySay() throws {
        let k = try StrategyKit.require()
        let own: [String: OptionValue] = ["n": .unsigned(2), "rounds": .unsigned(2), "branches": .unsigned(2), "per_branch": .unsigned(1)]
        var noise = own
        noise["levels"] = .string("noise")
        let a = try k.run(prompt, options(noise))
        XCTAssertEqual(a.kit.meter.reflectorCalls, 0)
        XCTAssertEqual(a.kit.candidates.count, 6)
        XCTAssertTrue(a.kit.nodes.allSatisfy { $0.op != .renoise && $0.condition == 0 })
        XCTAssertEqual(a.kit.nodes.filter { $0.op == .noise }.count, 6, "every candidate of the noise level is fresh noise")

        var prompted = own
        prompted["levels"] = .string("noise+prompt")
        let b = try k.run(prompt, options(prompted))
        XCTAssertEqual(b.kit.meter.reflectorCalls, 4)
        XCTAssertTrue(b.kit.nodes.allSatisfy { $0.op != .renoise })
        XCTAssertTrue(b.kit.candidates.dropFirst(2).allSatisfy { b.kit.nodes[b.kit.root(of: $0.node)].parent == nil })
        // A reflection with a negative prompt conditions the next round's fresh noise with it.
        let negatives = Set(b.kit.nodes.compactMap { reflection($0.reflection)["negative_prompt"] as? String })
        let used = Set(b.kit.candidates.compactMap { b.kit.conditions[b.kit.nodes[$0.node].condition].negativePrompt })
        XCTAssertEqual(used, negatives)
    }

    /// Reflector calls are budgeted like NFEs: a budget of 1 stops the search on budget
    /// after one reflection, with the best so far; levels that reflect need a reflector.
    func testReflectorBudgetAndRefusals() throws {
        let k = try StrategyKit.require()
        let r = try k.run(prompt, options(["n": .unsigned(2), "rounds": .unsigned(3), "branches": .unsigned(1)],
                                          ["budget_reflector_calls": .unsigned(1)]))
        XCTAssertEqual(r.stop, .budget)
        XCTAssertEqual(r.kit.meter.reflectorCalls, 1)
        XCTAssertNotNil(r.best)
        var noReflector = options([:])
        noReflector["reflector"] = nil
        do { _ = try k.plan(prompt, noReflector); XCTFail("planned without a reflector") } catch {
            XCTAssertTrue("\(error)".contains("needs a reflector"), "\(error)")
        }
        XCTAssertNoThrow(try k.plan(prompt, { var o = noReflector; o["strategy_options"] = .dictionary(["levels": .string("noise")]); return o }()))
    }
}
