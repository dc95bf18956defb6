import AssayCore
import Foundation
import XCTest

/// `assayctl report`: the real binary writes the page from fixture manifests
/// (Tests/Fixtures/report/), and a real headless Chromium renders it.
final class ReportTests: XCTestCase {
    static let fixtures = TestEnvironment.repoRoot + "/Tests/Fixtures/report"

    /// The images the tree fixture names, written at test time (no binaries in the repo):
    /// a disk of one colour on a light ground. `nodes/0006-never-written.png` is left out
    /// on purpose: a placeholder, not an error.
    static let treeImages: [(String, (UInt8, UInt8, UInt8))] = [
        ("nodes/0001.png", (0, 110, 255)), ("nodes/0002.png", (120, 0, 200)), ("nodes/0005.png", (0, 190, 80)),
        ("nodes/0009.png", (200, 200, 0)), ("nodes/0011.png", (250, 10, 10)), ("nodes/0021.png", (0, 200, 200)),
        ("nodes/0023.png", (90, 90, 90)), ("nodes/0026.png", (255, 128, 0)), ("result.png", (255, 0, 0)),
    ]

    static func disk(_ c: (UInt8, UInt8, UInt8)) -> [UInt8] {
        PNGWriter.rgb(width: 16, height: 16) { x, y in
            (x - 8) * (x - 8) + (y - 8) * (y - 8) < 30 ? c : (240, 240, 240)
        }
    }

    /// The tree fixture in a fresh directory with its images; returns the manifest's path.
    func treeJob() throws -> String {
        let dir = TestEnvironment.temporaryDirectory("report")
        try FileManager.default.createDirectory(atPath: dir + "/nodes", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.fixtures + "/tree/manifest.json", toPath: dir + "/manifest.json")
        for (name, colour) in Self.treeImages {
            try Data(Self.disk(colour)).write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        return dir + "/manifest.json"
    }

    @discardableResult
    func report(_ args: [String]) -> Shell.Result {
        Shell.run([TestEnvironment.assayctlPath, "report"] + args)
    }

    func read(_ path: String) throws -> String {
        String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
    }

    func manifestJSON(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// The class attribute of every node box, by its data-node value.
    func nodeClasses(_ html: String) -> [String: String] {
        var out: [String: String] = [:]
        let re = try! NSRegularExpression(pattern: #"<div class="(node [^"]*)" id="[^"]*" data-node="([^"]*)""#)
        for m in re.matches(in: html, range: NSRange(html.startIndex..., in: html)) {
            let classes = String(html[Range(m.range(at: 1), in: html)!]), key = String(html[Range(m.range(at: 2), in: html)!])
            out[key] = classes
        }
        return out
    }

    /// The HTML of one node box (up to the next node box).
    func box(_ html: String, _ key: String) -> String {
        guard let start = html.range(of: "id=\"node-\(key)\"") else { return "" }
        let rest = html[start.upperBound...]
        let end = rest.range(of: "<div class=\"node ")?.lowerBound ?? rest.endIndex
        return String(rest[..<end])
    }

    /// Every src and href of the page, and anything else that could load a resource.
    func assertSelfContained(_ html: String, file: StaticString = #filePath, line: UInt = #line) {
        let lower = html.lowercased()
        XCTAssertFalse(lower.contains("http:"), "an http reference", file: file, line: line)
        XCTAssertFalse(lower.contains("https:"), "an https reference", file: file, line: line)
        XCTAssertFalse(lower.contains("<script"), "a script element", file: file, line: line)
        XCTAssertFalse(lower.contains("<link"), "a link element", file: file, line: line)
        XCTAssertFalse(lower.contains("@import"), "a CSS import", file: file, line: line)
        XCTAssertFalse(lower.contains("url("), "a CSS url()", file: file, line: line)
        XCTAssertFalse(lower.contains("@font-face"), "a web font", file: file, line: line)
        let attr = try! NSRegularExpression(pattern: #"\s(src|href)="([^"]*)""#)
        for m in attr.matches(in: html, range: NSRange(html.startIndex..., in: html)) {
            let name = String(html[Range(m.range(at: 1), in: html)!]), value = String(html[Range(m.range(at: 2), in: html)!])
            if name == "src" {
                XCTAssertTrue(value.hasPrefix("data:image/"), "src=\(value.prefix(60))", file: file, line: line)
            } else {
                XCTAssertTrue(value.hasPrefix("#"), "href=\(value)", file: file, line: line)
            }
        }
    }

    // MARK: the page

    func testPageShowsEveryNodeInlineImagesAndTheChosenPath() throws {
        let manifest = try treeJob()
        let out = TestEnvironment.temporaryDirectory("report-out") + "/page.html"
        let r = report([manifest, "-o", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), out, "prints the path it wrote")
        let html = try read(out)
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))

        let m = try manifestJSON(manifest)
        let nodes = try XCTUnwrap(m["nodes"] as? [[String: Any]])
        let ids = nodes.map { String($0["id"] as! Int) }
        let classes = nodeClasses(html)
        XCTAssertEqual(Set(classes.keys), Set(ids), "one box per node, no others")
        for id in ids {
            XCTAssertTrue(html.contains("id=\"node-\(id)\""), "node \(id)")
            XCTAssertTrue(html.contains(">#\(id)<"), "node \(id)'s label")
        }
        // The chosen path, and only it, is marked; the result node too.
        let chosen = Set((m["chosen_path"] as! [Int]).map(String.init))
        for (id, c) in classes {
            XCTAssertEqual(c.split(separator: " ").contains("chosen"), chosen.contains(id), "node \(id): \(c)")
        }
        XCTAssertTrue(classes["11"]!.split(separator: " ").contains("result"), classes["11"]!)
        XCTAssertTrue(html.contains("<a href=\"#node-0\">#0</a> → <a href=\"#node-3\">#3</a>"), "the chosen path in the header")

        // Every image there is, inline, as the file's own bytes.
        for (name, colour) in Self.treeImages {
            let uri = "data:image/png;base64," + Data(Self.disk(colour)).base64EncodedString()
            XCTAssertTrue(html.contains("src=\"\(uri)\""), "\(name) inline")
        }
        XCTAssertTrue(box(html, "1").contains("src=\"data:image/png;base64,"), "node 1 shows its image")
        XCTAssertTrue(box(html, "6").contains("image missing"), "node 6's image file does not exist: a placeholder")
        XCTAssertTrue(box(html, "6").contains("nodes/0006-never-written.png"))
        XCTAssertTrue(box(html, "0").contains("no image"), "a root noise has no image: a placeholder")

        // Text from the manifest is escaped, in the title, the prompt and the conditions.
        XCTAssertFalse(html.contains("<script>alert"))
        XCTAssertFalse(html.contains("<b>blue</b>"))
        XCTAssertTrue(html.contains("a red circle &lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &#39;friends&#39;"))
        XCTAssertTrue(html.contains("a &lt;b&gt;blue&lt;/b&gt; square"))
        assertSelfContained(html)

        // Header facts; per-node facts; NFEs summed over each branch.
        for text in ["zero-order", "<code>iterations=2</code>", "<code>n=2</code>", "stop reason: <b>budget</b>",
                     "<b>44</b> used of 48 budget", "18446744073709551557", "shapes-checker", "base: <b>shapes</b>",
                     "draft: <b>shapes-turbo</b>", "mystery-op"] {
            XCTAssertTrue(html.contains(text), "missing \(text)")
        }
        XCTAssertTrue(box(html, "0").contains("Σ 34"), box(html, "0"))
        XCTAssertTrue(box(html, "21").contains("Σ 10"), box(html, "21"))
        XCTAssertTrue(box(html, "8").contains("Σ 9"), box(html, "8"))
        XCTAssertTrue(box(html, "5").contains("NFE 8"))
        XCTAssertTrue(box(html, "5").contains(">0.9<"), "node 5's shapes-checker score")
        XCTAssertTrue(box(html, "11").contains("t 0.25 → 0"), box(html, "11"))
        XCTAssertTrue(box(html, "11").contains("pool final"))
        XCTAssertTrue(box(html, "11").contains("base · shapes"))
        XCTAssertTrue(box(html, "1").contains("8 steps"))
        XCTAssertTrue(box(html, "3").contains("strength 0.97"))
        XCTAssertTrue(box(html, "21").contains("draft · shapes-turbo"))
    }

    func testDefaultOutputIsJobIdReportInTheCurrentDirectory() throws {
        let manifest = try treeJob()
        let cwd = TestEnvironment.temporaryDirectory("report-cwd")
        let r = Shell.run(["sh", "-c", "cd \"$1\" && exec \"$2\" report \"$3\"", "sh", cwd, TestEnvironment.assayctlPath, manifest])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "job-7-report.html")
        XCTAssertTrue(FileManager.default.fileExists(atPath: cwd + "/job-7-report.html"))
        // A job directory works as well as its manifest.
        let dir = String(manifest.dropLast("/manifest.json".count))
        XCTAssertEqual(report([dir, "-o", cwd + "/dir.html"]).status, 0)
        XCTAssertEqual(try read(cwd + "/dir.html").count, try read(cwd + "/job-7-report.html").count)
    }

    func testNotJSONExitsSixWithAClearMessage() throws {
        let dir = TestEnvironment.temporaryDirectory("report-bad")
        try Data("this is {not JSON".utf8).write(to: URL(fileURLWithPath: dir + "/manifest.json"))
        let r = report([dir + "/manifest.json", "-o", dir + "/out.html"])
        XCTAssertEqual(r.status, 6, r.stderr)
        XCTAssertTrue(r.stderr.contains("assayctl: \(dir)/manifest.json is not a job manifest: it is not valid JSON"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out.html"), "nothing written")

        try Data("[1, 2, 3]".utf8).write(to: URL(fileURLWithPath: dir + "/array.json"))
        let array = report([dir + "/array.json", "-o", dir + "/out.html"])
        XCTAssertEqual(array.status, 6, array.stderr)
        XCTAssertTrue(array.stderr.contains("its JSON is not an object"), array.stderr)

        let missing = report([dir + "/no-such/manifest.json"])
        XCTAssertEqual(missing.status, 6, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("cannot open"), missing.stderr)

        XCTAssertEqual(report(["not-a-job"]).status, 2, "neither a job nor a file: a usage error")
        XCTAssertEqual(report([]).status, 2)
    }

    func testManifestBeforeVersionTwoShowsItsCandidates() throws {
        let out = TestEnvironment.temporaryDirectory("report-v1") + "/v1.html"
        let r = report([Self.fixtures + "/v1/manifest.json", "-o", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let html = try read(out)
        let classes = nodeClasses(html)
        XCTAssertEqual(Set(classes.keys), ["c0", "c1", "c2"], "the candidates are the roots")
        XCTAssertTrue(classes["c1"]!.contains("chosen"), "best_index 1 is marked")
        XCTAssertFalse(classes["c0"]!.contains("chosen"))
        XCTAssertFalse(classes["c2"]!.contains("chosen"))
        XCTAssertTrue(box(html, "c1").contains(">best<"))
        XCTAssertTrue(box(html, "c2").contains(">nan<"), "a nan score is shown as nan")
        XCTAssertTrue(html.contains("before version 2"))
        XCTAssertTrue(html.contains("a blue square &lt;i&gt;top&lt;/i&gt; right"))
        XCTAssertTrue(html.contains("<code>n=3</code>"))
        XCTAssertTrue(html.contains("image missing"), "no candidate image exists next to the fixture")
        assertSelfContained(html)
    }

    func testOddManifestRendersWhatItCan() throws {
        let out = TestEnvironment.temporaryDirectory("report-odd") + "/odd.html"
        let r = report([Self.fixtures + "/odd/manifest.json", "-o", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let html = try read(out)
        let classes = nodeClasses(html)
        for id in ["a", "b", "3", "4", "5", "6", "7", "8"] { XCTAssertNotNil(classes[id], "node \(id)") }
        XCTAssertTrue(classes["b"]!.contains("chosen") && classes["b"]!.contains("result"))
        XCTAssertTrue(classes["a"]!.contains("chosen"))
        for note in ["cycles of parents, cut at", "parents not in the manifest", "used more than once",
                     "chosen_path names nodes not in the manifest", "their own parent", "are not JSON objects"] {
            XCTAssertTrue(html.contains(note), note)
        }
        XCTAssertTrue(html.contains("Assay job odd&quot;one&lt;"), "the job id is escaped too")
        XCTAssertTrue(box(html, "b").contains("image missing"), "/dev/null is no image")
        assertSelfContained(html)
    }

    /// ~200 nodes: a zero-order spine (8 neighbours a pivot), a 30-step trajectory with an
    /// x0 prediction at each step, 20 best-of-n roots. Every node is on the page; the
    /// trajectory folds; alternatives sit beside their pivot; Chromium renders it.
    func testLargeTreeStaysCompact() throws {
        let dir = TestEnvironment.temporaryDirectory("report-large")
        var nodes: [[String: Any]] = []
        func add(_ parent: Int?, _ op: String, nfe: Int = 0, score: Double? = nil) -> Int {
            var n: [String: Any] = ["id": nodes.count, "op": op, "role": "base", "model": "shapes", "nfe": nfe]
            if let parent { n["parent"] = parent }
            if let score { n["scores"] = ["shapes-checker": score]; n["pool"] = "final" }
            nodes.append(n)
            return nodes.count - 1
        }
        var pivot = add(nil, "noise")
        _ = add(pivot, "integrate", nfe: 40, score: 0.3)
        for i in 0..<6 {
            var next = pivot
            for k in 0..<8 {
                let nb = add(pivot, "neighbour")
                _ = add(nb, "integrate", nfe: 40, score: Double(k) / 8)
                if k == i % 8 { next = nb }
            }
            pivot = next
        }
        var step = add(nil, "noise")
        var path = [step]
        for _ in 0..<30 {
            step = add(step, "sde", nfe: 2)
            path.append(step)
            _ = add(step, "x0", nfe: 1, score: 0.5)
        }
        let result = add(step, "integrate", nfe: 2, score: 0.99)
        path.append(result)
        for _ in 0..<20 { _ = add(add(nil, "noise"), "integrate", nfe: 40, score: 0.1) }
        let manifest: [String: Any] = [
            "manifest_version": 2, "job_id": 12, "prompt": "a large tree", "state": "done", "stop_reason": "completed",
            "plan": ["strategy": "mixed", "budget_nfe": 4000], "nodes": nodes, "chosen_path": path, "result_node": result,
        ]
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: dir + "/manifest.json"))
        let started = Date()
        let r = report([dir + "/manifest.json", "-o", dir + "/large.html"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        let html = try read(dir + "/large.html")
        XCTAssertEqual(nodeClasses(html).count, nodes.count)
        XCTAssertEqual(nodeClasses(html).values.filter { $0.split(separator: " ").contains("chosen") }.count, path.count)
        XCTAssertTrue(html.contains("<details class=\"fold on-path\">"), "the long trajectory folds")
        XCTAssertTrue(html.contains("<div class=\"step with-side\">"), "alternatives beside their pivot")
        assertSelfContained(html)

        let shot = try chromium(["--screenshot=\(dir)/large.png", "--window-size=1400,1000", "file://\(dir)/large.html"])
        XCTAssertEqual(shot.status, 0, shot.stderr)
        XCTAssertGreaterThan((try? Data(contentsOf: URL(fileURLWithPath: dir + "/large.png")).count) ?? 0, 20_000)
    }

    // MARK: a real browser

    /// Debian's chromium, headless, with a fresh profile; a test FAILS without it.
    func chromium(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Shell.Result {
        let which = Shell.run(["sh", "-c", "command -v chromium"])
        guard which.status == 0 else {
            XCTFail("chromium is not installed: run `make deps` (it installs Debian's chromium for these tests)", file: file, line: line)
            throw TestFailure("no chromium")
        }
        let profile = TestEnvironment.temporaryDirectory("chromium-profile")
        defer { try? FileManager.default.removeItem(atPath: profile) }
        return Shell.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                          "--user-data-dir=\(profile)"] + args, timeout: 60)
    }

    func testChromiumRendersTheTree() throws {
        let manifest = try treeJob()
        let dir = TestEnvironment.temporaryDirectory("report-chromium")
        let page = dir + "/page.html", png = dir + "/shot.png"
        XCTAssertEqual(report([manifest, "-o", page]).status, 0)

        var started = Date()
        let shot = try chromium(["--screenshot=\(png)", "--window-size=1400,1000", "file://\(page)"])
        let screenshotSeconds = Date().timeIntervalSince(started)
        XCTAssertEqual(shot.status, 0, shot.stderr)
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: png)))
        XCTAssertGreaterThan(bytes.count, 20_000, "a screenshot of a whole page, not a blank one")
        let image = try PNGEncoder.decode(bytes)
        XCTAssertEqual(image.width, 1400)
        XCTAssertEqual(image.height, 1000)
        var colours = Set<UInt32>()
        var amber = 0, red = 0, blue = 0
        for i in stride(from: 0, to: image.pixels.count, by: 3) {
            let r = Int(image.pixels[i]), g = Int(image.pixels[i + 1]), b = Int(image.pixels[i + 2])
            colours.insert(UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b))
            if abs(r - 0xE0) < 12 && abs(g - 0xA0) < 12 && b < 20 { amber += 1 }  // the chosen path's frame
            if r > 240 && g < 20 && b < 20 { red += 1 }                          // result.png, inline
            if r < 15 && abs(g - 110) < 12 && b > 240 { blue += 1 }              // node 1's image, inline
        }
        XCTAssertGreaterThan(colours.count, 50, "not one colour")
        XCTAssertGreaterThan(amber, 500, "the chosen path is framed in amber")
        XCTAssertGreaterThan(red, 5_000, "the result image (a red disk, 192 px) is drawn from its data: URI")
        XCTAssertGreaterThan(blue, 500, "node 1's image (a blue disk) is drawn from its data: URI")

        started = Date()
        let dom = try chromium(["--dump-dom", "file://\(page)"])
        let domSeconds = Date().timeIntervalSince(started)
        XCTAssertEqual(dom.status, 0, dom.stderr)
        let classes = nodeClasses(dom.stdout)
        let m = try manifestJSON(manifest)
        let ids = (m["nodes"] as! [[String: Any]]).map { String($0["id"] as! Int) }
        XCTAssertEqual(Set(classes.keys), Set(ids), "the rendered DOM holds every node")
        XCTAssertEqual(Set(classes.filter { $0.value.contains("chosen") }.keys),
                       Set((m["chosen_path"] as! [Int]).map(String.init)))
        XCTAssertTrue(dom.stdout.contains("&lt;script&gt;alert"), "the prompt stays text")
        XCTAssertFalse(dom.stdout.contains("<script"), "no script element in the DOM")
        print("chromium: screenshot \(String(format: "%.1f", screenshotSeconds)) s, dump-dom \(String(format: "%.1f", domSeconds)) s")
    }

    // MARK: through the daemon

    func testReportByJobNumberThroughTheDaemon() throws {
        let daemon = try Daemon()
        let gen = Shell.run([TestEnvironment.assayctlPath, "--address", daemon.bus.address, "generate", "a red disk <top>",
                             "--strategy", "best-of-n", "-n", "3", "--seed", "5", "--steps", "4", "--save-candidates",
                             "--json", "-q"])
        XCTAssertEqual(gen.status, 0, gen.stderr + daemon.log)
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(gen.stdout.utf8)) as? [String: Any])
        let job = try XCTUnwrap(summary["job"] as? String)
        let number = String(job.split(separator: "/").last!)
        let out = TestEnvironment.temporaryDirectory("report-daemon") + "/job.html"
        let r = Shell.run([TestEnvironment.assayctlPath, "--address", daemon.bus.address, "report", number, "-o", out])
        XCTAssertEqual(r.status, 0, r.stderr + daemon.log)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), out)
        let html = try read(out)
        XCTAssertTrue(html.contains("a red disk &lt;top&gt;"))
        XCTAssertTrue(html.contains("src=\"data:image/png;base64,"), "the result image, inline")
        assertSelfContained(html)

        // Whatever version the daemon writes: every node (version 2) or every candidate.
        let manifestPath = try XCTUnwrap(summary["manifest_path"] as? String)
        let m = try manifestJSON(manifestPath)
        let classes = nodeClasses(html)
        if let nodes = m["nodes"] as? [[String: Any]], ((m["manifest_version"] as? Int) ?? 1) >= 2, !nodes.isEmpty {
            XCTAssertEqual(Set(classes.keys), Set(nodes.compactMap { ($0["id"] as? Int).map(String.init) }))
            if let path = m["chosen_path"] as? [Int] {
                XCTAssertEqual(Set(classes.filter { $0.value.contains("chosen") }.keys), Set(path.map(String.init)))
            }
        } else {
            XCTAssertEqual(classes.count, 3, "the three candidates")
        }

        // The object path works too; a job that does not exist is the daemon's NotFound.
        XCTAssertEqual(Shell.run([TestEnvironment.assayctlPath, "--address", daemon.bus.address, "report", job,
                                  "-o", out]).status, 0)
        let missing = Shell.run([TestEnvironment.assayctlPath, "--address", daemon.bus.address, "report", "999"])
        XCTAssertEqual(missing.status, 3, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("io.assay.Error.NotFound"), missing.stderr)
    }
}
