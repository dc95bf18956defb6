import AssayCore
import Foundation
import XCTest

/// The real `assayctl` binary against a real `assayd` on a private bus.
final class CLITests: XCTestCase {
    /// Runs assayctl with `--address` of `bus` (given before the subcommand: a global option).
    @discardableResult
    func assayctl(_ bus: PrivateBus, _ args: [String], timeout: Double = 60) -> Shell.Result {
        Shell.run([TestEnvironment.assayctlPath, "--address", bus.address] + args, timeout: timeout)
    }

    func json(_ r: Shell.Result, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        guard let d = object as? [String: Any] else {
            throw TestFailure("not a JSON object: \(r.stdout)")
        }
        return d
    }

    func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    func testGenerateBestOfNWritesTheResultPNG() throws {
        let daemon = try Daemon()
        let out = TestEnvironment.temporaryDirectory("cli") + "/best.png"
        let r = assayctl(daemon.bus, ["generate", "a red disk top left", "--strategy", "best-of-n", "-n", "4",
                                      "--seed", "7", "--steps", "8", "--out", out, "--json", "-q"])
        XCTAssertEqual(r.status, 0, r.stderr + daemon.log)
        let summary = try json(r)
        XCTAssertEqual(summary["state"] as? String, "done")
        XCTAssertEqual(summary["strategy"] as? String, "best-of-n")
        XCTAssertEqual(summary["model"] as? String, "example-model")
        XCTAssertEqual(summary["seed"] as? Int, 7)
        XCTAssertEqual(summary["candidates"] as? Int, 4)
        XCTAssertEqual(summary["out"] as? String, out)
        let job = try XCTUnwrap(summary["job"] as? String)
        XCTAssertTrue(job.hasPrefix("/io/assay/Assay1/jobs/"), job)

        let png = try bytes(out)
        let image = try PNGEncoder.decode(png)
        XCTAssertEqual(image.width, 16)
        XCTAssertEqual(image.height, 16)
        let resultPath = try daemon.string(job, "ResultPath")
        XCTAssertEqual(summary["result_path"] as? String, resultPath)
        XCTAssertEqual(png, try bytes(resultPath), "--out must hold exactly the daemon's result")
    }

    func testJSONSummaryHasEveryField() throws {
        let daemon = try Daemon()
        let r = assayctl(daemon.bus, ["generate", "a blue disk", "--seed", "3", "--steps", "4", "--json", "-q"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let s = try json(r)
        for key in ["job", "state", "stop_reason", "prompt", "strategy", "model", "seed", "progress", "nfe_used",
                    "nfe_budget", "verifier_calls", "candidates", "best_score", "result_path", "manifest_path",
                    "candidates_path", "error"] {
            XCTAssertNotNil(s[key], "missing \(key) in \(r.stdout)")
        }
        XCTAssertEqual(s["stop_reason"] as? String, "completed")
        XCTAssertEqual(s["prompt"] as? String, "a blue disk")
        XCTAssertEqual(s["nfe_used"] as? Int, s["nfe_budget"] as? Int)
        XCTAssertNotNil(s["best_score"] as? Double, "a verifier ran, so the best score is a number")
        XCTAssertTrue(FileManager.default.fileExists(atPath: s["manifest_path"] as? String ?? ""))

        // status --json reads the same fields back.
        let status = assayctl(daemon.bus, ["status", s["job"] as! String, "--json"])
        XCTAssertEqual(status.status, 0, status.stderr)
        XCTAssertEqual(try json(status)["result_path"] as? String, s["result_path"] as? String)

        // jobs --json lists it.
        let jobs = assayctl(daemon.bus, ["jobs", "--json"])
        XCTAssertEqual(jobs.status, 0, jobs.stderr)
        let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(jobs.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(list.map { $0["job"] as? String }, [s["job"] as? String])
    }

    func testDaemonErrorsExitThreeAndNameTheError() throws {
        let daemon = try Daemon()
        let bad = assayctl(daemon.bus, ["generate", "a red disk", "-n", "0"])
        XCTAssertEqual(bad.status, 3, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("assayctl: io.assay.Error.InvalidArgument: "), bad.stderr)

        let unknown = assayctl(daemon.bus, ["generate", "a red disk", "--model", "no-such-model"])
        XCTAssertEqual(unknown.status, 3, unknown.stderr)
        XCTAssertTrue(unknown.stderr.contains("io.assay.Error.UnknownPlugin"), unknown.stderr)

        let noJob = assayctl(daemon.bus, ["status", "999"])
        XCTAssertEqual(noJob.status, 3, noJob.stderr)
        XCTAssertTrue(noJob.stderr.contains("io.assay.Error.NotFound"), noJob.stderr)
        daemon.assertAlive()
    }

    func testUsageErrorsExitTwo() throws {
        let bus = try PrivateBus()
        XCTAssertEqual(assayctl(bus, ["generate"]).status, 2)
        XCTAssertEqual(assayctl(bus, ["generate", "x", "--no-such-flag"]).status, 2)
        XCTAssertEqual(assayctl(bus, ["status", "not-a-job"]).status, 2)
        XCTAssertEqual(Shell.run([TestEnvironment.assayctlPath, "--system", "--address", bus.address, "jobs"]).status, 2)
    }

    func testNoDaemonExitsFour() throws {
        let bus = try PrivateBus() // a bus, but nobody owns io.assay.Assay1
        let r = assayctl(bus, ["generate", "a red disk"])
        XCTAssertEqual(r.status, 4, r.stderr)
        XCTAssertTrue(r.stderr.contains("not reachable"), r.stderr)
        XCTAssertEqual(assayctl(bus, ["plugins"]).status, 4)

        let noBus = Shell.run([TestEnvironment.assayctlPath, "jobs", "--address",
                               "unix:path=\(TestEnvironment.temporaryDirectory("nobus"))/missing"])
        XCTAssertEqual(noBus.status, 4, noBus.stderr)
    }

    func testPluginsJSONListsTheExampleModel() throws {
        let daemon = try Daemon()
        let r = assayctl(daemon.bus, ["plugins", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        let model = try XCTUnwrap(list.first { $0["id"] as? String == "example-model" }, r.stdout)
        XCTAssertEqual(model["kind"] as? String, "model")
        XCTAssertEqual(model["state"] as? String, "loaded")
        XCTAssertTrue((model["path"] as? String ?? "").hasSuffix("example-model.so"))

        let table = assayctl(daemon.bus, ["plugins"])
        XCTAssertEqual(table.status, 0)
        XCTAssertTrue(table.stdout.hasPrefix("ID"), table.stdout)
        XCTAssertTrue(table.stdout.contains("example-colour"), table.stdout)
    }

    /// A job slowed down by the fixture sampler's delay_ms: long enough to cancel.
    func slowJob(_ daemon: Daemon, extra: [String] = []) -> [String] {
        ["generate", "a red disk", "--sampler", "fixture-sampler", "--sampler-option", "delay_ms=40",
         "--steps", "50"] + extra
    }

    func testCancelOfASlowJob() throws {
        let daemon = try Daemon(pluginDirectories: [TestEnvironment.pluginsDirectory, TestEnvironment.fixturesDirectory])
        let submitted = assayctl(daemon.bus, slowJob(daemon, extra: ["--no-wait"]))
        XCTAssertEqual(submitted.status, 0, submitted.stderr)
        let job = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try daemon.waitState(job, "running")

        let number = String(job.split(separator: "/").last!)
        let cancel = assayctl(daemon.bus, ["cancel", number])
        XCTAssertEqual(cancel.status, 0, cancel.stderr)
        XCTAssertEqual(try daemon.waitFinished(job, timeout: 10), "cancelled")

        let wait = assayctl(daemon.bus, ["wait", job, "--json", "-q"])
        XCTAssertEqual(wait.status, 5, wait.stderr)
        XCTAssertEqual(try json(wait)["state"] as? String, "cancelled")

        let again = assayctl(daemon.bus, ["cancel", job])
        XCTAssertEqual(again.status, 3)
        XCTAssertTrue(again.stderr.contains("io.assay.Error.NotReady"), again.stderr)
    }

    func testInterruptCancelsTheJobAndExitsFive() throws {
        let daemon = try Daemon(pluginDirectories: [TestEnvironment.pluginsDirectory, TestEnvironment.fixturesDirectory])
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestEnvironment.assayctlPath)
        p.arguments = ["--address", daemon.bus.address] + slowJob(daemon, extra: ["-q"])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait until its job runs, then Ctrl-C.
        let deadline = Date().addingTimeInterval(20)
        var job: String?
        while job == nil && Date() < deadline {
            let jobs = try daemon.callManager("ListJobs").first?.arrayValue?.compactMap(\.stringValue) ?? []
            if let j = jobs.first, try daemon.string(j, "State") == "running" { job = j }
            usleep(20_000)
        }
        let running = try XCTUnwrap(job, "the job never ran")
        p.interrupt()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 5)
        XCTAssertEqual(try daemon.waitFinished(running, timeout: 10), "cancelled")
    }

    func testReplayReproducesTheResult() throws {
        let daemon = try Daemon()
        let dir = TestEnvironment.temporaryDirectory("cli")
        let first = assayctl(daemon.bus, ["generate", "a green disk bottom right", "-n", "3", "--seed", "11",
                                          "--steps", "6", "--guidance", "2.5", "--out", dir + "/first.png", "--json", "-q"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let manifest = try XCTUnwrap(try json(first)["manifest_path"] as? String)

        let replay = assayctl(daemon.bus, ["replay", manifest, "--out", dir + "/replay.png", "--json", "-q"])
        XCTAssertEqual(replay.status, 0, replay.stderr + daemon.log)
        let s = try json(replay)
        XCTAssertEqual(s["reproduced"] as? Bool, true)
        XCTAssertEqual(s["seed"] as? Int, 11)
        XCTAssertEqual(s["strategy"] as? String, "best-of-n")
        XCTAssertNotEqual(s["job"] as? String, try json(first)["job"] as? String)
        XCTAssertEqual(try bytes(dir + "/first.png"), try bytes(dir + "/replay.png"))
    }

    func testContactSheetShowsEveryCandidate() throws {
        let daemon = try Daemon()
        let sheet = TestEnvironment.temporaryDirectory("cli") + "/sheet.png"
        let r = assayctl(daemon.bus, ["generate", "a red disk top left", "-n", "4", "--seed", "5", "--steps", "4",
                                      "--contact-sheet", sheet, "-q"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let image = try PNGEncoder.decode(try bytes(sheet))
        // 2x2 grid of 16 px candidates scaled to 96 px, with padding and a score bar each.
        XCTAssertGreaterThanOrEqual(image.width, 2 * 96)
        XCTAssertGreaterThanOrEqual(image.height, 2 * 96)
        // The best is framed in pure-ish green somewhere.
        var green = 0
        for i in stride(from: 0, to: image.pixels.count, by: 3)
        where image.pixels[i] == 40 && image.pixels[i + 1] == 220 && image.pixels[i + 2] == 70 { green += 1 }
        XCTAssertGreaterThan(green, 4 * 96, "no green frame around the best candidate")
    }
}
