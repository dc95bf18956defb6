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

    // MARK: the trained corrector (shapes-corrector, ext/draft/model-reference.h)

    func correctorOptions(_ own: [String: OptionValue] = [:]) -> [String: OptionValue] {
        options(own.merging(["corrector": .string("trained")]) { $1 },
                ["models": .dictionary(["corrector": .string("shapes-corrector")])])
    }

    /// Each correction is fresh noise on the corrector role, a child of the image reflected
    /// on, conditioned on the job's prompt, the reflection's feedback as instruction and
    /// that image as reference; the corrections of a lineage look like its own flawed
    /// image more than like the other lineage's (the reference reaches the model, and the
    /// right one); NFEs cost what the plan priced; every candidate replays alone bit for bit.
    func testTrainedCorrectorTakesTheFlawedImageAndItsReflection() throws {
        let k = try StrategyKit.require()
        let own: [String: OptionValue] = ["n": .unsigned(2), "rounds": .unsigned(1), "branches": .unsigned(2), "per_branch": .unsigned(2)]
        let r = try k.run(prompt, correctorOptions(own))
        XCTAssertNil(r.stop)
        XCTAssertEqual(r.kit.candidates.count, 2 + 2 * 2)
        XCTAssertEqual(r.kit.meter.nfeUsed, r.kit.job.plan.budgetNFE, "the corrector's NFEs differ from the planned price")
        XCTAssertEqual(r.kit.meter.nfeUsed, 6 * 8 * 2, "8 guided steps per image")
        // The same job with room left in its budget, for replaying nodes alone.
        let roomy = try k.run(prompt, correctorOptions(own).merging(["budget_nfe": .unsigned(400)]) { $1 })
        XCTAssertEqual(roomy.kit.candidates.map(\.latent), r.kit.candidates.map(\.latent))
        var own_ = 0.0, other = 0.0
        let flawedImages = Set(r.kit.candidates.prefix(2).map(\.node))
        for c in r.kit.candidates.dropFirst(2) {
            let node = r.kit.nodes[c.node]
            XCTAssertEqual(node.role, "corrector")
            XCTAssertEqual(node.model, "shapes-corrector")
            let start = r.kit.nodes[try XCTUnwrap(node.parent)]
            XCTAssertEqual(start.op, .noise)
            let flawed = try XCTUnwrap(start.parent, "a correction does not descend from the image it corrects")
            XCTAssertNotNil(r.kit.nodes[flawed].reflection)
            let cond = r.kit.conditions[node.condition]
            XCTAssertEqual(cond.reference, flawed)
            XCTAssertEqual(cond.instruction ?? "", (reflection(r.kit.nodes[flawed].reflection)["feedback"] as? String) ?? "")
            XCTAssertEqual(cond.prompt, prompt, "the corrector runs on the job's prompt")
            XCTAssertNil(cond.negativePrompt)
            XCTAssertEqual(try roomy.kit.replay(c.node), c.latent, "candidate \(c.index) alone differs from its value in the search")
            let mine = r.kit.images[c.node]!.pixels
            func distance(_ id: Int) -> Double {
                zip(mine, r.kit.images[id]!.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(mine.count)
            }
            own_ += distance(flawed)
            other += distance(flawedImages.subtracting([flawed]).first!)
        }
        XCTAssertLessThan(own_, other, "corrections are no closer to their own flawed image than to the other lineage's")
    }

    /// A model without the reference extension is refused as a corrector with the reason;
    /// so is a corrector the options would not use, and a trained corrector at a level
    /// that corrects nothing. Without the role, the training-free path runs.
    func testCorrectorRefusals() throws {
        let k = try StrategyKit.require()
        func refusal(_ o: [String: OptionValue]) -> String {
            do { _ = try k.plan(prompt, o); return "planned" } catch { return "\(error)" }
        }
        var noRole = correctorOptions()
        noRole["models"] = nil
        XCTAssertTrue(refusal(noRole).contains("needs a model for role 'corrector'"), refusal(noRole))
        var plain = correctorOptions()
        plain["models"] = .dictionary(["corrector": .string("shapes")])
        XCTAssertTrue(refusal(plain).contains("model 'shapes' (role corrector) cannot correct images: it has no assay.model-reference.draft/1"), refusal(plain))
        var unused = options([:])
        unused["models"] = .dictionary(["corrector": .string("shapes-corrector")])
        XCTAssertTrue(refusal(unused).contains("pass corrector=trained"), refusal(unused))
        let promptOnly = correctorOptions(["levels": .string("noise+prompt")])
        XCTAssertTrue(refusal(promptOnly).contains("only levels=noise+prompt+reflection"), refusal(promptOnly))
        XCTAssertNoThrow(try k.plan(prompt, options([:])))
    }

    /// Through the daemon and the CLI: a reflect job with the trained corrector finishes,
    /// its manifest records the corrections' reference images and instructions, and
    /// `assayctl replay` reproduces its result.
    func testTrainedCorrectorJobReplays() throws {
        _ = try StrategyKit.require()
        let daemon = try Daemon.shapes()
        let dir = TestEnvironment.temporaryDirectory("reflect")
        func assayctl(_ args: [String]) -> Shell.Result {
            Shell.run([TestEnvironment.assayctlPath, "--address", daemon.bus.address] + args, timeout: 120)
        }
        let first = assayctl(["generate", prompt, "--strategy", "reflect", "--reflector", "shapes-reflector",
                              "--verifier", "shapes-checker", "--role", "corrector=shapes-corrector",
                              "--option", "corrector=trained", "--option", "n=2", "--option", "rounds=2",
                              "--option", "branches=1", "--option", "per_branch=1", "--steps", "8", "--seed", "3",
                              "--out", dir + "/first.png", "--json", "-q"])
        XCTAssertEqual(first.status, 0, first.stderr + daemon.log)
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])
        let path = try XCTUnwrap(summary["manifest_path"] as? String)
        let manifest = try Manifest.decode(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        let corrections = (manifest.conditions ?? []).filter { $0.reference != nil }
        XCTAssertEqual(corrections.count, 2, "\(manifest.conditions)")
        XCTAssertTrue(corrections.allSatisfy { $0.instruction != nil })
        let replay = assayctl(["replay", path, "--out", dir + "/replay.png", "--json", "-q"])
        XCTAssertEqual(replay.status, 0, replay.stderr + daemon.log)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/first.png")),
                       try Data(contentsOf: URL(fileURLWithPath: dir + "/replay.png")))
    }
}
