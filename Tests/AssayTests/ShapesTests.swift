import AssayCore
import AssayDBus
import Foundation
import XCTest

/// The embedded default: the shapes model, its verifiers and reflector, as the daemon uses
/// them. Their C test programs (engine vs PyTorch vectors, checker vs the Python checker)
/// run from here too, so `swift test` covers the plugins' numerics.
final class ShapesTests: XCTestCase {
    override func setUpWithError() throws {
        _ = TestEnvironment.pluginsBuilt
        guard FileManager.default.fileExists(atPath: TestEnvironment.buildPluginsDirectory + "/shapes.so") else {
            throw XCTSkip("the shapes plugin is not built")
        }
    }

    func shapesDaemon() throws -> Daemon { try Daemon.shapes() }

    func runCheck(_ target: String) {
        let r = Shell.run(["make", "-s", "-C", TestEnvironment.repoRoot + "/Plugins", target], timeout: 600)
        XCTAssertEqual(r.status, 0, "make \(target) failed:\n\(r.stdout.suffix(3000))\n\(r.stderr.suffix(2000))")
        let summaries = r.stdout.split(separator: "\n").filter { $0.hasSuffix(" failed") && $0.contains(" passed, ") }
        XCTAssertFalse(summaries.isEmpty, "no test summary from \(target)")
        for s in summaries { XCTAssertTrue(s.hasSuffix(" 0 failed"), "\(target): \(s)") }
    }

    func testEngineMatchesPyTorchAndRefusesCorruptWeights() { runCheck("shapes-check") }

    func testCheckerQualityAndReflectorAgreeWithTheReference() { runCheck("shapes-verifier-check") }

    func testClipscoreMatchesPyTorchAndRefusesCorruptWeights() { runCheck("shapes-clipscore-check") }

    func testJudgeMatchesItsTwinMeetsItsFloorsAndRefusesCorruptWeights() { runCheck("shapes-judge-check") }

    /// The dbcache sampler alone (Plugins/dbcache/tests): threshold 0 equals Euler, per-sample
    /// decisions, caps, option refusals, budget and cancel codes, with shapes.so as the model.
    func testDBCacheSamplerHarness() { runCheck("dbcache-check") }

    func testBestOfNOnTheEmbeddedModelIsScoredByTheExactChecker() throws {
        let d = try shapesDaemon()
        // Every option has a default: the plain call works on the embedded model.
        let plain = try d.submit("a red circle")
        XCTAssertEqual(try d.waitFinished(plain, timeout: 300), "done")
        XCTAssertEqual(try d.string(plain, "Model"), "shapes")
        XCTAssertEqual(try d.string(plain, "Strategy"), "single")

        // Words outside the model's vocabulary are refused at Submit, with the model's reason.
        let message = d.expectError("io.assay.Error.InvalidArgument") { _ = try d.submit("a purple hexagon") }
        XCTAssertTrue(message.contains("unknown word"), message)

        // Words the model knows but the checker's grammar does not accept are refused at
        // Submit too, through the checker's assay.prompt-check/1 extension.
        let jobsBefore = try d.callManager("ListJobs").first?.arrayValue?.count
        let grammar = d.expectError("io.assay.Error.InvalidArgument") {
            _ = try d.submit("circle red a", ["strategy": .string("best-of-n"), "verifiers": .strings(["shapes-checker"])])
        }
        XCTAssertTrue(grammar.contains("verifier 'shapes-checker' cannot judge this prompt") && grammar.contains("grammar"), grammar)
        XCTAssertEqual(try d.callManager("ListJobs").first?.arrayValue?.count, jobsBefore, "a refused prompt makes no job")

        let job = try d.submit("a red circle left of a blue square", [
            "strategy": .string("best-of-n"), "n": .uint32(4), "steps": .uint32(8), "seed": .uint64(5),
            "verifiers": .strings(["shapes-checker", "shapes-quality"]),
        ])
        XCTAssertEqual(try d.waitFinished(job, timeout: 300), "done", d.log)
        XCTAssertEqual(try d.number(job, "NfeUsed"), 4 * 8 * 2, "guided by default: two conditions a step")
        let m = try d.manifest(job)
        XCTAssertEqual((m["plan"] as! [String: Any])["model"] as? String, "shapes")
        for c in m["candidates"] as! [[String: Any]] {
            let scores = c["scores"] as! [String: Double]
            XCTAssertTrue((0...1).contains(scores["shapes-checker"]!) && (0...1).contains(scores["shapes-quality"]!), "\(scores)")
            let details = (c["details"] as! [String: String])["shapes-checker"]!
            let parsed = try JSONSerialization.jsonObject(with: Data(details.utf8)) as! [String: Any]
            XCTAssertNotNil(parsed["pass"] as? Bool, details)
            XCTAssertEqual(try XCTUnwrap(parsed["score"] as? Double), scores["shapes-checker"]!, accuracy: 1e-5)
        }
        let image = try PNGEncoder.decode(Array(try Data(contentsOf: URL(fileURLWithPath: try d.string(job, "ResultPath")))))
        XCTAssertEqual(image.width, 32)
        XCTAssertEqual(image.height, 32)
    }

    /// The turbo student runs through the same library under its own id, with its own
    /// defaults (a few steps, guidance 1) and one evaluation per step; the base model takes a
    /// negative prompt and the student refuses one with a reason.
    func testTurboStudentAndNegativePrompts() throws {
        let d = try shapesDaemon()
        let turbo = try XCTUnwrap(try d.plugin("shapes-turbo"), "shapes.so also offers shapes-turbo")
        XCTAssertEqual(turbo["kind"]?.stringValue, "model")

        let job = try d.submit("a red circle", [
            "model": .string("shapes-turbo"), "strategy": .string("best-of-n"), "n": .uint32(4), "seed": .uint64(3),
        ])
        XCTAssertEqual(try d.waitFinished(job, timeout: 300), "done", d.log)
        let plan = try d.manifest(job)["plan"] as! [String: Any]
        let steps = try XCTUnwrap(plan["steps"] as? Int)
        XCTAssertTrue((1...4).contains(steps), "a few-step student: \(plan)")
        XCTAssertEqual(plan["guidance"] as? Double, 1)
        XCTAssertEqual(try d.number(job, "NfeUsed"), Double(4 * steps), "one evaluation a step, no guidance")
        XCTAssertEqual(try d.number(job, "BestScore"), 1, "one of four turbo sketches of a red circle passes the checker")

        let refused = d.expectError("io.assay.Error.InvalidArgument") {
            _ = try d.submit("a red circle", ["model": .string("shapes-turbo"), "negative_prompt": .string("a blue circle")])
        }
        XCTAssertTrue(refused.contains("negative_prompt needs guidance") && refused.contains("shapes-turbo"), refused)

        // On the guided base model the negative prompt replaces the empty prompt in guidance.
        var results: [Data] = []
        for negative in [nil, "a red square"] as [String?] {
            var options: [String: DBusValue] = ["steps": .uint32(8), "seed": .uint64(11)]
            if let negative { options["negative_prompt"] = .string(negative) }
            let j = try d.submit("a red circle", options)
            XCTAssertEqual(try d.waitFinished(j, timeout: 300), "done", d.log)
            XCTAssertEqual(try d.number(j, "NfeUsed"), 16)
            results.append(try Data(contentsOf: URL(fileURLWithPath: try d.string(j, "ResultPath"))))
        }
        XCTAssertNotEqual(results[0], results[1], "the negative prompt changes the image")
    }

    /// A default verifier that cannot judge a prompt is passed over, since the client did not
    /// ask for it; one the client names still refuses the prompt.
    func testDefaultVerifierThatCannotJudgeThePromptIsPassedOver() throws {
        let d = try shapesDaemon()
        let single = try d.submit("a red disk", ["model": .string("example-model"), "steps": .uint32(2)])
        XCTAssertEqual(try d.waitFinished(single, timeout: 60), "done", d.log)
        XCTAssertEqual((try d.manifest(single)["plan"] as! [String: Any])["verifiers"] as? [String], [],
                       "a single sample needs no verifier, and the default one cannot judge 'disk'")

        let best = try d.submit("a red disk", ["model": .string("example-model"), "strategy": .string("best-of-n"),
                                               "n": .uint32(2), "steps": .uint32(2)])
        XCTAssertEqual(try d.waitFinished(best, timeout: 60), "done", d.log)
        let chosen = try XCTUnwrap((try d.manifest(best)["plan"] as! [String: Any])["verifiers"] as? [String])
        XCTAssertEqual(chosen.count, 1)
        XCTAssertNotEqual(chosen.first, "shapes-checker", "best-of-n falls back to a loaded verifier that can judge it")

        let named = d.expectError("io.assay.Error.InvalidArgument") {
            _ = try d.submit("a red disk", ["model": .string("example-model"), "verifiers": .strings(["shapes-checker"])])
        }
        XCTAssertTrue(named.contains("verifier 'shapes-checker' cannot judge this prompt"), named)
    }
}
