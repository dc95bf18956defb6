import AssayCore
import AssayDBus
import Foundation
import XCTest

/// The search engine through the daemon and real clients: strategies discoverable by a
/// script, strategy options refused at Submit with D-Bus errors, and a search's lineage in
/// the version 2 manifest with every node's image.
final class SearchDaemonTests: XCTestCase {
    func shapesDaemon() throws -> Daemon { try Daemon.shapes() }

    func testStrategiesAreListedWithTheirOptionsForScripts() throws {
        let d = try shapesDaemon()
        let r = d.bus.cli(["busctl", "--json=short", "call", "io.assay.Assay1", "/io/assay/Assay1", "io.assay.Manager1", "ListStrategies"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let reply = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let list = ((reply["data"] as! [Any])[0] as! [[String: Any]])
        func field(_ d: [String: Any], _ key: String) -> Any? { (d[key] as? [String: Any])?["data"] }
        let names = list.compactMap { field($0, "name") as? String }
        XCTAssertEqual(Set(names), ["single", "best-of-n", "zero-order", "paths", "halving", "particles", "cofusion", "reflect"])
        let paths = list.first { field($0, "name") as? String == "paths" }!
        let options = field(paths, "options") as! [[String: Any]]
        let backward = options.first { field($0, "name") as? String == "backward" }!
        XCTAssertEqual(field(backward, "type") as? String, "d")
        XCTAssertEqual(field(backward, "default") as? Double ?? 0, 0.81, accuracy: 1e-9)
        XCTAssertTrue((field(backward, "help") as? String ?? "").contains("must exceed forward"))
        let m = options.first { field($0, "name") as? String == "m" }!
        XCTAssertEqual(field(m, "sizes_to_budget") as? Bool, true)
        XCTAssertEqual(field(paths, "roles") as? [String], ["base"])
        // The same for a person, through assayctl.
        let cli = Shell.run([TestEnvironment.assayctlPath, "--address", d.bus.address, "strategies"])
        XCTAssertEqual(cli.status, 0, cli.stderr)
        for text in ["paths: search over paths", "backward", "0.81", "halving:", "(grows with budget_nfe)", "max|diff|last"] {
            XCTAssertTrue(cli.stdout.contains(text), "assayctl strategies lacks '\(text)':\n\(cli.stdout)")
        }
    }

    func testBadStrategyOptionsGetADBusErrorAndMakeNoJob() throws {
        let d = try shapesDaemon()
        let r = d.bus.cli(["gdbus", "call", "--dest", "io.assay.Assay1", "--object-path", "/io/assay/Assay1", "--method",
                           "io.assay.Manager1.Submit", "a red circle",
                           "{'strategy': <'paths'>, 'strategy_options': <{'forward': <0.9>, 'backward': <0.5>}>}"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("io.assay.Error.InvalidArgument") && r.stderr.contains("backward > forward"), r.stderr)
        let wrongType = d.expectError("io.assay.Error.InvalidArgument") {
            _ = try d.submit("a red circle", ["strategy_options": .string("n=3")])
        }
        XCTAssertTrue(wrongType.contains("strategy_options") && wrongType.contains("a{sv}"), wrongType)
        XCTAssertEqual(try d.callManager("ListJobs").first?.arrayValue?.count, 0)
        d.assertAlive()
    }

    /// A zero-order search's manifest (version 2): every node, the chosen path from a root to
    /// the result, each decoded node's image on disk, and the new Job1 property.
    func testASearchWritesItsLineageAndImagesToTheManifest() throws {
        let d = try shapesDaemon()
        let job = try d.submit("a blue square", [
            "strategy": .string("zero-order"), "steps": .uint32(6), "seed": .uint64(3), "save_candidates": .bool(true),
            "strategy_options": .vardict(["n": .uint32(2), "iterations": .uint32(2)]),
        ])
        XCTAssertEqual(try d.waitFinished(job, timeout: 300), "done")
        XCTAssertEqual(try d.property(job, "ReflectorCalls"), .uint32(0))
        let m = try d.manifest(job)
        XCTAssertEqual(m["manifest_version"] as? Int, 2)
        let nodes = m["nodes"] as! [[String: Any]]
        XCTAssertEqual(nodes.filter { $0["op"] as? String == "neighbour" }.count, 4)
        let chosen = m["chosen_path"] as! [Int]
        XCTAssertEqual(chosen.last, m["result_node"] as? Int)
        XCTAssertTrue(nodes[chosen[0]]["parent"] is NSNull || nodes[chosen[0]]["parent"] == nil)
        for (a, b) in zip(chosen, chosen.dropFirst()) { XCTAssertEqual(nodes[b]["parent"] as? Int, a) }
        let dir = (try d.string(job, "ManifestPath") as NSString).deletingLastPathComponent
        let imaged = nodes.compactMap { $0["image"] as? String }
        XCTAssertEqual(imaged.count, 5, "1 pivot + 4 neighbours decoded")
        for f in imaged { XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + f), f) }
        let plan = m["plan"] as! [String: Any]
        XCTAssertEqual((plan["strategy_options"] as? [String: Any])?["iterations"] as? Double, 2)
        XCTAssertNil(plan["n"], "n now lives in strategy_options")
    }

    /// Co-Fusion with DBCache sketches and visual reflection through the daemon: the FLOP
    /// ratio as a Job1 property (busctl) and in the manifest, the sketch pool, the preview
    /// images, the reflection on the continued trajectory, and `assayctl report` showing it.
    func testCoFusionWithDBCacheSketchesAndReflectionThroughTheDaemon() throws {
        let d = try shapesDaemon()
        guard FileManager.default.fileExists(atPath: TestEnvironment.buildPluginsDirectory + "/dbcache.so") else {
            throw XCTSkip("dbcache.so is not built")
        }
        let job = try d.submit("a red circle above a blue square", [
            "strategy": .string("cofusion"), "steps": .uint32(10), "seed": .uint64(4), "save_candidates": .bool(true),
            "sampler": .string("dbcache"), "reflector": .string("shapes-reflector"),
            "sampler_options": .vardict(["warmup": .uint32(1), "threshold": .double(0.3)]),
            "strategy_options": .vardict(["n": .uint32(3), "k": .uint32(3), "fast": .string("sampler"), "reflect": .string("on")]),
        ])
        XCTAssertEqual(try d.waitFinished(job, timeout: 300), "done")
        let r = d.bus.cli(["busctl", "get-property", "io.assay.Assay1", job, "io.assay.Job1", "FlopRatio"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let ratio = Double(r.stdout.split(separator: " ").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "") ?? 9
        XCTAssertLessThan(ratio, 1, "busctl says FlopRatio \(r.stdout)")
        XCTAssertEqual(try d.property(job, "ReflectorCalls"), .uint32(1))
        let m = try d.manifest(job)
        XCTAssertEqual(m["flop_ratio"] as? Double ?? 9, ratio, accuracy: 1e-5, "busctl prints 6 digits")
        let nodes = m["nodes"] as! [[String: Any]]
        XCTAssertEqual(nodes.filter { $0["pool"] as? String == "sketch" }.count, 3)
        let preview = try XCTUnwrap(nodes.first { $0["op"] as? String == "x0" })
        XCTAssertNotNil(preview["image"] as? String, "the preview's image was not kept")
        let reflected = try XCTUnwrap(nodes.first { $0["reflection"] is String })
        XCTAssertTrue((reflected["reflection"] as! String).contains("feedback"))
        let chosen = m["chosen_path"] as! [Int]
        XCTAssertTrue(chosen.contains(reflected["id"] as! Int), "the reflection is not on the chosen trajectory")
        let page = TestEnvironment.temporaryDirectory("cofusion-report") + "/page.html"
        let rep = Shell.run([TestEnvironment.assayctlPath, "report", try d.string(job, "ManifestPath"), "-o", page])
        XCTAssertEqual(rep.status, 0, rep.stderr)
        let html = try String(contentsOfFile: page, encoding: .utf8)
        for text in ["reflector:", "sampler dbcache", "pool sketch", "FLOPs ×"] {
            XCTAssertTrue(html.contains(text), "the report lacks '\(text)'")
        }
        d.assertAlive()
    }

    /// Manifests of version 1 (before the search engine) still decode, best-of-n's top-level
    /// n becoming its strategy option; a newer version is refused with a reason.
    func testOlderManifestsDecodeAndNewerOnesAreRefused() throws {
        let v1 = """
        {"assay_version": "0.3.0", "abi_version": "1.1.0", "job_id": 4, "prompt": "a red circle",
         "plan": {"strategy": "best-of-n", "model": "shapes", "verifiers": ["shapes-checker"], "seed": 5, "steps": 8,
                  "guidance": 1.75, "n": 3, "budget_nfe": 48, "save_candidates": false, "sampler_options": {}},
         "plugins": [], "candidates": [], "state": "done", "stop_reason": "completed", "nfe_used": 48,
         "verifier_calls": 3, "reflector_calls": 0,
         "timings": {"queued_ms": 0, "run_ms": 1, "sampling_ms": 1, "model_ms": 1, "decode_ms": 0, "verifier_ms": 0, "write_ms": 0}}
        """
        let m = try Manifest.decode(Array(v1.utf8))
        XCTAssertNil(m.manifestVersion)
        XCTAssertEqual(m.plan.strategyOptions.int("n"), 3)
        XCTAssertEqual(m.plan.models, ["base": "shapes"])
        XCTAssertEqual(m.plan.asOptionValues["strategy_options"], .dictionary(["n": .double(3)]))
        let v9 = v1.replacingOccurrences(of: "{\"assay_version\"", with: "{\"manifest_version\": 9, \"assay_version\"")
        XCTAssertThrowsError(try Manifest.decode(Array(v9.utf8))) { e in
            XCTAssertTrue("\(e)".contains("version 9, written by a newer Assay"), "\(e)")
        }
    }

    /// Every strategy, through the real CLI: `assayctl generate --option ...` runs it, and
    /// `assayctl replay` of its manifest reproduces the result bit for bit in a new job.
    func testEveryStrategyReplaysFromItsManifestThroughTheCLI() throws {
        let d = try shapesDaemon()
        let dir = TestEnvironment.temporaryDirectory("search-cli")
        let runs: [(String, [String], [String])] = [
            ("best-of-n", ["n=3"], []), ("zero-order", ["n=2", "iterations=1", "similarity=0.9"], []),
            ("paths", ["n=2", "m=2", "length=2"], []), ("halving", ["n=4", "rounds=1"], []),
            ("particles", ["n=3", "interval=2", "potential=diff"], []),
            ("cofusion", ["n=3", "k=2", "reflect=on"], ["--role", "draft=shapes-turbo", "--reflector", "shapes-reflector"]),
            ("reflect", ["n=2", "rounds=2", "branches=1"], ["--reflector", "shapes-reflector"]),
        ]
        for (strategy, options, extra) in runs {
            let first = Shell.run([TestEnvironment.assayctlPath, "--address", d.bus.address, "generate", "a red circle",
                                   "--strategy", strategy, "--steps", "6", "--seed", "21", "--json", "-q",
                                   "--out", dir + "/\(strategy).png"] + options.flatMap { ["--option", $0] } + extra, timeout: 300)
            XCTAssertEqual(first.status, 0, "\(strategy): \(first.stderr)")
            let out = try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as! [String: Any]
            let manifest = try XCTUnwrap(out["manifest_path"] as? String)
            let replay = Shell.run([TestEnvironment.assayctlPath, "--address", d.bus.address, "replay", manifest, "--json", "-q",
                                    "--out", dir + "/\(strategy)-replay.png"], timeout: 300)
            XCTAssertEqual(replay.status, 0, "\(strategy) did not replay: \(replay.stdout) \(replay.stderr)")
            let r = try JSONSerialization.jsonObject(with: Data(replay.stdout.utf8)) as! [String: Any]
            XCTAssertEqual(r["reproduced"] as? Bool, true, strategy)
            XCTAssertEqual(r["strategy"] as? String, strategy)
        }
    }
}
