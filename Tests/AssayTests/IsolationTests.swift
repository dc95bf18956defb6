import AssayClient
import AssayDBus
import Foundation
import XCTest

/// Plugins out of process (issue 11, part 1): verifiers and reflectors run in worker
/// processes, and every plugin file is first loaded in one. Real daemon, real workers, real
/// crashing and hanging plugins (Tests/Fixtures/plugins).
final class IsolationTests: XCTestCase {
    var dirs: [String] { [TestEnvironment.pluginsDirectory, TestEnvironment.fixturesDirectory] }

    func options(_ verifier: String) -> [String: DBusValue] {
        ["model": .string("example-model"), "strategy": .string("best-of-n"), "n": .uint32(2), "steps": .uint32(4),
         "verifiers": .strings([verifier])]
    }

    /// A verifier that segfaults or aborts fails only its own job, with PluginCrashed naming
    /// the plugin and the signal; a job beside it finishes; its worker restarts for the next
    /// call; after three crashes it is quarantined (ListPlugins says why, Submit refuses it)
    /// until its file changes.
    func testACrashingVerifierFailsOnlyItsJobAndIsQuarantinedAfterThreeCrashes() throws {
        let plugins = TestEnvironment.temporaryDirectory("isolation-crash")
        let file = plugins + "/crash_verifier.so"
        try FileManager.default.copyItem(atPath: TestEnvironment.fixturesDirectory + "/crash_verifier.so", toPath: file)
        let d = try Daemon(pluginDirectories: [TestEnvironment.pluginsDirectory, plugins],
                           arguments: ["--max-concurrent-jobs", "2"])
        let healthy = try d.submit("a red disk", ["model": .string("example-model"), "strategy": .string("best-of-n"),
                                                  "n": .uint32(6), "steps": .uint32(30), "verifiers": .strings(["example-colour"])])
        let crashed = try d.submit("a red disk segfault", options("fixture-crash"))
        XCTAssertEqual(try d.waitFinished(crashed), "failed")
        let error = try d.string(crashed, "Error")
        XCTAssertTrue(error.hasPrefix("io.assay.Error.PluginCrashed"), error)
        XCTAssertTrue(error.contains("fixture-crash") && error.contains("SIGSEGV"), error)
        XCTAssertEqual(try d.waitFinished(healthy), "done", (try? d.string(healthy, "Error")) ?? "")
        d.assertAlive()

        // The worker came back: the same plugin scores the next job.
        let fine = try d.submit("a red disk", options("fixture-crash"))
        XCTAssertEqual(try d.waitFinished(fine), "done", (try? d.string(fine, "Error")) ?? "")
        XCTAssertEqual(try d.number(fine, "BestScore"), 0.25)

        let aborted = try d.submit("a red disk abort", options("fixture-crash"))
        XCTAssertEqual(try d.waitFinished(aborted), "failed")
        let abortError = try d.string(aborted, "Error")
        XCTAssertTrue(abortError.contains("SIGABRT"), abortError)
        // Score through the bus: the crash is a D-Bus error of its own.
        let third = try d.submit("a red disk segfault", options("fixture-crash"))
        XCTAssertEqual(try d.waitFinished(third), "failed")
        try d.waitPlugins { $0.contains { $0["id"]?.stringValue == "fixture-crash" && $0["state"]?.stringValue == "quarantined" } }
        let row = try XCTUnwrap(try d.plugins().first { $0["id"]?.stringValue == "fixture-crash" })
        XCTAssertTrue(row["reason"]?.stringValue?.contains("3 times") == true, "\(row)")
        let refusal = d.expectError("io.assay.Error.PluginCrashed") { _ = try d.submit("a red disk", options("fixture-crash")) }
        XCTAssertTrue(refusal.contains("quarantined"), refusal)
        d.assertAlive()

        // A changed file is a new start.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        bytes.append(0)
        try bytes.write(to: URL(fileURLWithPath: file + ".tmp"))
        XCTAssertEqual(rename(file + ".tmp", file), 0)
        try d.waitPlugins { $0.contains { $0["id"]?.stringValue == "fixture-crash" && $0["state"]?.stringValue == "loaded" } }
        let again = try d.submit("a red disk", options("fixture-crash"))
        XCTAssertEqual(try d.waitFinished(again), "done", (try? d.string(again, "Error")) ?? "")
    }

    /// Cancel takes effect at once even while the plugin call never returns: the worker is
    /// killed, the job ends cancelled, the daemon is fine; the watchdog ends a hung call of
    /// a job nobody cancels.
    func testCancelAndTheWatchdogEndAStuckCall() throws {
        let d = try Daemon(pluginDirectories: dirs, arguments: ["--plugin-call-timeout-seconds", "1.5"])
        let stuck = try d.submit("a red disk", options("fixture-hang"))
        try d.waitState(stuck, "running")
        usleep(300_000) // into the verifier call
        let start = Date()
        _ = try d.api.call(stuck, "io.assay.Job1", "Cancel", [])
        try d.waitState(stuck, "cancelled", timeout: 5)
        let took = Date().timeIntervalSince(start)
        print("cancel of a stuck plugin call took \(Int(took * 1000)) ms")
        XCTAssertLessThan(took, 0.3, "Cancel took \(took) s")
        d.assertAlive()

        let hung = try d.submit("a red disk", options("fixture-hang"))
        XCTAssertEqual(try d.waitFinished(hung, timeout: 20), "failed")
        let error = try d.string(hung, "Error")
        XCTAssertTrue(error.hasPrefix("io.assay.Error.PluginCrashed") && error.contains("no answer within 1.5 s"), error)
        let healthy = try d.submit("a red disk", options("example-colour"))
        XCTAssertEqual(try d.waitFinished(healthy), "done")
    }

    /// A plugin that looks at cancellation (host->is_cancelled, fed from the daemon's flag in
    /// the worker's control page) stops by itself: the job ends cancelled at once and the
    /// worker lives on (no process killed or started), serving the next job.
    func testCancelOfACooperativeCallKeepsItsWorker() throws {
        let d = try Daemon(pluginDirectories: dirs)
        let slow: [String: DBusValue] = ["model": .string("example-model"), "sampler": .string("fixture-sampler"),
                                         "steps": .uint32(40), "sampler_options": .vardict(["delay_ms": .uint32(50)])]
        let job = try d.submit("a red disk", slow)
        while try d.number(job, "NfeUsed") < 2 { usleep(5_000) }
        let before = IsolationTests.children(of: d.pid)
        let start = Date()
        _ = try d.api.call(job, "io.assay.Job1", "Cancel", [])
        try d.waitState(job, "cancelled", timeout: 5)
        XCTAssertLessThan(Date().timeIntervalSince(start), 0.3)
        XCTAssertEqual(IsolationTests.children(of: d.pid), before, "a worker was killed or started by a cooperative cancel")
        let next = try d.submit("a red disk", ["model": .string("example-model"), "sampler": .string("fixture-sampler"),
                                               "steps": .uint32(8)])
        XCTAssertEqual(try d.waitFinished(next), "done")
        XCTAssertEqual(IsolationTests.children(of: d.pid), before)
    }

    /// A plugin that eats memory runs into its worker's limit (--plugin-memory-limit-mib):
    /// its call fails, the daemon's memory does not move, the next job is served.
    func testAPluginThatEatsMemoryFailsOnlyItsCall() throws {
        let d = try Daemon(pluginDirectories: dirs, arguments: ["--plugin-memory-limit-mib", "256"])
        let rss0 = rssKiB(d.pid)
        let hog = try d.submit("a red disk hog", options("fixture-crash"))
        XCTAssertEqual(try d.waitFinished(hog, timeout: 30), "failed")
        let error = try d.string(hog, "Error")
        XCTAssertTrue(error.hasPrefix("io.assay.Error.PluginCrashed") && error.contains("fixture-crash"), error)
        XCTAssertLessThan(rssKiB(d.pid) - rss0, 32 * 1024, "the daemon's own memory grew")
        let fine = try d.submit("a red disk", options("fixture-crash"))
        XCTAssertEqual(try d.waitFinished(fine), "done", (try? d.string(fine, "Error")) ?? "")
        d.assertAlive()
    }

    func rssKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// A deadline that passes while a plugin call is stuck ends the call from outside, and
    /// the job says so: StopReason deadline.
    func testADeadlineEndsAStuckCall() throws {
        let d = try Daemon(pluginDirectories: dirs)
        var o = options("fixture-hang")
        o["deadline_ms"] = .uint32(700)
        let job = try d.submit("a red disk", o)
        XCTAssertEqual(try d.waitFinished(job, timeout: 10), "failed")
        XCTAssertEqual(try d.string(job, "StopReason"), "deadline")
        let error = try d.string(job, "Error")
        XCTAssertTrue(error.contains("deadline"), error)
        d.assertAlive()
    }

    /// A sampler that crashes in the middle of its advance, after model evaluations it asked
    /// the daemon for through its worker: only its job fails, with the signal; the NFEs it
    /// used were counted; the next job with the same sampler works.
    func testASamplerCrashingBetweenEvaluationsFailsOnlyItsJob() throws {
        let d = try Daemon(pluginDirectories: dirs)
        let crashing = try d.submit("a red disk", ["model": .string("example-model"), "sampler": .string("fixture-sampler"),
                                                   "steps": .uint32(10),
                                                   "sampler_options": .vardict(["crash_at_step": .double(3)])])
        XCTAssertEqual(try d.waitFinished(crashing), "failed")
        let error = try d.string(crashing, "Error")
        XCTAssertTrue(error.hasPrefix("io.assay.Error.PluginCrashed") && error.contains("fixture-sampler") && error.contains("SIGSEGV"), error)
        XCTAssertGreaterThanOrEqual(try d.number(crashing, "NfeUsed"), 3, "the evaluations before the crash were not counted")
        let fine = try d.submit("a red disk", ["model": .string("example-model"), "sampler": .string("fixture-sampler"),
                                               "steps": .uint32(10)])
        XCTAssertEqual(try d.waitFinished(fine), "done", (try? d.string(fine, "Error")) ?? "")
        d.assertAlive()
    }

    /// A file whose mere loading crashes (a constructor that segfaults) is refused with the
    /// signal, in the worker that tried; the daemon starts and serves.
    func testAFileThatCrashesWhenLoadedIsRefusedAndTheDaemonStarts() throws {
        let d = try Daemon(pluginDirectories: [TestEnvironment.pluginsDirectory, TestEnvironment.fixturesDirectory + "/hostile"])
        let rows = try d.plugins().filter { $0["path"]?.stringValue?.hasSuffix("crash_on_load.so") == true }
        XCTAssertEqual(rows.count, 1, "\((try? d.plugins()) ?? [])")
        XCTAssertEqual(rows.first?["state"]?.stringValue, "refused")
        let reason = rows.first?["reason"]?.stringValue ?? ""
        XCTAssertTrue(reason.contains("crashed the worker process") && reason.contains("SIGSEGV"), reason)
        let job = try d.submit("a red disk", options("example-colour"))
        XCTAssertEqual(try d.waitFinished(job), "done")
        d.assertAlive()
    }

    /// Plugins really run elsewhere: the daemon's children are its workers, one per plugin
    /// file; with --in-process-plugins there are none.
    func testPluginsRunInWorkerProcessesUnlessTrusted() throws {
        let d = try Daemon(pluginDirectories: [TestEnvironment.pluginsDirectory])
        let job = try d.submit("a red disk", options("example-colour"))
        XCTAssertEqual(try d.waitFinished(job), "done")
        let loaded = try d.plugins().filter { $0["state"]?.stringValue == "loaded" }
        XCTAssertEqual(IsolationTests.children(of: d.pid).count, Set(loaded.compactMap { $0["path"]?.stringValue }).count,
                       "one worker per plugin file (one job at a time needs no second one)")
        let trusted = try Daemon(pluginDirectories: [TestEnvironment.pluginsDirectory], arguments: ["--in-process-plugins"])
        let other = try trusted.submit("a red disk", options("example-colour"))
        XCTAssertEqual(try trusted.waitFinished(other), "done")
        XCTAssertEqual(IsolationTests.children(of: trusted.pid), [])
    }

    /// Processes whose parent is `pid` (from /proc/*/stat: field 4 is the parent).
    static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid
        }.sorted()
    }
}
