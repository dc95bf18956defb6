import AssayDBus
import Foundation
import XCTest

/// Live progress as clients see it: PropertiesChanged (rate-limited), Finished, retention.
final class ProgressTests: XCTestCase {
    func testProgressArrivesAsRateLimitedPropertiesChangedThenFinished() throws {
        let d = try Daemon(pluginDirectories: [TestEnvironment.pluginsDirectory, TestEnvironment.fixturesDirectory])
        let rec = try SignalRecorder(bus: d.bus, rule: "type='signal',sender='io.assay.Assay1'")
        // 40 evaluations x 15 ms: about 0.6 s of work, progress after every evaluation.
        let start = Date()
        let job = try d.submit("a red disk", ["sampler": .string("fixture-sampler"), "steps": .uint32(40),
                                              "sampler_options": .vardict(["delay_ms": .uint32(15)])])
        _ = try rec.wait(for: "Finished") { $0 == [.string("done")] }
        let elapsed = Date().timeIntervalSince(start)
        let changes = rec.signals.filter { $0.member == "PropertiesChanged" && $0.path == job }
        let nfe = changes.compactMap { $0.args[1].vardictValue?["NfeUsed"]?.doubleValue }
        XCTAssertGreaterThanOrEqual(nfe.count, 3, "progress is visible while the job runs")
        XCTAssertEqual(nfe, nfe.sorted(), "NfeUsed never goes backwards")
        XCTAssertEqual(nfe.last, 40)
        // At most one update per 100 ms, plus the state changes (queued->running->done).
        XCTAssertLessThanOrEqual(Double(changes.count), elapsed / 0.1 + 4, "updates must be rate-limited: \(changes.count) in \(elapsed) s")
        let states = changes.compactMap { $0.args[1].vardictValue?["State"]?.stringValue }
        XCTAssertEqual(states.last, "done")
        XCTAssertTrue(states.contains("running"))
        let progress = changes.compactMap { $0.args[1].vardictValue?["Progress"]?.doubleValue }
        XCTAssertEqual(progress.last, 1)
        // The Finished signal comes after the final properties.
        let finishedIndex = rec.signals.firstIndex { $0.member == "Finished" }!
        let lastChange = rec.signals.lastIndex { $0.member == "PropertiesChanged" && $0.path == job }!
        XCTAssertLessThan(lastChange, finishedIndex)
        // QueueLength on the manager is announced too.
        XCTAssertTrue(rec.signals.contains { $0.path == Daemon.manager && $0.args.first == .string("io.assay.Manager1") })
    }

    func testFinishedJobsStayReadableForTheRetentionTimeThenGo() throws {
        let d = try Daemon(arguments: ["--retention-seconds", "0.6"])
        let job = try d.submit("a red disk", ["steps": .uint32(2)])
        XCTAssertEqual(try d.waitFinished(job), "done")
        XCTAssertEqual(try d.string(job, "State"), "done", "still readable right after finishing")
        XCTAssertTrue(try d.callManager("ListJobs").first?.arrayValue?.contains(.objectPath(job)) ?? false)
        let manifest = try d.string(job, "ManifestPath")
        usleep(1_200_000)
        d.expectError("io.assay.Error.NotFound") { _ = try d.property(job, "State") }
        XCTAssertFalse(try d.callManager("ListJobs").first?.arrayValue?.contains(.objectPath(job)) ?? true)
        XCTAssertTrue(FileManager.default.fileExists(atPath: manifest), "files outlive the bus object")
    }
}
