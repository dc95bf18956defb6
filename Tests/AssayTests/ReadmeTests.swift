import Foundation
import XCTest

/// The README's copy-paste examples run against a real daemon, so they cannot rot.
final class ReadmeTests: XCTestCase {
    /// Code blocks that follow a `<!-- readme-test:LANG -->` marker.
    func examples() throws -> [(language: String, code: String)] {
        let text = try String(contentsOfFile: TestEnvironment.repoRoot + "/README.md", encoding: .utf8)
        var out: [(String, String)] = []
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)[...]
        while let line = lines.popFirst() {
            guard line.hasPrefix("<!-- readme-test:"), let lang = line.split(separator: ":").last?.split(separator: " ").first else { continue }
            _ = lines.popFirst() // the opening fence
            var code: [Substring] = []
            while let l = lines.popFirst(), !l.hasPrefix("```") { code.append(l) }
            out.append((String(lang), code.joined(separator: "\n")))
        }
        return out
    }

    func testEveryMarkedReadmeExampleRuns() throws {
        let blocks = try examples()
        XCTAssertEqual(blocks.map(\.language), ["sh", "sh", "python", "python"])
        let d = try Daemon()
        let env = ["DBUS_SESSION_BUS_ADDRESS": d.bus.address,
                   "PATH": TestEnvironment.productsDirectory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]
        let first = Shell.run(["bash", "-euo", "pipefail", "-c", blocks[0].code], environment: env)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("s \"done\"") && first.stdout.contains("u 320"), first.stdout)
        let second = Shell.run(["bash", "-euo", "pipefail", "-c", blocks[1].code], environment: env)
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stdout.contains("'Prompt': <'two green triangles'>") && second.stdout.contains("Submit("), second.stdout)
        let python = Shell.run(["/usr/bin/python3", "-c", blocks[2].code], environment: env)
        XCTAssertEqual(python.status, 0, python.stderr)
        XCTAssertTrue(python.stdout.hasPrefix("done "), python.stdout)
        let score = Shell.run(["/usr/bin/python3", "-c", blocks[3].code], environment: env)
        XCTAssertEqual(score.status, 0, score.stderr)
        XCTAssertTrue(score.stdout.hasPrefix("16 16 {") && score.stdout.contains("'example-colour': "), score.stdout)
        d.assertAlive()
    }
}
