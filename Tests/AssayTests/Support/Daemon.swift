import AssayClient
import AssayDBus
import Foundation
import XCTest

/// A real `assayd` process on a private bus, and a client connection to it.
final class Daemon {
    static let name = "io.assay.Assay1"
    static let manager = "/io/assay/Assay1"
    let bus: PrivateBus
    let process: Process
    let stateDirectory: String
    let pluginDirectories: [String]
    let client: DBusConnection
    private let logPath: String

    /// `stateDirectory`: reuse one (a restart); default a new one.
    init(pluginDirectories: [String]? = nil, arguments: [String] = [], bus: PrivateBus? = nil,
         stateDirectory: String? = nil) throws {
        _ = TestEnvironment.pluginsBuilt
        self.bus = try bus ?? PrivateBus()
        self.pluginDirectories = pluginDirectories ?? [TestEnvironment.pluginsDirectory]
        self.stateDirectory = stateDirectory ?? TestEnvironment.temporaryDirectory("state")
        logPath = self.stateDirectory + "/assayd-\(UInt32.random(in: 0...UInt32.max)).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.assaydPath)
        // Tests name their defaults: which plugins a build produces must not change them.
        process.arguments = ["--address", self.bus.address, "--state-dir", self.stateDirectory, "--log-level", "debug",
                             "--default-models", "example-model", "--default-verifiers", "example-colour"]
            + self.pluginDirectories.flatMap { ["--plugin-dir", $0] } + arguments
        process.standardError = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        client = try self.bus.connect()
        for _ in 0..<500 {
            if AssayClient(connection: client).isServing() { return }
            if !process.isRunning { throw TestFailure("assayd exited at start:\n\(log)") }
            usleep(10_000)
        }
        throw TestFailure("assayd did not take its bus name:\n\(log)")
    }

    deinit { stop() }

    /// A daemon on everything the build produced, with the embedded defaults pinned; skips
    /// the test when the shapes plugin is not built.
    static func shapes() throws -> Daemon {
        _ = TestEnvironment.pluginsBuilt
        guard FileManager.default.fileExists(atPath: TestEnvironment.buildPluginsDirectory + "/shapes.so") else {
            throw XCTSkip("the shapes plugin is not built")
        }
        return try Daemon(pluginDirectories: [TestEnvironment.buildPluginsDirectory],
                          arguments: ["--default-models", "shapes", "--default-verifiers", "shapes-checker"])
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// What a crash does: SIGKILL, no clean-up.
    func kill9() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var pid: Int32 { process.processIdentifier }

    // MARK: calls

    /// The shared typed client (the one assayctl and assay-bench use) on this connection.
    var api: AssayClient { AssayClient(connection: client) }

    func callManager(_ member: String, _ args: [DBusValue] = []) throws -> [DBusValue] { try api.manager(member, args) }

    func submit(_ prompt: String, _ options: [String: DBusValue] = [:]) throws -> String { try api.submit(prompt, options) }

    func property(_ path: String, _ name: String, interface: String = "io.assay.Job1") throws -> DBusValue {
        try api.property(path, name, interface: interface)
    }

    func string(_ path: String, _ name: String) throws -> String { try property(path, name).stringValue ?? "" }
    func number(_ path: String, _ name: String) throws -> Double { try property(path, name).doubleValue ?? .nan }

    /// Polls until the job reaches a final state; returns it.
    @discardableResult
    func waitFinished(_ path: String, timeout: Double = 60) throws -> String {
        do {
            return try api.waitFinished(path, timeout: timeout)
        } catch let e as AssayClientError {
            throw TestFailure("\(e); daemon log:\n\(log)")
        }
    }

    func waitState(_ path: String, _ state: String, timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try string(path, "State") == state { return }
            usleep(10_000)
        }
        throw TestFailure("job \(path) never reached \(state)")
    }

    func plugins() throws -> [[String: DBusValue]] { try api.plugins() }

    func plugin(_ id: String) throws -> [String: DBusValue]? { try api.plugin(id) }

    /// Waits until `condition` holds on ListPlugins.
    func waitPlugins(timeout: Double = 10, _ condition: ([[String: DBusValue]]) -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition(try plugins()) { return }
            usleep(20_000)
        }
        throw TestFailure("plugin condition not met; plugins: \(try plugins()); log:\n\(log)")
    }

    func manifest(_ path: String) throws -> [String: Any] {
        let file = try string(path, "ManifestPath")
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// Asserts that a call fails with the given D-Bus error name; returns the message.
    @discardableResult
    func expectError(_ name: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) -> String {
        do {
            try body()
            XCTFail("expected \(name), but the call succeeded", file: file, line: line)
        } catch let e as DBusError {
            XCTAssertEqual(e.name, name, e.message, file: file, line: line)
            return e.message
        } catch {
            XCTFail("expected \(name), got \(error)", file: file, line: line)
        }
        return ""
    }

    /// Checks the daemon is alive and answering.
    func assertAlive(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(process.isRunning, "assayd died; log:\n\(log)", file: file, line: line)
        XCTAssertNoThrow(try callManager("ListJobs"), file: file, line: line)
    }
}
