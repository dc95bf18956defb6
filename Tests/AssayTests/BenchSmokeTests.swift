import Foundation
import XCTest

/// `make bench` measures and CI does not run it, so this smoke run (a few iterations of each
/// measurement) keeps the tool itself working: it must finish and report every measurement.
final class BenchSmokeTests: XCTestCase {
    func testBenchmarkToolReportsEveryMeasurement() throws {
        _ = TestEnvironment.pluginsBuilt
        guard FileManager.default.fileExists(atPath: TestEnvironment.buildPluginsDirectory + "/shapes.so") else {
            throw XCTSkip("the plugins are not built (make plugins)")
        }
        let r = Shell.run([
            TestEnvironment.productsDirectory + "/assay-bench", "--plugin-dir", TestEnvironment.buildPluginsDirectory,
            "--assayd", TestEnvironment.assaydPath, "--submits", "5", "--finish-runs", "2", "--overhead-runs", "1",
            "--reload-cycles", "2", "--json",
        ], timeout: 180)
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        for key in ["idle_rss_mib", "swap_ms", "dropin_to_usable_ms", "submit_ms", "get_ms", "submit_to_finished_ms",
                    "host_overhead_example-model", "host_overhead_shapes", "loaded_rss_mib", "after_jobs_rss_mib"] {
            XCTAssertNotNil(json[key], "assay-bench --json lacks \(key)")
        }
        let submit = try XCTUnwrap(json["submit_ms"] as? [String: Any])
        XCTAssertEqual(submit["count"] as? Int, 5)
    }
}

/// The daemon's footprint: it links FoundationEssentials only. All of Foundation (and ICU's
/// data) came in once through one `JSONSerialization` call in a strategy and cost 6 MiB of
/// idle RSS; this keeps it out.
final class FootprintTests: XCTestCase {
    func testTheDaemonDoesNotLinkAllOfFoundation() {
        let r = Shell.run(["readelf", "-d", TestEnvironment.assaydPath])
        XCTAssertEqual(r.status, 0, r.stderr)
        let needed = r.stdout.split(separator: "\n").filter { $0.contains("(NEEDED)") }
        XCTAssertFalse(needed.isEmpty, r.stdout)
        XCTAssertFalse(needed.contains { $0.contains("[libFoundation.so]") || $0.contains("FoundationInternationalization") },
                       "assayd links all of Foundation: use FoundationEssentials in the daemon's modules\n\(needed.joined(separator: "\n"))")
    }
}
