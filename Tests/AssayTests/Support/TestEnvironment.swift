import AssayDBus
import AssayPluginHost
import Foundation
import XCTest

/// Paths and one-time set-up shared by the integration tests.
enum TestEnvironment {
    /// The repository root (this file is Tests/AssayTests/Support/TestEnvironment.swift).
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Where SwiftPM put the executables (next to the test runner).
    static let productsDirectory: String = {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // Linux runs `.build/debug/AssayPackageTests.xctest` directly.
        if dir.lastPathComponent.hasSuffix(".xctest") { dir.deleteLastPathComponent() }
        return dir.path
    }()

    static var assaydPath: String { productsDirectory + "/assayd" }
    static var assayctlPath: String { productsDirectory + "/assayctl" }
    /// Everything the build produced (examples, the shapes model and its verifiers).
    static var buildPluginsDirectory: String { repoRoot + "/build/plugins" }

    /// Only the example plugins (links into build/plugins): daemons start in milliseconds
    /// instead of loading the shapes model's weights in every test.
    static let pluginsDirectory: String = {
        _ = pluginsBuilt
        let dir = temporaryDirectory("examples")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: buildPluginsDirectory)) ?? []
        where name.hasPrefix("example-") && name.hasSuffix(".so") {
            try? FileManager.default.createSymbolicLink(atPath: dir + "/" + name, withDestinationPath: buildPluginsDirectory + "/" + name)
        }
        return dir
    }()
    static var fixturesDirectory: String { repoRoot + "/build/fixtures" }
    static var fixtureSources: String { repoRoot + "/Tests/Fixtures/plugins" }

    /// Builds the example and fixture plugins once per test run (make skips what is current).
    static let pluginsBuilt: Void = {
        let r = Shell.run(["make", "-s", "-C", repoRoot + "/Plugins", "examples", "fixtures"])
        precondition(r.status == 0, "building plugins failed:\n\(r.stderr)")
    }()

    /// The compile and link flags for a plugin, from the Plugins Makefile.
    static let pluginFlags: [String] = {
        let r = Shell.run(["make", "-s", "-C", repoRoot + "/Plugins", "print-flags"])
        precondition(r.status == 0, "make print-flags failed: \(r.stderr)")
        return r.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
    }()

    /// Compiles one fixture source into `output` (written to a temporary name, then renamed
    /// into place, as a careful build tool does) with extra `-D` definitions.
    static func compileFixture(_ source: String, to output: String, defines: [String] = []) throws {
        let tmp = output + ".build-\(getpid())"
        let r = Shell.run(["cc"] + defines.map { "-D" + $0 } + ["-o", tmp, fixtureSources + "/" + source] + pluginFlags)
        guard r.status == 0 else { throw TestFailure("cc failed: \(r.stderr)") }
        guard rename(tmp, output) == 0 else { throw TestFailure("rename failed") }
    }

    static func temporaryDirectory(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "assay-test-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Runs a program and captures its output.
enum Shell {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    @discardableResult
    static func run(_ argv: [String], environment: [String: String] = [:], stdin: String? = nil, timeout: Double = 60) -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        if let stdin {
            let inPipe = Pipe()
            p.standardInput = inPipe
            inPipe.fileHandleForWriting.write(stdin.data(using: .utf8)!)
            inPipe.fileHandleForWriting.closeFile()
        }
        do { try p.run() } catch { return Result(status: -1, stdout: "", stderr: "\(error)") }
        let outData = Locked(Data()), errData = Locked(Data())
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outData.withLock { $0 = out.fileHandleForReading.readDataToEndOfFile() }; group.leave() }
        group.enter()
        DispatchQueue.global().async { errData.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() }; group.leave() }
        if group.wait(timeout: .now() + timeout) == .timedOut { p.terminate() }
        p.waitUntilExit()
        group.wait()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData.current, as: UTF8.self),
                      stderr: String(decoding: errData.current, as: UTF8.self))
    }
}
