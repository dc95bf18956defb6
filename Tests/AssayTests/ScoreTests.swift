import AssayCore
import AssayDBus
import AssayPluginHost
import Foundation
import XCTest

/// `Score`: the daemon's verifiers on any image, with real clients (in-process libdbus,
/// dbus-python, assayctl) against a real daemon on a private bus.
final class ScoreTests: XCTestCase {
    // MARK: helpers

    func requireShapes() throws {
        _ = TestEnvironment.pluginsBuilt
        guard FileManager.default.fileExists(atPath: TestEnvironment.buildPluginsDirectory + "/shapes-checker.so") else {
            throw XCTSkip("the shapes plugins are not built")
        }
    }

    /// A daemon on every built plugin (shapes model and verifiers, examples).
    func shapesDaemon(_ arguments: [String] = []) throws -> Daemon {
        try requireShapes()
        return try Daemon(pluginDirectories: [TestEnvironment.buildPluginsDirectory],
                          arguments: ["--default-models", "shapes", "--default-verifiers", "shapes-checker", "--no-watch"] + arguments)
    }

    /// A read-only descriptor of a temporary file holding `bytes` (the caller closes it).
    func fileFD(_ bytes: [UInt8]) throws -> Int32 {
        let path = TestEnvironment.temporaryDirectory("score") + "/image.png"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TestFailure("open \(path) failed") }
        unlink(path)
        return fd
    }

    func score(_ conn: DBusConnection, _ prompt: String, _ fds: [Int32], verifiers: [String] = [],
               options: [String: DBusValue] = [:]) throws -> [[String: DBusValue]] {
        try ScoreTests.scoreOn(conn, prompt, fds, verifiers: verifiers, options: options)
    }

    /// Calls Score and returns one dictionary per image; closes `fds` afterwards.
    static func scoreOn(_ conn: DBusConnection, _ prompt: String, _ fds: [Int32], verifiers: [String] = [],
                        options: [String: DBusValue] = [:]) throws -> [[String: DBusValue]] {
        defer { fds.forEach { close($0) } }
        let r = try conn.call(destination: Daemon.name, path: Daemon.manager, interface: "io.assay.Manager1", member: "Score",
                              [.string(prompt), .array(elementSignature: "h", fds.map { .unixFD($0) }), .strings(verifiers),
                               .vardict(options)])
        return r.first?.arrayValue?.compactMap(\.vardictValue) ?? []
    }

    func score(_ d: Daemon, _ prompt: String, _ images: [[UInt8]], verifiers: [String] = []) throws -> [[String: DBusValue]] {
        try score(d.client, prompt, images.map(fileFD), verifiers: verifiers)
    }

    func scores(_ row: [String: DBusValue]) -> [String: Double] {
        guard case .dictionary(_, _, let e)? = row["scores"] else { return [:] }
        return Dictionary(uniqueKeysWithValues: e.map { ($0.0.stringValue!, $0.1.doubleValue!) })
    }

    func details(_ row: [String: DBusValue]) -> [String: [String: Any]] {
        guard case .dictionary(_, _, let e)? = row["details"] else { return [:] }
        var out: [String: [String: Any]] = [:]
        for (k, v) in e {
            out[k.stringValue!] = (try? JSONSerialization.jsonObject(with: Data(v.stringValue!.utf8))) as? [String: Any]
        }
        return out
    }

    func openFDs(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// The daemon's open descriptors once the count holds still (a reply can reach the
    /// client a moment before the daemon drops the request message holding its copies).
    func stableFDs(_ pid: Int32) -> Int {
        var last = openFDs(pid)
        for _ in 0..<50 {
            usleep(50_000)
            let n = openFDs(pid)
            if n == last { return n }
            last = n
        }
        return last
    }

    /// Waits (briefly) until the daemon has `expected` descriptors open; returns the count.
    func settledFDs(_ pid: Int32, expected: Int) -> Int {
        var n = openFDs(pid)
        for _ in 0..<100 where n != expected {
            usleep(20_000)
            n = openFDs(pid)
        }
        return n
    }

    /// A red square on the shapes world's black background, at (x0, y0), side `s`.
    static func square(_ colour: (UInt8, UInt8, UInt8), x0: Int = 6, y0: Int = 10, s: Int = 10) -> (Int, Int) -> (UInt8, UInt8, UInt8) {
        { x, y in (x0..<(x0 + s)).contains(x) && (y0..<(y0 + s)).contains(y) ? colour : (0, 0, 0) }
    }

    // MARK: tests

    /// The result of a best-of-n job, read through OpenResult's descriptor and handed
    /// straight back to Score, gets the scores and verdicts the job's manifest recorded.
    func testScoresOfAJobResultEqualWhatItsManifestRecorded() throws {
        let d = try shapesDaemon()
        let verifiers = ["shapes-checker", "shapes-quality"]
        let job = try d.submit("a red circle left of a blue square", [
            "strategy": .string("best-of-n"), "n": .uint32(4), "steps": .uint32(8), "seed": .uint64(5),
            "verifiers": .strings(verifiers),
        ])
        XCTAssertEqual(try d.waitFinished(job, timeout: 300), "done")
        let m = try d.manifest(job)
        let bestIndex = try XCTUnwrap(m["best_index"] as? Int)
        let best = try XCTUnwrap((m["candidates"] as! [[String: Any]]).first { $0["index"] as? Int == bestIndex })
        let recorded = best["scores"] as! [String: Double]
        let recordedDetails = best["details"] as! [String: String]

        let r = try d.client.call(destination: Daemon.name, path: job, interface: "io.assay.Job1", member: "OpenResult")
        guard case .unixFD(let fd)? = r.first else { return XCTFail("OpenResult returned \(r)") }
        let rows = try score(d.client, "a red circle left of a blue square", [fd], verifiers: verifiers)
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual(rows[0]["width"], .uint32(32))
        XCTAssertEqual(rows[0]["height"], .uint32(32))
        // Foundation's JSON parser on Linux can be an ulp off; the manifest's text is exact.
        let got0 = scores(rows[0])
        XCTAssertEqual(Set(got0.keys), Set(recorded.keys))
        let manifestText = try String(contentsOfFile: try d.string(job, "ManifestPath"), encoding: .utf8)
        for (id, value) in got0 {
            XCTAssertEqual(value, recorded[id]!, accuracy: 1e-12, "Score disagrees with the job on its own result (\(id))")
            XCTAssertTrue(manifestText.contains("\"\(id)\" : \(value)"), "the manifest does not record \(id) = \(value)")
        }
        let got = details(rows[0])
        for id in verifiers {
            let want = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(recordedDetails[id]!.utf8)) as? [String: Any])
            XCTAssertEqual(got[id]?["score"] as? Double, want["score"] as? Double, id)
            XCTAssertEqual(got[id]?["pass"] as? Bool, want["pass"] as? Bool, id)
        }
        // Each image × verifier is one verifier call, counted as in a job.
        XCTAssertEqual(try d.property(Daemon.manager, "ScoreVerifierCalls", interface: "io.assay.Manager1"), .uint64(2))
    }

    /// A hand-made PNG of the shapes world, in every PNG layout libpng reads, scores the
    /// same; the checker passes the right picture and fails the wrong one; no verifier named
    /// means every loaded verifier that can judge the prompt.
    func testHandMadeShapesImagesScoreTheSameInEveryPNGLayout() throws {
        let d = try shapesDaemon()
        let red = Self.square((255, 0, 0))
        let rgb = PNGWriter.rgb(red)
        var rgba: [UInt8] = [], indices: [UInt8] = []
        for y in 0..<32 { for x in 0..<32 { let p = red(x, y); rgba += [p.0, p.1, p.2, 255]; indices.append(p.0 == 255 ? 1 : 0) } }
        let alpha = PNGWriter.png(width: 32, height: 32, colour: .rgba, samples: rgba)
        let palette = PNGWriter.png(width: 32, height: 32, colour: .palette([(0, 0, 0), (255, 0, 0)]), samples: indices)
        let blue = PNGWriter.rgb(Self.square((0, 0, 255)))

        let rows = try score(d, "a red square", [rgb, alpha, palette, blue], verifiers: ["shapes-checker", "shapes-quality"])
        XCTAssertEqual(rows.count, 4)
        XCTAssertEqual(rows.map { $0["index"] }, [.uint32(0), .uint32(1), .uint32(2), .uint32(3)])
        XCTAssertEqual(Set(scores(rows[0]).keys), ["shapes-checker", "shapes-quality"])
        XCTAssertEqual(scores(rows[1]), scores(rows[0]), "RGBA decodes to the same RGB")
        XCTAssertEqual(scores(rows[2]), scores(rows[0]), "a palette decodes to the same RGB")
        XCTAssertEqual(details(rows[0])["shapes-checker"]?["pass"] as? Bool, true, "\(details(rows[0]))")
        XCTAssertEqual(details(rows[3])["shapes-checker"]?["pass"] as? Bool, false, "\(details(rows[3]))")
        XCTAssertGreaterThan(scores(rows[0])["shapes-checker"]!, scores(rows[3])["shapes-checker"]!)
        XCTAssertEqual(try d.property(Daemon.manager, "ScoreVerifierCalls", interface: "io.assay.Manager1"), .uint64(8))

        // No verifier named: every loaded verifier that can judge the prompt.
        let loaded = Set(try d.plugins().filter { $0["kind"]?.stringValue == "verifier" && $0["state"]?.stringValue == "loaded" }
            .compactMap { $0["id"]?.stringValue })
        XCTAssertTrue(loaded.isSuperset(of: ["shapes-checker", "shapes-quality", "example-colour"]), "\(loaded)")
        let all = try score(d, "a red square", [rgb])
        XCTAssertEqual(Set(scores(all[0]).keys), loaded)
        XCTAssertEqual(scores(all[0])["shapes-checker"], scores(rows[0])["shapes-checker"])
        // A prompt outside the checker's grammar: the checker is passed over, the rest judge.
        let some = try score(d, "square red a", [rgb])
        XCTAssertFalse(scores(some[0]).keys.contains("shapes-checker"), "\(scores(some[0]))")
        XCTAssertTrue(scores(some[0]).keys.contains("shapes-quality"), "\(scores(some[0]))")
        d.assertAlive()
    }

    /// The decoder on its own: gray and palette expand to RGB, alpha is dropped, the
    /// encoder's files come back bit for bit, and broken or oversized files are refused
    /// with a reason (libpng's longjmp stays inside the C shim).
    func testPNGDecoderReadsEveryLayoutAndRefusesWhatItCannot() throws {
        let gray = PNGWriter.png(width: 3, height: 2, colour: .gray, samples: [0, 100, 255, 7, 8, 9])
        XCTAssertEqual(try PNGDecoder.decode(gray).pixels, [0, 0, 0, 100, 100, 100, 255, 255, 255, 7, 7, 7, 8, 8, 8, 9, 9, 9])
        let rgba = PNGWriter.png(width: 2, height: 1, colour: .rgba, samples: [1, 2, 3, 0, 4, 5, 6, 128])
        XCTAssertEqual(try PNGDecoder.decode(rgba).pixels, [1, 2, 3, 4, 5, 6])
        let palette = PNGWriter.png(width: 2, height: 1, colour: .palette([(9, 8, 7), (1, 2, 3)]), samples: [1, 0])
        XCTAssertEqual(try PNGDecoder.decode(palette).pixels, [1, 2, 3, 9, 8, 7])
        let image = RGBImage(width: 5, height: 4, pixels: (0..<60).map { UInt8($0 * 4) })
        XCTAssertEqual(try PNGDecoder.decode(try PNGEncoder.encode(image)), image)

        func refusal(_ bytes: [UInt8], limits: PNGDecoder.Limits = .init()) -> String {
            do { _ = try PNGDecoder.decode(bytes, limits: limits); return "decoded" } catch let e as AssayError {
                XCTAssertEqual(e.name, "io.assay.Error.InvalidImage")
                return e.message
            } catch { return "\(error)" }
        }
        let good = PNGWriter.rgb(Self.square((255, 0, 0)))
        XCTAssertTrue(refusal([]).contains("not a PNG"))
        XCTAssertTrue(refusal(Array("hello world, not a png".utf8)).contains("not a PNG"))
        for cut in [8, 20, 33, 60, good.count - 13, good.count - 1] {
            XCTAssertTrue(refusal(Array(good.prefix(cut))).contains("invalid PNG"), "cut at \(cut): \(refusal(Array(good.prefix(cut))))")
        }
        var badCRC = good
        badCRC[29] ^= 1 // IHDR's CRC
        XCTAssertTrue(refusal(badCRC).contains("invalid PNG"), refusal(badCRC))
        XCTAssertTrue(refusal(good, limits: .init(maxSide: 16, maxPixels: 1 << 20)).contains("invalid PNG"))
        XCTAssertTrue(refusal(good, limits: .init(maxSide: 64, maxPixels: 100)).contains("at most 100 pixels"))
    }

    /// `assayctl score` prints one row per image with pass/fail, and --json an array.
    func testAssayctlScorePrintsATableAndJSON() throws {
        let d = try shapesDaemon()
        let dir = TestEnvironment.temporaryDirectory("score-cli")
        try Data(PNGWriter.rgb(Self.square((255, 0, 0)))).write(to: URL(fileURLWithPath: dir + "/red.png"))
        try Data(PNGWriter.rgb(Self.square((0, 0, 255)))).write(to: URL(fileURLWithPath: dir + "/blue.png"))
        let ctl = TestEnvironment.assayctlPath
        let table = Shell.run([ctl, "score", "--address", d.bus.address, "--prompt", "a red square",
                               "--verifier", "shapes-checker", "--verifier", "shapes-quality", dir + "/red.png", dir + "/blue.png"])
        XCTAssertEqual(table.status, 0, table.stderr)
        let lines = table.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, table.stdout)
        XCTAssertTrue(lines[0].hasPrefix("FILE") && lines[0].contains("shapes-checker pass") && lines[0].contains("shapes-quality"), lines[0])
        XCTAssertTrue(lines[1].contains("red.png") && lines[1].contains(" pass") && lines[1].contains("32x32"), lines[1])
        XCTAssertTrue(lines[2].contains("blue.png") && lines[2].contains(" fail"), lines[2])

        let json = Shell.run([ctl, "score", "--address", d.bus.address, "--prompt", "a red square", "--json",
                              "--verifier", "shapes-checker", dir + "/red.png", dir + "/blue.png"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let array = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(array.count, 2)
        XCTAssertEqual(array[0]["file"] as? String, dir + "/red.png")
        XCTAssertEqual(array[0]["width"] as? Int, 32)
        XCTAssertEqual((array[0]["pass"] as? [String: Bool])?["shapes-checker"], true)
        XCTAssertEqual((array[1]["pass"] as? [String: Bool])?["shapes-checker"], false)
        XCTAssertNotNil((array[0]["scores"] as? [String: Double])?["shapes-checker"])
        XCTAssertNotNil((array[0]["details"] as? [String: Any])?["shapes-checker"] as? [String: Any])

        // The daemon's refusal is exit 3 with its error name; a missing file is exit 6.
        let bad = Shell.run([ctl, "score", "--address", d.bus.address, "--prompt", "square red a", "--verifier", "shapes-checker",
                             dir + "/red.png"])
        XCTAssertEqual(bad.status, 3, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("io.assay.Error.InvalidArgument") && bad.stderr.contains("cannot judge this prompt"), bad.stderr)
        let missing = Shell.run([ctl, "score", "--address", d.bus.address, "--prompt", "a red square", dir + "/nope.png"])
        XCTAssertEqual(missing.status, 6, missing.stderr)
    }

    /// Every kind of bad input gets its own clear io.assay.Error, the daemon keeps serving,
    /// and every descriptor it received is closed again.
    func testBadInputIsRefusedClearlyAndNoDescriptorLeaks() throws {
        let d = try shapesDaemon(["--score-read-timeout-ms", "300", "--score-max-images", "4"])
        let good = PNGWriter.rgb(Self.square((255, 0, 0)))
        _ = try score(d, "a red square", [good], verifiers: ["shapes-checker"]) // warm up
        let before = stableFDs(d.pid)
        XCTAssertGreaterThan(before, 0)

        func refused(_ name: String, _ needle: String, file: StaticString = #filePath, line: UInt = #line,
                     _ body: () throws -> Void) {
            let message = d.expectError(name, file: file, line: line, body)
            XCTAssertTrue(message.contains(needle), "'\(needle)' not in: \(message)", file: file, line: line)
        }
        refused("io.assay.Error.InvalidImage", "not a PNG") { _ = try self.score(d, "a red square", [Array("hello, world".utf8)]) }
        refused("io.assay.Error.InvalidImage", "image 1: ") { _ = try self.score(d, "a red square", [good, Array("GIF89a....".utf8)]) }
        refused("io.assay.Error.InvalidImage", "empty") { _ = try self.score(d, "a red square", [[]]) }
        refused("io.assay.Error.InvalidImage", "truncated") { _ = try self.score(d, "a red square", [Array(good.prefix(60))]) }
        var corrupt = good
        corrupt[40] ^= 0xFF // inside IDAT: the CRC no longer matches
        refused("io.assay.Error.InvalidImage", "invalid PNG") { _ = try self.score(d, "a red square", [corrupt]) }
        // A size the verifier cannot judge: its own message, naming it.
        let big = PNGWriter.rgb(width: 64, height: 64, Self.square((255, 0, 0)))
        refused("io.assay.Error.InvalidImage", "verifier 'shapes-clipscore'") {
            _ = try self.score(d, "a red square", [good, big], verifiers: ["shapes-clipscore"])
        }
        // The prompt: outside a named verifier's grammar (Submit's wording), empty, unknown verifier.
        refused("io.assay.Error.InvalidArgument", "verifier 'shapes-checker' cannot judge this prompt") {
            _ = try self.score(d, "square red a", [good], verifiers: ["shapes-checker"])
        }
        refused("io.assay.Error.InvalidArgument", "prompt is empty") { _ = try self.score(d, " ", [good]) }
        refused("io.assay.Error.UnknownPlugin", "no verifier plugin 'nope'") { _ = try self.score(d, "a red square", [good], verifiers: ["nope"]) }
        refused("io.assay.Error.UnknownPlugin", "not a verifier") { _ = try self.score(d, "a red square", [good], verifiers: ["shapes"]) }
        refused("io.assay.Error.InvalidArgument", "twice") {
            _ = try self.score(d, "a red square", [good], verifiers: ["shapes-checker", "shapes-checker"])
        }
        // Options: unknown keys are refused (an fd inside one is closed too).
        refused("io.assay.Error.InvalidArgument", "unknown option 'colour'") {
            _ = try self.score(d.client, "a red square", [try self.fileFD(good)], options: ["colour": .string("red")])
        }
        refused("io.assay.Error.InvalidArgument", "unknown option 'fd'") {
            _ = try self.score(d.client, "a red square", [try self.fileFD(good)], options: ["fd": .unixFD(try self.fileFD(good))])
        }
        // Counts: none, more than the cap.
        refused("io.assay.Error.InvalidArgument", "at least one image") { _ = try self.score(d, "a red square", []) }
        refused("io.assay.Error.InvalidArgument", "at most 4") { _ = try self.score(d, "a red square", Array(repeating: good, count: 5)) }
        // A pipe whose writer never writes nor closes: refused after the read timeout.
        var p: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&p), 0)
        let start = Date()
        refused("io.assay.Error.InvalidImage", "in time") { _ = try self.score(d.client, "a red square", [p[0]]) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        close(p[1])
        // A pipe that sends more than an image may hold is cut off (the writer is a thread).
        XCTAssertEqual(pipe(&p), 0)
        let writer = p[1]
        let feeder = Thread {
            var zeros = [UInt8](repeating: 0, count: 1 << 16)
            for _ in 0..<400 where write(writer, &zeros, zeros.count) > 0 {}
            close(writer)
        }
        signal(SIGPIPE, SIG_IGN)
        feeder.start()
        refused("io.assay.Error.InvalidImage", "at most 16777216") { _ = try self.score(d.client, "a red square", [p[0]]) }
        // Descriptors that cannot be read: write-only, a directory.
        let path = TestEnvironment.temporaryDirectory("score") + "/w.png"
        try Data(good).write(to: URL(fileURLWithPath: path))
        refused("io.assay.Error.InvalidImage", "cannot be read") { _ = try self.score(d.client, "a red square", [open(path, O_WRONLY)]) }
        refused("io.assay.Error.InvalidImage", "directory") { _ = try self.score(d.client, "a red square", [open("/tmp", O_RDONLY)]) }
        // The wrong signature.
        refused("io.assay.Error.InvalidArgument", "Score takes (sahasa{sv})") {
            _ = try d.callManager("Score", [.string("a red square"), .strings([])])
        }

        d.assertAlive()
        XCTAssertEqual(settledFDs(d.pid, expected: before), before, "descriptors leaked by refused Score calls")
        let rows = try score(d, "a red square", [good], verifiers: ["shapes-checker"])
        XCTAssertEqual(details(rows[0])["shapes-checker"]?["pass"] as? Bool, true)
    }

    /// Thousands of descriptors never reach the daemon (dbus-daemon passes at most 16 in a
    /// message by default and drops the sender); the daemon stays up and leaks nothing.
    func testThousandsOfDescriptorsLeaveTheDaemonUnharmed() throws {
        let d = try Daemon(arguments: ["--no-watch"])
        let good = PNGWriter.rgb(Self.square((255, 0, 0)))
        _ = try score(d, "a red square", [good])
        let before = stableFDs(d.pid)
        for count in [17, 3000] {
            let conn = try d.bus.connect()
            let fd = try fileFD(good)
            let fds = (0..<count).map { _ in dup(fd) }
            close(fd)
            XCTAssertThrowsError(try score(conn, "a red square", fds), "\(count) descriptors in one call")
        }
        d.assertAlive()
        XCTAssertEqual(settledFDs(d.pid, expected: before), before)
        // Up to the cap (16) works.
        let rows = try score(d, "a red square", Array(repeating: good, count: 16))
        XCTAssertEqual(rows.count, 16)
        XCTAssertEqual(Set(rows.map { scores($0)["example-colour"]! }).count, 1)
        XCTAssertEqual(settledFDs(d.pid, expected: before), before)
    }

    /// One client may have only so many Score calls in progress; others are still served.
    func testPerClientCapOnCallsInProgress() throws {
        let d = try Daemon(arguments: ["--no-watch", "--client-identity", "uid", "--score-max-in-flight-per-client", "1",
                                       "--score-read-timeout-ms", "2000"])
        let good = PNGWriter.rgb(Self.square((255, 0, 0)))
        var p: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&p), 0)
        let slowConn = try d.bus.connect()
        let outcome = Locked<String?>(nil)
        let reader = p[0]
        let slow = Thread {
            do { _ = try ScoreTests.scoreOn(slowConn, "a red square", [reader]); outcome.withLock { $0 = "succeeded" } }
            catch let e as DBusError { outcome.withLock { $0 = e.name } } catch { outcome.withLock { $0 = "\(error)" } }
        }
        slow.start()
        usleep(400_000) // the slow call is being read now
        let message = d.expectError("io.assay.Error.QueueFull") { _ = try self.score(d, "a red square", [good]) }
        XCTAssertTrue(message.contains("Score calls in progress"), message)
        // Job calls are not affected by the Score cap.
        XCTAssertNoThrow(try d.callManager("ListJobs"))
        let deadline = Date().addingTimeInterval(10)
        while outcome.current == nil && Date() < deadline { usleep(20_000) }
        XCTAssertEqual(outcome.current, "io.assay.Error.InvalidImage")
        close(p[1])
        // Once the slow call has its answer, the client may score again.
        XCTAssertEqual(try score(d, "a red square", [good]).count, 1)
    }

    /// dbus-python passes descriptors too: a file, and a pipe that is written and closed.
    func testPythonClientScoresFilesAndPipes() throws {
        let d = try Daemon(arguments: ["--no-watch"])
        let path = TestEnvironment.temporaryDirectory("score-py") + "/red.png"
        try Data(PNGWriter.rgb(Self.square((255, 0, 0)))).write(to: URL(fileURLWithPath: path))
        let script = """
        import dbus, json, os, sys
        bus = dbus.bus.BusConnection(sys.argv[1])
        m = dbus.Interface(bus.get_object("io.assay.Assay1", "/io/assay/Assay1"), "io.assay.Manager1")
        data = open(sys.argv[2], "rb").read()
        r, w = os.pipe(); os.write(w, data); os.close(w)
        f = os.open(sys.argv[2], os.O_RDONLY)
        rows = m.Score("a red square", [dbus.types.UnixFd(f), dbus.types.UnixFd(r)], dbus.Array([], signature="s"),
                       dbus.Dictionary({}, signature="sv"))
        print(json.dumps([{k: float(v) for k, v in row["scores"].items()} for row in rows]))
        try:
            m.Score("a red square", [dbus.types.UnixFd(sys.stdin.fileno())], dbus.Array([], signature="s"), dbus.Dictionary({}, signature="sv"))
        except dbus.DBusException as e:
            print(e.get_dbus_name())
        """
        let r = Shell.run(["/usr/bin/python3", "-c", script, d.bus.address, path], stdin: "not a png")
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, r.stdout + r.stderr)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [[String: Double]])
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0], rows[1], "a file and a pipe of the same PNG score the same")
        XCTAssertNotNil(rows[0]["example-colour"])
        XCTAssertEqual(lines[1], "io.assay.Error.InvalidImage")
        d.assertAlive()
    }

    /// A descriptor sent where none is expected (an `h` in Submit's options) is closed
    /// by the daemon, not leaked (libdbus duplicates each one a handler reads).
    func testDescriptorsInOtherCallsAreClosed() throws {
        let d = try Daemon(arguments: ["--no-watch"])
        let fd = try fileFD(Array("x".utf8))
        defer { close(fd) }
        _ = d.expectError("io.assay.Error.InvalidArgument") { _ = try d.submit("a red circle", ["x": .unixFD(fd)]) }
        let before = stableFDs(d.pid)
        for _ in 0..<20 {
            _ = d.expectError("io.assay.Error.InvalidArgument") { _ = try d.submit("a red circle", ["x": .unixFD(fd)]) }
        }
        XCTAssertEqual(settledFDs(d.pid, expected: before), before)
        d.assertAlive()
    }
}
