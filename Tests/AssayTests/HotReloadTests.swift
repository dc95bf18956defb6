import AssayDBus
import Foundation
import XCTest

/// Hot reload against a real watched directory: files are built and dropped in while the
/// daemon runs.
final class HotReloadTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        _ = TestEnvironment.pluginsBuilt
        dir = TestEnvironment.temporaryDirectory("plugins")
        try FileManager.default.copyItem(atPath: TestEnvironment.pluginsDirectory + "/example-model.so", toPath: dir + "/example-model.so")
    }

    /// The mappings of the daemon and of its plugin workers, where plugin files are mapped
    /// unless --in-process-plugins (procfs files report size 0, so read them with cat).
    func mappedFiles(_ pid: Int32) -> String {
        ([pid] + IsolationTests.children(of: pid)).map { Shell.run(["cat", "/proc/\($0)/maps"]).stdout }.joined()
    }

    func testADroppedInVerifierIsUsableByTheNextJobWithoutRestart() throws {
        let d = try Daemon(pluginDirectories: [dir])
        let changed = try SignalRecorder(bus: d.bus, rule: "type='signal',interface='io.assay.Manager1'")
        d.expectError("io.assay.Error.UnknownPlugin") { _ = try d.submit("a red disk", ["verifiers": .strings(["fixture-dropin"])]) }
        // Copy in under a temporary name, then rename: the way package managers install.
        try FileManager.default.copyItem(atPath: TestEnvironment.fixturesDirectory + "/dropin_verifier.so", toPath: dir + "/.tmp-dropin")
        XCTAssertEqual(rename(dir + "/.tmp-dropin", dir + "/dropin_verifier.so"), 0)
        try d.waitPlugins { $0.contains { $0["id"]?.stringValue == "fixture-dropin" } }
        _ = try changed.wait(for: "PluginsChanged")
        let job = try d.submit("a red disk", ["strategy": .string("best-of-n"), "n": .uint32(3), "verifiers": .strings(["fixture-dropin"])])
        XCTAssertEqual(try d.waitFinished(job), "done")
        let scores = (try d.manifest(job)["candidates"] as! [[String: Any]]).compactMap { ($0["scores"] as! [String: Double])["fixture-dropin"] }
        XCTAssertEqual(scores.count, 3)
        XCTAssertTrue(scores.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    func testASamplerRebuiltDuringAJobServesTheNextJobWhileTheRunningOneFinishesOnTheOldCode() throws {
        try TestEnvironment.compileFixture("versioned_sampler.c", to: dir + "/sampler.so", defines: ["FIXTURE_VERSION=\"1.0.0\""])
        let d = try Daemon(pluginDirectories: [dir], arguments: ["--max-concurrent-jobs", "2"])
        XCTAssertEqual(try d.plugin("fixture-sampler")?["version"]?.stringValue, "1.0.0")
        let oldGeneration = Int(try XCTUnwrap(d.plugin("fixture-sampler")?["generation"]?.doubleValue))
        let oldMapping = "/\(oldGeneration)-sampler.so"

        // About 4 s of work: room for a compile, the debounce and the swap on a busy machine.
        let slow = try d.submit("a red disk", ["sampler": .string("fixture-sampler"), "steps": .uint32(160),
                                               "sampler_options": .vardict(["delay_ms": .uint32(25)])])
        while try d.number(slow, "NfeUsed") < 3 { usleep(5_000) }
        XCTAssertTrue(mappedFiles(d.pid).contains(oldMapping), "the running job's library \(oldMapping) is mapped: \(mappedFiles(d.pid).split(separator: "\n").filter { $0.contains(".so") })")

        // Rebuild in place, as `make` would.
        try TestEnvironment.compileFixture("versioned_sampler.c", to: dir + "/sampler.so", defines: ["FIXTURE_VERSION=\"2.0.0\""])
        try d.waitPlugins { $0.contains { $0["id"]?.stringValue == "fixture-sampler" && $0["version"]?.stringValue == "2.0.0" } }
        XCTAssertEqual(try d.string(slow, "State"), "running", "the swap must not disturb the job in flight")
        XCTAssertTrue(mappedFiles(d.pid).contains(oldMapping), "the old library stays while its job runs")

        let next = try d.submit("a red disk", ["sampler": .string("fixture-sampler"), "steps": .uint32(4)])
        XCTAssertEqual(try d.waitFinished(next), "done")
        XCTAssertEqual(try d.waitFinished(slow), "done")

        func samplerVersion(_ job: String) throws -> String? {
            (try d.manifest(job)["plugins"] as! [[String: Any]]).first { $0["id"] as? String == "fixture-sampler" }?["version"] as? String
        }
        XCTAssertEqual(try samplerVersion(slow), "1.0.0")
        XCTAssertEqual(try samplerVersion(next), "2.0.0")

        // Once its last job is done, the old generation is closed and unmapped.
        let deadline = Date().addingTimeInterval(5)
        while mappedFiles(d.pid).contains(oldMapping) && Date() < deadline { usleep(10_000) }
        XCTAssertFalse(mappedFiles(d.pid).contains(oldMapping), "old library still mapped:\n\(mappedFiles(d.pid))")
        XCTAssertTrue(d.log.contains("unloaded"), d.log)
    }

    func testABrokenRebuildLeavesTheOldVersionServingAndSaysWhy() throws {
        try TestEnvironment.compileFixture("versioned_sampler.c", to: dir + "/sampler.so", defines: ["FIXTURE_VERSION=\"1.0.0\""])
        let d = try Daemon(pluginDirectories: [dir])
        let signals = try SignalRecorder(bus: d.bus, rule: "type='signal',interface='io.assay.Manager1',member='PluginLoadFailed'")
        // A half-written file: the first bytes of a real plugin.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/sampler.so"))
        try bytes.prefix(bytes.count / 3).write(to: URL(fileURLWithPath: dir + "/.partial"))
        XCTAssertEqual(rename(dir + "/.partial", dir + "/sampler.so"), 0)
        let args = try signals.wait(for: "PluginLoadFailed")
        XCTAssertEqual(args.first?.stringValue, dir + "/sampler.so")
        XCTAssertTrue(args.last?.stringValue?.contains("truncated") ?? false, "\(args)")

        let listed = try d.plugins()
        let entry = try XCTUnwrap(try d.plugin("fixture-sampler"), "the old version must still be listed as loaded: \(listed)\n\(d.log.split(separator: "\n").filter { $0.contains("sampler") }.joined(separator: "\n"))")
        XCTAssertEqual(entry["version"]?.stringValue, "1.0.0")
        XCTAssertTrue(entry["reason"]?.stringValue?.contains("truncated") ?? false)
        let job = try d.submit("a red disk", ["sampler": .string("fixture-sampler"), "steps": .uint32(4)])
        XCTAssertEqual(try d.waitFinished(job), "done")

        // ReloadPlugins after a good rebuild brings the new version in and clears the reason.
        try TestEnvironment.compileFixture("versioned_sampler.c", to: dir + "/sampler.so", defines: ["FIXTURE_VERSION=\"3.0.0\""])
        _ = try d.callManager("ReloadPlugins")
        try d.waitPlugins { $0.contains { $0["version"]?.stringValue == "3.0.0" && $0["reason"] == nil } }
        d.assertAlive()
    }
}
