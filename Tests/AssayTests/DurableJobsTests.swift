import AssayClient
import AssayDBus
import Foundation
import XCTest

/// Jobs survive the daemon (issue 11, part 3): ids never repeat for a state directory, so
/// nothing is overwritten; after a clean restart or a kill -9, finished jobs are back on the
/// bus for what is left of their retention, and queued and running ones run again from
/// their plan; finished jobs stay on the bus for their whole retention, however many.
final class DurableJobsTests: XCTestCase {
    let plugins = [TestEnvironment.pluginsDirectory, TestEnvironment.fixturesDirectory]

    func sha(_ file: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: file))
    }

    func jobPaths(_ d: Daemon) throws -> Set<String> {
        Set(try d.callManager("ListJobs").first?.arrayValue?.compactMap(\.stringValue) ?? [])
    }

    func testIdsNeverRepeatAndFinishedJobsComeBackAfterARestart() throws {
        let state = TestEnvironment.temporaryDirectory("durable-state")
        var d: Daemon? = try Daemon(pluginDirectories: plugins, stateDirectory: state)
        let first = try d!.submit("a red disk", ["seed": .uint64(1)])
        let second = try d!.submit("a blue disk", ["strategy": .string("best-of-n"), "n": .uint32(3), "save_candidates": .bool(true)])
        XCTAssertEqual(try d!.waitFinished(first), "done")
        XCTAssertEqual(try d!.waitFinished(second), "done")
        let before = try [first, second].map { job in
            (try d!.string(job, "ResultPath"), try d!.string(job, "ManifestPath"), try d!.number(job, "NfeUsed"))
        }
        let bytes = try before.map { (try sha($0.0), try sha($0.1)) }
        d!.stop()
        d = nil

        let again = try Daemon(pluginDirectories: plugins, stateDirectory: state)
        XCTAssertEqual(try jobPaths(again), [first, second], "the finished jobs are not back on the bus")
        for (k, job) in [first, second].enumerated() {
            XCTAssertEqual(try again.string(job, "State"), "done")
            XCTAssertEqual(try again.string(job, "ResultPath"), before[k].0)
            XCTAssertEqual(try again.number(job, "NfeUsed"), before[k].2)
            XCTAssertEqual(try again.string(job, "StopReason"), "completed")
        }
        XCTAssertEqual(try again.number(second, "Candidates"), 3)
        // A new job takes a new id, and the old files are untouched.
        let third = try again.submit("a green disk")
        XCTAssertFalse([first, second].contains(third), "job id \(third) was used before")
        XCTAssertEqual(try again.waitFinished(third), "done")
        for (k, files) in before.enumerated() {
            XCTAssertEqual(try sha(files.0), bytes[k].0, "\(files.0) was overwritten")
            XCTAssertEqual(try sha(files.1), bytes[k].1, "\(files.1) was overwritten")
        }
        XCTAssertNotEqual(try again.string(third, "ResultPath"), before[0].0)
    }

    /// kill -9 with one job running and three queued: after the restart all four are on the
    /// bus under their old paths, run again and finish; the interrupted one's result is bit
    /// for bit what its plan makes (a fresh job with the same options and seed), and what the
    /// killed run had written is gone.
    func testKill9LosesNoJobAndRerunsThemFromTheirPlans() throws {
        let state = TestEnvironment.temporaryDirectory("durable-kill")
        var d: Daemon? = try Daemon(pluginDirectories: plugins, arguments: ["--max-concurrent-jobs", "1"], stateDirectory: state)
        let slow: [String: DBusValue] = ["sampler": .string("fixture-sampler"), "steps": .uint32(60), "seed": .uint64(11),
                                         "sampler_options": .vardict(["delay_ms": .uint32(25)]), "save_candidates": .bool(true)]
        let running = try d!.submit("a red disk", slow)
        let queued = try (0..<3).map { try d!.submit("a blue disk", ["seed": .uint64(UInt64(20 + $0))]) }
        try d!.waitState(running, "running")
        while try d!.number(running, "NfeUsed") < 5 { usleep(10_000) }
        XCTAssertEqual(try d!.string(queued[0], "State"), "queued")
        d!.kill9()
        d = nil

        let again = try Daemon(pluginDirectories: plugins, arguments: ["--max-concurrent-jobs", "1"], stateDirectory: state)
        XCTAssertEqual(try jobPaths(again), Set([running] + queued), "a job vanished in the crash")
        for job in [running] + queued {
            let error = (try? again.string(job, "Error")) ?? ""
            XCTAssertEqual(try again.waitFinished(job), "done", "\(job): \(error)")
        }
        XCTAssertTrue(again.log.contains("job queued again after a restart"), again.log)
        // The rerun is what the plan makes.
        let fresh = try again.submit("a red disk", slow)
        XCTAssertEqual(try again.waitFinished(fresh), "done", "\((try? again.string(fresh, "Error")) ?? ""): \(again.log)")
        XCTAssertEqual(try sha(try again.string(running, "ResultPath")), try sha(try again.string(fresh, "ResultPath")))
        XCTAssertEqual(try again.number(running, "NfeUsed"), 60)
        // New ids are past every id the state directory has seen.
        let ids = ([running, fresh] + queued).compactMap { UInt64($0.split(separator: "/").last!) }
        XCTAssertEqual(Set(ids).count, ids.count)
        XCTAssertEqual(UInt64(fresh.split(separator: "/").last!), ids.max(), "a new job must take an id past every earlier one")
        // No temporary file is left in any job folder.
        let leftovers = (FileManager.default.enumerator(atPath: state + "/jobs")?.allObjects as? [String] ?? []).filter { $0.contains(".tmp.") }
        XCTAssertEqual(leftovers, [])
    }

    /// A job cancelled while queued ends without a manifest: its end is recorded, and it
    /// comes back as cancelled, not run again.
    func testAJobCancelledWhileQueuedStaysCancelledAfterARestart() throws {
        let state = TestEnvironment.temporaryDirectory("durable-cancel")
        var d: Daemon? = try Daemon(pluginDirectories: plugins, arguments: ["--max-concurrent-jobs", "1"], stateDirectory: state)
        let blocker = try d!.submit("a red disk", ["sampler": .string("fixture-sampler"), "steps": .uint32(40),
                                                   "sampler_options": .vardict(["delay_ms": .uint32(10)])])
        let victim = try d!.submit("a blue disk")
        _ = try d!.client.call(destination: Daemon.name, path: victim, interface: "io.assay.Job1", member: "Cancel", [])
        XCTAssertEqual(try d!.waitFinished(victim), "cancelled")
        XCTAssertEqual(try d!.waitFinished(blocker), "done")
        d!.stop()
        d = nil
        let again = try Daemon(pluginDirectories: plugins, stateDirectory: state)
        XCTAssertEqual(try again.string(victim, "State"), "cancelled")
        XCTAssertEqual(try again.string(victim, "StopReason"), "cancelled")
        XCTAssertEqual(try again.string(blocker, "State"), "done")
        XCTAssertFalse(again.log.contains("job queued again"), again.log)
    }

    /// SIGTERM (a `systemctl restart`) with one job running and two queued: the daemon
    /// stops at once, and after the next start all three run and finish under their paths.
    /// Before, the queued ones were cancelled and the running one ended cancelled.
    func testSIGTERMKeepsRunningAndQueuedJobsForTheNextStart() throws {
        let state = TestEnvironment.temporaryDirectory("durable-term")
        var d: Daemon? = try Daemon(pluginDirectories: plugins, arguments: ["--max-concurrent-jobs", "1"], stateDirectory: state)
        let running = try d!.submit("a red disk", ["sampler": .string("fixture-sampler"), "steps": .uint32(200), "seed": .uint64(3),
                                                   "sampler_options": .vardict(["delay_ms": .uint32(20)])])
        let queued = try (0..<2).map { try d!.submit("a blue disk", ["seed": .uint64(UInt64(30 + $0))]) }
        try d!.waitState(running, "running")
        let started = Date()
        d!.stop()
        XCTAssertLessThan(Date().timeIntervalSince(started), 3, "SIGTERM took too long")
        XCTAssertTrue(d!.log.contains("runs again at the next start"), d!.log)
        d = nil
        let again = try Daemon(pluginDirectories: plugins, arguments: ["--max-concurrent-jobs", "1"], stateDirectory: state)
        for job in [running] + queued {
            XCTAssertEqual(try again.waitFinished(job), "done", "\(job): \((try? again.string(job, "Error")) ?? "")")
        }
        XCTAssertEqual(try again.number(running, "NfeUsed"), 200, "the interrupted job did not run again from the start")
    }

    /// A plugin call that never returns (and never looks at cancellation) does not keep the
    /// daemon from stopping, and its job is still there at the next start. In process
    /// (--in-process-plugins), SIGTERM ends the daemon after --stop-timeout-seconds; with the
    /// plugin in a worker, the stop cancels the call at once (the worker is killed).
    func testSIGTERMStopsInBoundedTimeWithAStuckPluginCall() throws {
        for inProcess in [true, false] {
            let state = TestEnvironment.temporaryDirectory("durable-stuck")
            var d: Daemon? = try Daemon(pluginDirectories: plugins,
                                        arguments: ["--stop-timeout-seconds", "1"] + (inProcess ? ["--in-process-plugins"] : []),
                                        stateDirectory: state)
            let stuck = try d!.submit("a red disk", ["strategy": .string("best-of-n"), "n": .uint32(1), "steps": .uint32(2),
                                                     "verifiers": .strings(["fixture-hang"])])
            try d!.waitState(stuck, "running")
            usleep(300_000) // into the verifier call
            let started = Date()
            kill(d!.pid, SIGTERM)
            while d!.process.isRunning && Date().timeIntervalSince(started) < 10 { usleep(20_000) }
            let took = Date().timeIntervalSince(started)
            if d!.process.isRunning { d!.kill9() }
            if inProcess {
                XCTAssertLessThan(took, 5, "SIGTERM did not stop the daemon while a plugin call was stuck")
                XCTAssertTrue(d!.log.contains("did not stop in time"), d!.log)
            } else {
                XCTAssertLessThan(took, 1, "SIGTERM did not cancel the stuck call in its worker")
                XCTAssertFalse(d!.log.contains("did not stop in time"), d!.log)
            }
            d = nil
            let again = try Daemon(pluginDirectories: plugins, arguments: ["--plugin-call-timeout-seconds", "30"], stateDirectory: state)
            XCTAssertTrue(["queued", "running"].contains(try again.string(stuck, "State")), "the interrupted job is gone")
            again.kill9() // it hangs again; nothing more to see
        }
    }

    /// More finished jobs than the old hidden cap of 256 all stay readable for their
    /// retention: one client's flood cannot push another client's result off the bus.
    func testFinishedJobsStayForTheirRetentionHoweverMany() throws {
        let d = try Daemon(pluginDirectories: plugins, arguments: ["--max-queued", "400", "--max-queued-per-client", "400"])
        let other = AssayClient(connection: try d.bus.connect()) // another client key
        let mine = try other.submit("a green disk")
        var flood: [String] = []
        for k in 0..<300 { flood.append(try d.submit("a red disk", ["steps": .uint32(2), "seed": .uint64(UInt64(k))])) }
        for job in flood { _ = try d.waitFinished(job) }
        XCTAssertEqual(try d.string(mine, "State"), "done", "the other client's finished job left the bus")
        XCTAssertEqual(try jobPaths(d).count, 301)
    }
}
