import XCTest

/// The public C headers must compile warning-free as C11, C17 and C++17, each on its own
/// (a plugin may include any one of them first).
final class HeaderTests: XCTestCase {
    func testEveryHeaderCompilesCleanAsC11C17AndCxx17() throws {
        let include = TestEnvironment.repoRoot + "/include"
        let headers = try FileManager.default.subpathsOfDirectory(atPath: include + "/assay").filter { $0.hasSuffix(".h") }.sorted()
        XCTAssertTrue(headers.contains("assay.h"))
        XCTAssertGreaterThanOrEqual(headers.count, 10)
        let dir = TestEnvironment.temporaryDirectory("headers")
        for header in headers {
            let source = "#include <assay/\(header)>\n#include <assay/\(header)>\nint main(void) { return 0; }\n"
            let c = dir + "/t.c", cxx = dir + "/t.cpp"
            try source.write(toFile: c, atomically: true, encoding: .utf8)
            try source.write(toFile: cxx, atomically: true, encoding: .utf8)
            for (compiler, std, file) in [("cc", "c11", c), ("cc", "c17", c), ("c++", "c++17", cxx)] {
                let r = Shell.run([compiler, "-std=\(std)", "-Wall", "-Wextra", "-pedantic", "-Werror", "-I", include,
                                   "-c", file, "-o", dir + "/t.o"])
                XCTAssertEqual(r.status, 0, "\(header) as \(std):\n\(r.stderr)")
            }
        }
    }

    func testExamplePluginsExportOnlyTheEntrySymbol() throws {
        _ = TestEnvironment.pluginsBuilt
        let dir = TestEnvironment.buildPluginsDirectory
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".so") }
        XCTAssertGreaterThanOrEqual(files.count, 4)
        for f in files {
            let r = Shell.run(["nm", "-D", "--defined-only", dir + "/" + f])
            let symbols = r.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }
            XCTAssertEqual(symbols, ["assay_entry"], f)
        }
    }
}
