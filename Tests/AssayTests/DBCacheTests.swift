import AssayCore
import AssayDBus
import AssayPluginHost
import AssayStrategies
import Foundation
import XCTest

/// The dbcache sampler plugin (Plugins/dbcache) through the host: block-level access
/// forwarded to a real sampler, per-sample cache decisions, and the FLOP ratio the host
/// measures from the blocks actually run. (Plugins/dbcache/tests tests the plugin alone.)
final class DBCacheTests: XCTestCase {
    func options(_ strategy: String, _ own: [String: OptionValue], _ extra: [String: OptionValue] = [:]) -> [String: OptionValue] {
        var o = StrategyTests.common.merging(extra) { $1 }
        o["steps"] = .unsigned(12)
        o["strategy"] = .string(strategy)
        if !own.isEmpty { o["strategy_options"] = .dictionary(own) }
        return o
    }

    func kit() throws -> StrategyKit {
        let k = try StrategyKit.require()
        guard k.registry.instance(id: "dbcache") != nil else { throw XCTSkip("dbcache.so is not built") }
        return k
    }

    /// Threshold 0 never caches: the sampler is the built-in Euler integrator bit for bit,
    /// through prologue + every block + epilogue, and the host measures no saving.
    func testThresholdZeroIsPlainEulerBitForBit() throws {
        let k = try kit()
        let euler = try k.run(StrategyTests.prompt, options("best-of-n", ["n": .unsigned(3)]))
        let cached = try k.run(StrategyTests.prompt, options("best-of-n", ["n": .unsigned(3)], [
            "sampler": .string("dbcache"), "sampler_options": .dictionary(["threshold": .double(0)]),
        ]))
        XCTAssertEqual(cached.kit.candidates.map(\.latent), euler.kit.candidates.map(\.latent))
        XCTAssertEqual(cached.kit.meter.nfeUsed, euler.kit.meter.nfeUsed)
        XCTAssertEqual(try XCTUnwrap(cached.kit.flopRatio), 1, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(cached.kit.middleFlopRatio), 1, accuracy: 1e-12)
        XCTAssertTrue(cached.kit.nodes.filter { $0.op == .integrate }.allSatisfy { $0.sampler == "dbcache" })
    }

    /// With its defaults it caches: fewer FLOPs at the same NFEs (NFEs are evaluations), and
    /// every sample's result is independent of its batch: each candidate recomputed alone
    /// equals its value in the batch of 4, although samples cache on different steps.
    func testCachingSavesFlopsAndEachSampleIsIndependentOfItsBatch() throws {
        let k = try kit()
        let euler = try k.run(StrategyTests.prompt, options("best-of-n", ["n": .unsigned(4)]))
        let r = try k.run(StrategyTests.prompt, options("best-of-n", ["n": .unsigned(4)], [
            "sampler": .string("dbcache"), "sampler_options": .dictionary(["warmup": .unsigned(2), "threshold": .double(0.2)]),
        ]))
        XCTAssertNil(r.stop)
        XCTAssertEqual(r.kit.meter.nfeUsed, euler.kit.meter.nfeUsed, "a cached step still costs its evaluation")
        let ratio = try XCTUnwrap(r.kit.flopRatio)
        XCTAssertLessThan(ratio, 0.95, "nothing was cached")
        XCTAssertGreaterThan(ratio, 0.2)
        // The middle blocks (all a cache can skip) save more than the whole model does.
        let middle = try XCTUnwrap(r.kit.middleFlopRatio)
        XCTAssertLessThan(middle, ratio)
        XCTAssertGreaterThan(middle, 0)
        XCTAssertEqual(r.kit.job.snapshot.flopRatio ?? 1, ratio, accuracy: 1e-12)
        XCTAssertNotEqual(r.kit.candidates.map(\.latent), euler.kit.candidates.map(\.latent))
        for c in r.kit.candidates {
            let alone = try r.kit.replay(c.node)
            XCTAssertEqual(alone, c.latent, "candidate \(c.index) alone differs from its value in the batch")
        }
    }

    /// A sampler without the blocks extension (the Heun example) still runs, and reports no
    /// saving; cofusion's sampler fast path caches the sketches only, and its continuation
    /// is the base trajectory of the same seed.
    func testSamplersWithoutBlocksAndCoFusionSketches() throws {
        let k = try kit()
        let heun = try k.run(StrategyTests.prompt, options("best-of-n", ["n": .unsigned(2)], ["sampler": .string("example-heun")]))
        XCTAssertNil(heun.stop)
        XCTAssertEqual(heun.kit.candidates.count, 2)
        XCTAssertEqual(try XCTUnwrap(heun.kit.flopRatio), 1, accuracy: 1e-12)
        let co = try k.run(StrategyTests.prompt, options("cofusion", ["n": .unsigned(4), "k": .unsigned(4), "fast": .string("sampler")], [
            "sampler": .string("dbcache"), "sampler_options": .dictionary(["warmup": .unsigned(0), "threshold": .double(0.3)]),
        ]))
        XCTAssertNil(co.stop)
        let sketches = co.kit.nodes.filter { $0.pool == "sketch" }
        XCTAssertEqual(sketches.count, 4)
        XCTAssertTrue(sketches.allSatisfy { $0.sampler == "dbcache" && ($0.flopRatio ?? 1) < 1 }, "\(sketches.map(\.flopRatio))")
        let bon = try k.run(StrategyTests.prompt, options("best-of-n", ["n": .unsigned(4)]))
        for c in co.kit.candidates {
            XCTAssertNil(co.kit.nodes[c.node].sampler)
            let root = Int(co.kit.nodes[co.kit.root(of: c.node)].seedPath[0])
            XCTAssertEqual(c.latent, bon.kit.candidates[root].latent)
        }
    }

    /// Bad sampler options reach the job as the plugin's own reason.
    func testBadOptionsFailTheJobWithThePluginsReason() throws {
        let k = try kit()
        XCTAssertThrowsError(try k.run(StrategyTests.prompt, options("single", [:], [
            "sampler": .string("dbcache"), "sampler_options": .dictionary(["threshold": .double(-1)]),
        ]))) { XCTAssertTrue("\($0)".contains("threshold"), "\($0)") }
    }
}

/// dbcache is a real sampler plugin, so hot reload applies to it: rebuilt on disk while a job
/// runs, the next job gets the new generation and the running one finishes on the old.
final class DBCacheReloadTests: XCTestCase {
    func testARebuiltDBCacheServesTheNextJobWhileTheRunningOneFinishes() throws {
        let built = TestEnvironment.buildPluginsDirectory
        guard FileManager.default.fileExists(atPath: built + "/dbcache.so"),
              FileManager.default.fileExists(atPath: built + "/shapes.so") else { throw XCTSkip("dbcache.so or shapes.so is not built") }
        // Everything the build made but dbcache (links, so the weights sit beside shapes.so),
        // and dbcache alone in a watched folder of its own.
        let rest = TestEnvironment.temporaryDirectory("dbcache-rest"), own = TestEnvironment.temporaryDirectory("dbcache-own")
        for name in try FileManager.default.contentsOfDirectory(atPath: built) where name != "dbcache.so" {
            try FileManager.default.createSymbolicLink(atPath: rest + "/" + name, withDestinationPath: built + "/" + name)
        }
        let original = try Data(contentsOf: URL(fileURLWithPath: built + "/dbcache.so"))
        try original.write(to: URL(fileURLWithPath: own + "/dbcache.so"))
        let d = try Daemon(pluginDirectories: [rest, own], arguments: ["--default-models", "shapes", "--max-concurrent-jobs", "2"])
        let before = try XCTUnwrap(try d.plugin("dbcache")?["generation"]?.doubleValue)
        let options: [String: DBusValue] = ["model": .string("shapes"), "sampler": .string("dbcache"), "steps": .uint32(150)]
        let running = try d.submit("a red circle", options)
        while try d.number(running, "NfeUsed") < 4 { usleep(5_000) }
        // A rebuild: other bytes under the same name, renamed into place as make's linker does.
        try (original + Data([0])).write(to: URL(fileURLWithPath: own + "/.dbcache.tmp"))
        XCTAssertEqual(rename(own + "/.dbcache.tmp", own + "/dbcache.so"), 0)
        try d.waitPlugins { $0.contains { $0["id"]?.stringValue == "dbcache" && ($0["generation"]?.doubleValue ?? 0) > before } }
        XCTAssertEqual(try d.string(running, "State"), "running", "the reload disturbed the job in flight")
        let next = try d.submit("a red circle", options.merging(["steps": .uint32(8)]) { $1 })
        XCTAssertEqual(try d.waitFinished(next), "done")
        XCTAssertEqual(try d.waitFinished(running), "done")
        func generation(_ job: String) throws -> Double? {
            (try d.manifest(job)["plugins"] as! [[String: Any]]).first { $0["id"] as? String == "dbcache" }?["generation"] as? Double
        }
        XCTAssertEqual(try generation(running), before, "the running job did not finish on the old generation")
        XCTAssertGreaterThan(try XCTUnwrap(try generation(next)), before)
    }
}
