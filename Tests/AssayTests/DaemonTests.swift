import AssayCore
import AssayDBus
import AssayPluginHost
import AssayWire
import Foundation
import XCTest

/// The daemon end to end: a real assayd on a private bus, called with real clients.
final class DaemonTests: XCTestCase {
    func testBestOfNThroughBusctlGdbusAndDbusSend() throws {
        let d = try Daemon()
        // Submit with busctl, as a shell script would.
        let submit = d.bus.cli(["busctl", "call", "io.assay.Assay1", "/io/assay/Assay1", "io.assay.Manager1", "Submit",
                                "sa{sv}", "a red disk top left", "4", "strategy", "s", "best-of-n", "n", "u", "6",
                                "guidance", "d", "3", "seed", "t", "11"])
        XCTAssertEqual(submit.status, 0, submit.stderr)
        let path = try XCTUnwrap(submit.stdout.split(separator: "\"").dropFirst().first.map(String.init))
        XCTAssertTrue(path.hasPrefix("/io/assay/Assay1/jobs/"), submit.stdout)
        XCTAssertEqual(try d.waitFinished(path), "done")

        // Read properties with gdbus and dbus-send.
        let state = d.bus.cli(["gdbus", "call", "--dest", "io.assay.Assay1", "--object-path", path, "--method",
                               "org.freedesktop.DBus.Properties.Get", "io.assay.Job1", "State"])
        XCTAssertEqual(state.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "(<'done'>,)", state.stderr)
        let nfe = d.bus.cli(["dbus-send", "--print-reply=literal", "--dest=io.assay.Assay1", path,
                             "org.freedesktop.DBus.Properties.Get", "string:io.assay.Job1", "string:NfeUsed"])
        XCTAssertTrue(nfe.stdout.contains("uint32 240"), nfe.stdout + nfe.stderr) // 6 x 20 steps x 2 (guidance)
        let jobs = d.bus.cli(["dbus-send", "--print-reply", "--dest=io.assay.Assay1", "/io/assay/Assay1",
                              "io.assay.Manager1.ListJobs"])
        XCTAssertTrue(jobs.stdout.contains(path), jobs.stdout)

        XCTAssertEqual(try d.number(path, "Progress"), 1)
        XCTAssertEqual(try d.number(path, "Candidates"), 6)
        XCTAssertEqual(try d.string(path, "StopReason"), "completed")
        let best = try d.number(path, "BestScore")
        let manifest = try d.manifest(path)
        let candidates = manifest["candidates"] as! [[String: Any]]
        let scores = candidates.map { ($0["scores"] as! [String: Double])["example-colour"]! }
        XCTAssertEqual(best, scores.max()!, "the best candidate is the verifier's favourite")
        XCTAssertEqual(Set(candidates.map { $0["seed"] as! UInt64 }).count, 6, "every candidate has its own seed")

        // The result as a file descriptor equals the file, and is a PNG of the model's size.
        let reply = try d.client.call(DBusMessage.methodCall(destination: Daemon.name, path: path,
                                                             interface: "io.assay.Job1", member: "OpenResult"))
        guard case .unixFD(let fd)? = reply.arguments().first else { return XCTFail("OpenResult returned no fd") }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        let viaFD = handle.readDataToEndOfFile()
        let viaPath = try Data(contentsOf: URL(fileURLWithPath: try d.string(path, "ResultPath")))
        XCTAssertEqual(viaFD, viaPath)
        let image = try PNGEncoder.decode(Array(viaFD))
        XCTAssertEqual(image.width, 16)
        d.assertAlive()
    }

    func testDefaultsPickOneModelAndOneVerifierFromThePreferenceLists() throws {
        let d = try Daemon(pluginDirectories: [TestEnvironment.pluginsDirectory, TestEnvironment.fixturesDirectory],
                           arguments: ["--default-verifiers", "no-such-verifier,fixture-b,fixture-a"])
        let job = try d.submit("a red disk", ["strategy": .string("best-of-n"), "n": .uint32(2), "steps": .uint32(2)])
        try d.waitFinished(job)
        let plan = try d.manifest(job)["plan"] as! [String: Any]
        XCTAssertEqual(plan["verifiers"] as? [String], ["fixture-b"], "the first loaded preferred verifier, alone")
        XCTAssertEqual(plan["model"] as? String, "example-model")
        XCTAssertEqual(plan["strategy"] as? String, "best-of-n")
    }

    func testIntrospectionIsValidForGdbusAndBusctl() throws {
        let d = try Daemon()
        let job = try d.submit("a blue disk", ["steps": .uint32(2)])
        try d.waitFinished(job)
        let g = d.bus.cli(["gdbus", "introspect", "--dest", "io.assay.Assay1", "--object-path", "/io/assay/Assay1"])
        XCTAssertEqual(g.status, 0, g.stderr)
        XCTAssertTrue(g.stdout.contains("Submit(in  s prompt,"), g.stdout)
        XCTAssertTrue(g.stdout.contains("readonly u QueueLength"), g.stdout)
        let b = d.bus.cli(["busctl", "introspect", "io.assay.Assay1", job])
        XCTAssertEqual(b.status, 0, b.stderr)
        XCTAssertTrue(b.stdout.contains(".OpenResult") && b.stdout.contains(".Finished") && b.stdout.contains("\"done\""), b.stdout)
        let tree = d.bus.cli(["busctl", "tree", "io.assay.Assay1"])
        XCTAssertTrue(tree.stdout.contains(job), tree.stdout)
    }

    func testMalformedCallsGetNamedErrorsAndTheDaemonStaysUp() throws {
        let d = try Daemon()
        let invalid = "io.assay.Error.InvalidArgument"
        XCTAssertTrue(d.expectError(invalid) { _ = try d.submit("   ") }.contains("prompt is empty"))
        XCTAssertTrue(d.expectError(invalid) { _ = try d.submit("a red disk", ["n": .string("8"), "strategy": .string("best-of-n")]) }
            .contains("'n' must be an unsigned integer"))
        XCTAssertTrue(d.expectError(invalid) { _ = try d.submit("a red disk", ["colour": .string("red")]) }.contains("unknown option 'colour'"))
        XCTAssertTrue(d.expectError(invalid) { _ = try d.submit("a red disk", ["budget_nfe": .uint32(4_000_000_000)]) }.contains("between 1 and"))
        XCTAssertTrue(d.expectError(invalid) { _ = try d.submit("a red disk", ["budget_nfe": .uint32(3), "steps": .uint32(20)]) }
            .contains("cannot pay for a single sample"))
        XCTAssertTrue(d.expectError(invalid) { _ = try d.submit("a red disk", ["strategy": .string("beam")]) }.contains("known strategies"))
        XCTAssertTrue(d.expectError(invalid) { _ = try d.submit("a red disk", ["n": .uint32(4)]) }.contains("strategy 'single' has no option 'n'"))
        XCTAssertTrue(d.expectError(invalid) { _ = try d.submit(String(repeating: "red ", count: 100)) }.contains("cannot use this prompt"))
        XCTAssertTrue(d.expectError("io.assay.Error.UnknownPlugin") { _ = try d.submit("a red disk", ["model": .string("sdxl")]) }
            .contains("loaded models: example-model"))
        XCTAssertTrue(d.expectError("io.assay.Error.UnknownPlugin") {
            _ = try d.submit("a red disk", ["verifiers": .strings(["example-model"])]) }.contains("is a model, not a verifier"))
        XCTAssertTrue(d.expectError("io.assay.Error.NotFound") { _ = try d.property("/io/assay/Assay1/jobs/999", "State") }
            .contains("no job at"))
        d.expectError("org.freedesktop.DBus.Error.UnknownMethod") { _ = try d.callManager("Frobnicate") }
        d.expectError("org.freedesktop.DBus.Error.UnknownProperty") { _ = try d.property(Daemon.manager, "Colour", interface: "io.assay.Manager1") }
        d.expectError("org.freedesktop.DBus.Error.PropertyReadOnly") {
            _ = try d.client.call(destination: Daemon.name, path: Daemon.manager, interface: "org.freedesktop.DBus.Properties",
                                  member: "Set", [.string("io.assay.Manager1"), .string("QueueLength"), .variant(.uint32(1))])
        }
        // Wrong argument types from a shell client.
        let wrong = d.bus.cli(["dbus-send", "--print-reply", "--dest=io.assay.Assay1", "/io/assay/Assay1",
                               "io.assay.Manager1.Submit", "int32:7"])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("io.assay.Error.InvalidArgument") && wrong.stderr.contains("takes (sa{sv})"), wrong.stderr)
        let nested = d.bus.cli(["busctl", "call", "io.assay.Assay1", "/io/assay/Assay1", "io.assay.Manager1", "Submit",
                                "sa{sv}", "a red disk", "1", "seed", "s", "nope"])
        XCTAssertTrue(nested.stderr.contains("'seed' must be an unsigned 64-bit integer"), nested.stderr)
        d.assertAlive()
        // After all that, real work still runs.
        XCTAssertEqual(try d.waitFinished(try d.submit("a green disk", ["steps": .uint32(4)])), "done")
    }

    func testPythonClientSubmitsWaitsAndReadsTheResultDescriptor() throws {
        let d = try Daemon()
        let script = """
        import dbus, os, sys, time
        bus = dbus.bus.BusConnection(sys.argv[1])
        manager = dbus.Interface(bus.get_object("io.assay.Assay1", "/io/assay/Assay1"), "io.assay.Manager1")
        path = manager.Submit("a yellow disk bottom right", {"strategy": "best-of-n", "n": dbus.UInt32(4), "seed": dbus.UInt64(5)})
        job = bus.get_object("io.assay.Assay1", path)
        props = dbus.Interface(job, "org.freedesktop.DBus.Properties")
        while props.Get("io.assay.Job1", "State") not in ("done", "failed", "cancelled"):
            time.sleep(0.02)
        fd = dbus.Interface(job, "io.assay.Job1").OpenResult().take()
        data = os.read(fd, 1 << 20)
        print(props.Get("io.assay.Job1", "State"), props.Get("io.assay.Job1", "NfeUsed"), data[:8] == b"\\x89PNG\\r\\n\\x1a\\n")
        """
        let r = Shell.run(["/usr/bin/python3", "-c", script, d.bus.address])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "done 80 True")
    }

    func testManifestReplayReproducesTheResultBitForBit() throws {
        let d = try Daemon()
        let first = try d.submit("a green disk top right", ["strategy": .string("best-of-n"), "n": .uint32(5),
                                                              "guidance": .double(2.5), "save_candidates": .bool(true)])
        XCTAssertEqual(try d.waitFinished(first), "done")
        let data = try Data(contentsOf: URL(fileURLWithPath: try d.string(first, "ManifestPath")))
        let manifest = try Manifest.decode(Array(data))
        XCTAssertEqual(manifest.plugins.map(\.id).sorted(), ["example-colour", "example-model"])
        XCTAssertTrue(manifest.plugins.allSatisfy { $0.sha256.count == 64 })
        // Replay: the recorded plan as Submit options.
        let options = JobOptionsWire.encode(manifest.plan.asOptionValues)
        let again = try d.submit(manifest.prompt, options)
        XCTAssertEqual(try d.waitFinished(again), "done")
        let replayed = try Manifest.decode(Array(try Data(contentsOf: URL(fileURLWithPath: try d.string(again, "ManifestPath")))))
        XCTAssertEqual(replayed.plan, manifest.plan)
        XCTAssertEqual(replayed.candidates.map(\.latentSHA256), manifest.candidates.map(\.latentSHA256))
        XCTAssertEqual(replayed.candidates.map(\.seed), manifest.candidates.map(\.seed))
        XCTAssertEqual(replayed.resultSHA256, manifest.resultSHA256)
        let a = try Data(contentsOf: URL(fileURLWithPath: try d.string(first, "ResultPath")))
        let b = try Data(contentsOf: URL(fileURLWithPath: try d.string(again, "ResultPath")))
        XCTAssertEqual(a, b)
        // And a different seed gives a different set of candidates (the test can fail).
        var other = options
        other["seed"] = .uint64(manifest.plan.seed &+ 1)
        let third = try d.submit(manifest.prompt, other)
        try d.waitFinished(third)
        XCTAssertNotEqual(try d.manifest(third)["candidates"].map { "\($0)" }, try d.manifest(first)["candidates"].map { "\($0)" })
        let files = try FileManager.default.contentsOfDirectory(atPath: try d.string(first, "CandidatesPath"))
        XCTAssertEqual(files.count, 5)

        // The manifest and each candidate are readable through descriptors too.
        func read(_ member: String, _ args: [DBusValue] = []) throws -> Data {
            let m = DBusMessage.methodCall(destination: Daemon.name, path: first, interface: "io.assay.Job1", member: member)
            m.append(contentsOf: args)
            guard case .unixFD(let fd)? = try d.client.call(m).arguments().first else { throw TestFailure("no fd") }
            return FileHandle(fileDescriptor: fd, closeOnDealloc: true).readDataToEndOfFile()
        }
        XCTAssertEqual(try Manifest.decode(Array(try read("OpenManifest"))).plan, manifest.plan)
        let candidate = try PNGEncoder.decode(Array(try read("OpenCandidate", [.uint32(4)])))
        XCTAssertEqual(candidate.width, 16)
        d.expectError("io.assay.Error.NotFound") { _ = try read("OpenCandidate", [.uint32(5)]) }
        d.expectError("io.assay.Error.NotReady") {
            let job = try d.submit("a red disk", ["steps": .uint32(2)])
            try d.waitFinished(job)
            let m = DBusMessage.methodCall(destination: Daemon.name, path: job, interface: "io.assay.Job1", member: "OpenCandidate")
            m.append(.uint32(0))
            _ = try d.client.call(m)
        }
    }
}
