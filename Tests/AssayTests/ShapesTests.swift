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

    func testBestOfNOnTheEmbeddedModelIsScoredByTheExactChecker() throws {
        let d = try Daemon(pluginDirectories: [TestEnvironment.buildPluginsDirectory],
                           arguments: ["--default-models", "shapes", "--default-verifiers", "shapes-checker"])
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
}
