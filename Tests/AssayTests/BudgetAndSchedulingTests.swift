import AssayCore
import AssayDBus
import Foundation
import XCTest

/// Budgets, deadlines, cancellation and queue limits on a real daemon.
final class BudgetAndSchedulingTests: XCTestCase {
    func daemon(_ args: [String] = []) throws -> Daemon {
        try Daemon(pluginDirectories: [TestEnvironment.pluginsDirectory, TestEnvironment.fixturesDirectory], arguments: args)
    }

    func testAGreedySamplerCannotSpendMoreThanTheBudget() throws {
        let d = try daemon()
        // fixture-greedy tries 10000 evaluations; the host must refuse the 101st NFE.
        let job = try d.submit("a red disk", ["strategy": .string("best-of-n"), "n": .uint32(3),
                                              "sampler": .string("fixture-greedy"), "budget_nfe": .uint32(100)])
        XCTAssertEqual(try d.waitFinished(job), "failed")
        XCTAssertEqual(try d.number(job, "NfeUsed"), 100)
        XCTAssertEqual(try d.string(job, "StopReason"), "budget")
        let error = try d.string(job, "Error")
        XCTAssertTrue(error.contains("budget ran out"), error)
        let m = try d.manifest(job)
        XCTAssertEqual(m["nfe_used"] as? Int, 100)
        d.assertAlive()
    }

    func testBudgetStopsBestOfNWithTheBestSoFarUnderAnEnsemble() throws {
        let d = try daemon()
        // 10 steps x 2 conditions = 20 NFEs a candidate: 95 pays for 4 of the 8.
        let verifiers = ["example-colour", "fixture-a", "fixture-b"]
        let job = try d.submit("a blue disk bottom left", [
            "strategy": .string("best-of-n"), "n": .uint32(8), "steps": .uint32(10), "guidance": .double(3),
            "budget_nfe": .uint32(95), "verifiers": .strings(verifiers), "seed": .uint64(3),
        ])
        XCTAssertEqual(try d.waitFinished(job), "done")
        XCTAssertEqual(try d.string(job, "StopReason"), "budget")
        XCTAssertEqual(try d.number(job, "NfeUsed"), 80)
        XCTAssertLessThanOrEqual(try d.number(job, "NfeUsed"), try d.number(job, "NfeBudget"))
        XCTAssertEqual(try d.number(job, "Candidates"), 4)
        XCTAssertEqual(try d.number(job, "VerifierCalls"), 12, "each candidate scored once by each of 3 verifiers")
        XCTAssertFalse(try d.string(job, "ResultPath").isEmpty)

        // The winner is the best mean rank across verifiers, recomputed here from raw scores.
        let m = try d.manifest(job)
        let candidates = (m["candidates"] as! [[String: Any]]).sorted { ($0["index"] as! Int) < ($1["index"] as! Int) }
        let byVerifier = verifiers.map { v in candidates.map { ($0["scores"] as! [String: Double])[v]! } }
        let means = Ranking.meanRanks(byVerifier)
        let expected = Ranking.best(meanRanks: means, primaryScores: byVerifier[0])!
        XCTAssertEqual(m["best_index"] as? Int, candidates[expected]["index"] as? Int)
        // fixture-a and fixture-b disagree by construction, so the ensemble matters.
        XCTAssertEqual(Ranking.ranks(byVerifier[1]), Ranking.ranks(byVerifier[2]).map { 5 - $0 })
    }

    func testVerifierCallBudgetAndDeadlineAreEnforced() throws {
        let d = try daemon()
        let job = try d.submit("a red disk", ["strategy": .string("best-of-n"), "n": .uint32(6), "steps": .uint32(4),
                                              "budget_verifier_calls": .uint32(2)])
        try d.waitFinished(job)
        XCTAssertLessThanOrEqual(try d.number(job, "VerifierCalls"), 2)
        XCTAssertEqual(try d.string(job, "StopReason"), "budget")

        let slow = try d.submit("a red disk", ["sampler": .string("fixture-sampler"), "steps": .uint32(200),
                                               "sampler_options": .vardict(["delay_ms": .uint32(20)]), "deadline_ms": .uint32(300)])
        let start = Date()
        try d.waitFinished(slow)
        XCTAssertLessThan(Date().timeIntervalSince(start), 3)
        XCTAssertEqual(try d.string(slow, "StopReason"), "deadline")
        XCTAssertEqual(try d.string(slow, "State"), "failed", "no candidate finished before the deadline")
        XCTAssertLessThan(try d.number(slow, "NfeUsed"), 200)
    }

    func testCancelStopsARunningJobBetweenEvaluationsAndRemovesAQueuedOne() throws {
        let d = try daemon(["--max-concurrent-jobs", "1"])
        let running = try d.submit("a red disk", ["sampler": .string("fixture-sampler"), "steps": .uint32(500),
                                                  "sampler_options": .vardict(["delay_ms": .uint32(10)])])
        let queued = try d.submit("a green disk")
        try d.waitState(running, "running")
        XCTAssertEqual(try d.string(queued, "State"), "queued")
        d.expectError("io.assay.Error.NotReady") {
            _ = try d.client.call(DBusMessage.methodCall(destination: Daemon.name, path: queued, interface: "io.assay.Job1", member: "OpenResult"))
        }
        _ = try d.client.call(destination: Daemon.name, path: queued, interface: "io.assay.Job1", member: "Cancel")
        XCTAssertEqual(try d.string(queued, "State"), "cancelled", "a queued job is cancelled at once")
        while try d.number(running, "NfeUsed") < 5 { usleep(5_000) }
        let t0 = Date()
        _ = try d.client.call(destination: Daemon.name, path: running, interface: "io.assay.Job1", member: "Cancel")
        XCTAssertEqual(try d.waitFinished(running, timeout: 5), "cancelled")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.0, "cancel takes effect at the next evaluation")
        XCTAssertLessThan(try d.number(running, "NfeUsed"), 500)
        d.expectError("io.assay.Error.NotReady") {
            _ = try d.client.call(destination: Daemon.name, path: running, interface: "io.assay.Job1", member: "Cancel")
        }
        // The worker is free again.
        XCTAssertEqual(try d.waitFinished(try d.submit("a blue disk", ["steps": .uint32(3)])), "done")
    }

    func testUIDIdentityCapsAUserAcrossConnections() throws {
        // A script that opens a new connection per Submit is still one client by uid.
        let d = try daemon(["--client-identity", "uid", "--max-concurrent-jobs", "1", "--max-queued-per-client", "1"])
        let slow: [String: DBusValue] = ["sampler": .string("fixture-sampler"), "steps": .uint32(300),
                                         "sampler_options": .vardict(["delay_ms": .uint32(10)])]
        let running = try d.submit("a red disk", slow)
        try d.waitState(running, "running")
        _ = try d.submit("a red disk", ["steps": .uint32(2)])
        let other = try d.bus.connect()
        XCTAssertThrowsError(try other.call(destination: Daemon.name, path: Daemon.manager, interface: "io.assay.Manager1",
                                            member: "Submit", [.string("a red disk"), .vardict([:])])) {
            XCTAssertEqual(($0 as? DBusError)?.name, "io.assay.Error.QueueFull")
        }
        _ = try d.client.call(destination: Daemon.name, path: running, interface: "io.assay.Job1", member: "Cancel")
    }

    func testPluginInstanceOptionsReachInitAndBadOnesAreRefusedWithTheirReason() throws {
        let bad = try Daemon(arguments: ["--plugin-option", "example-model.mode_weight=7"])
        let refused = try bad.plugins().first { $0["path"]?.stringValue?.hasSuffix("example-model.so") == true }
        XCTAssertEqual(refused?["state"]?.stringValue, "refused")
        XCTAssertTrue(refused?["reason"]?.stringValue?.contains("mode_weight") ?? false, "\(String(describing: refused))")
        bad.stop()
        // A valid option changes the model: with weight 1 every sample follows the prompt.
        let good = try Daemon(arguments: ["--plugin-option", "example-model.mode_weight=1"])
        let job = try good.submit("a red disk", ["strategy": .string("best-of-n"), "n": .uint32(6), "steps": .uint32(20)])
        XCTAssertEqual(try good.waitFinished(job), "done")
        let scores = (try good.manifest(job)["candidates"] as! [[String: Any]]).map { ($0["scores"] as! [String: Double])["example-colour"]! }
        XCTAssertEqual(scores.min()!, 1, accuracy: 0.01, "\(scores)")
        XCTAssertNotEqual(Shell.run([TestEnvironment.assaydPath, "--plugin-option", "nodot=1"]).status, 0)
    }

    /// SIGTERM stops a running job at its next evaluation and the daemon exits 0 promptly;
    /// the job is not over for its client: no final manifest is written, its record stays,
    /// and the next start runs it again (DurableJobsTests follows it across the restart).
    func testSIGTERMInterruptsRunningJobsKeepsThemAndExitsCleanly() throws {
        let d = try daemon()
        let job = try d.submit("a red disk", ["sampler": .string("fixture-sampler"), "steps": .uint32(1000),
                                              "sampler_options": .vardict(["delay_ms": .uint32(10)])])
        while try d.number(job, "NfeUsed") < 2 { usleep(5_000) }
        let jobDir = d.stateDirectory + "/jobs/" + job.split(separator: "/").last!
        d.process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while d.process.isRunning && Date() < deadline { usleep(10_000) }
        XCTAssertFalse(d.process.isRunning, "assayd must exit promptly on SIGTERM")
        XCTAssertEqual(d.process.terminationStatus, 0, d.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: jobDir + "/manifest.json"), "an interrupted job must not look finished")
        XCTAssertTrue(FileManager.default.fileExists(atPath: jobDir + "/job.json"), "the job's record is gone")
        XCTAssertTrue(d.log.contains("runs again at the next start"), d.log)
    }

    func testPerClientQueueCapLeavesOtherClientsServed() throws {
        let d = try daemon(["--max-concurrent-jobs", "1", "--max-queued-per-client", "2", "--max-queued", "10"])
        let slow: [String: DBusValue] = ["sampler": .string("fixture-sampler"), "steps": .uint32(300),
                                         "sampler_options": .vardict(["delay_ms": .uint32(10)])]
        let finished = try SignalRecorder(bus: d.bus, rule: "type='signal',interface='io.assay.Job1',member='Finished'")
        let first = try d.submit("a red disk", slow)
        try d.waitState(first, "running")
        let a1 = try d.submit("a red disk", ["steps": .uint32(2)])
        let a2 = try d.submit("a red disk", ["steps": .uint32(2)])
        let message = d.expectError("io.assay.Error.QueueFull") { _ = try d.submit("a red disk", ["steps": .uint32(2)]) }
        XCTAssertTrue(message.contains("per-client maximum"), message)
        XCTAssertEqual(try d.property(Daemon.manager, "QueueLength", interface: "io.assay.Manager1"), .uint32(2))

        // Another client (another connection) is not affected, and is served before
        // the first client's second queued job (round robin).
        let other = try d.bus.connect()
        let reply = try other.call(destination: Daemon.name, path: Daemon.manager, interface: "io.assay.Manager1",
                                   member: "Submit", [.string("a blue disk"), .vardict(["steps": .uint32(2)])])
        guard case .objectPath(let b1)? = reply.first else { return XCTFail("no path") }
        _ = try d.client.call(destination: Daemon.name, path: first, interface: "io.assay.Job1", member: "Cancel")
        for j in [a1, a2, b1] { XCTAssertEqual(try d.waitFinished(j), "done") }
        _ = try finished.wait(for: "Finished") { _ in finished.signals.filter { $0.member == "Finished" }.count >= 4 }
        let order = finished.signals.filter { $0.member == "Finished" }
        XCTAssertEqual(order.map(\.path), [first, a1, b1, a2], "clients are served in turn")
        XCTAssertEqual(order.first?.args, [.string("cancelled")])
        d.assertAlive()
    }
}
