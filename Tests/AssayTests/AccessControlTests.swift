import AssayDBus
import Foundation
import XCTest

/// Who may do what: root-only administration, the system-bus policy file, and changing
/// plugin directories at run time. Non-root calls run as `nobody` through runuser.
final class AccessControlTests: XCTestCase {
    /// A bus any local user may use, with the daemon's own policy file on top when asked.
    func openBus(withShippedPolicy: Bool) throws -> PrivateBus {
        let base = """
        <policy context="default">
          <allow user="*"/>
          <allow own="*"/>
          <allow send_type="method_call"/>
          <allow send_type="signal"/>
          <allow send_requested_reply="true" send_type="method_return"/>
          <allow send_requested_reply="true" send_type="error"/>
          <allow receive_type="method_call"/>
          <allow receive_type="method_return"/>
          <allow receive_type="error"/>
          <allow receive_type="signal"/>
        </policy>
        """
        let strict = """
        <policy context="default">
          <allow user="*"/>
          <deny own="*"/>
          <deny send_type="method_call"/>
          <allow send_destination="org.freedesktop.DBus"/>
          <allow send_requested_reply="true" send_type="method_return"/>
          <allow send_requested_reply="true" send_type="error"/>
          <allow receive_type="method_call"/>
          <allow receive_type="method_return"/>
          <allow receive_type="error"/>
          <allow receive_type="signal"/>
          <allow send_type="signal"/>
        </policy>
        <include>\(TestEnvironment.repoRoot)/dist/io.assay.Assay1.conf</include>
        """
        return try PrivateBus(policy: withShippedPolicy ? strict : base)
    }

    func asNobody(_ bus: PrivateBus, _ argv: [String]) -> Shell.Result {
        var args = argv
        args.insert("--address=\(bus.address)", at: 1)
        return Shell.run(["runuser", "-u", "nobody", "--"] + args)
    }

    func testAdministrationIsRootOnlyButAnyoneMaySubmit() throws {
        let bus = try openBus(withShippedPolicy: false)
        let d = try Daemon(arguments: ["--restrict-admin"], bus: bus)
        let reload = asNobody(bus, ["busctl", "call", "io.assay.Assay1", "/io/assay/Assay1", "io.assay.Manager1", "ReloadPlugins"])
        XCTAssertNotEqual(reload.status, 0)
        XCTAssertTrue(reload.stderr.contains("restricted to root"), reload.stderr)
        let setDirs = asNobody(bus, ["busctl", "set-property", "io.assay.Assay1", "/io/assay/Assay1", "io.assay.Manager1",
                                     "PluginDirectories", "as", "1", "/tmp"])
        XCTAssertNotEqual(setDirs.status, 0)
        XCTAssertTrue(setDirs.stderr.contains("restricted to root"), setDirs.stderr)
        let submit = asNobody(bus, ["busctl", "call", "io.assay.Assay1", "/io/assay/Assay1", "io.assay.Manager1", "Submit",
                                    "sa{sv}", "a red disk", "1", "steps", "u", "2"])
        XCTAssertEqual(submit.status, 0, submit.stderr)
        let job = try XCTUnwrap(submit.stdout.split(separator: "\"").dropFirst().first.map(String.init))
        XCTAssertEqual(try d.waitFinished(job), "done")
        // Root (this test process) may reload.
        XCTAssertNoThrow(try d.callManager("ReloadPlugins"))
    }

    func testOnlyTheSubmitterOrRootMayCancelAJob() throws {
        let bus = try openBus(withShippedPolicy: false)
        let d = try Daemon(pluginDirectories: [TestEnvironment.pluginsDirectory, TestEnvironment.fixturesDirectory],
                           arguments: ["--restrict-admin"], bus: bus)
        let job = try d.submit("a red disk", ["sampler": .string("fixture-sampler"), "steps": .uint32(300),
                                              "sampler_options": .vardict(["delay_ms": .uint32(10)])])
        let cancel = asNobody(bus, ["busctl", "call", "io.assay.Assay1", job, "io.assay.Job1", "Cancel"])
        XCTAssertTrue(cancel.stderr.contains("io.assay.Error.AccessDenied") || cancel.stderr.contains("only the user who submitted"), cancel.stderr)
        XCTAssertNotEqual(try d.string(job, "State"), "cancelled")
        _ = try d.client.call(destination: Daemon.name, path: job, interface: "io.assay.Job1", member: "Cancel")
        XCTAssertEqual(try d.waitFinished(job), "cancelled")
    }

    func testTheShippedSystemPolicyLetsOnlyRootOwnTheNameAndAdminister() throws {
        let bus = try openBus(withShippedPolicy: true)
        // Another user cannot take the name.
        let own = asNobody(bus, ["busctl", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                 "RequestName", "su", "io.assay.Assay1", "4"])
        XCTAssertNotEqual(own.status, 0)
        XCTAssertTrue(own.stderr.lowercased().contains("access denied"), own.stderr)
        // Root can, and then users may submit and read jobs but not reload.
        let d = try Daemon(arguments: ["--restrict-admin"], bus: bus)
        let submit = asNobody(bus, ["busctl", "call", "io.assay.Assay1", "/io/assay/Assay1", "io.assay.Manager1", "Submit",
                                    "sa{sv}", "a blue disk", "1", "steps", "u", "2"])
        XCTAssertEqual(submit.status, 0, submit.stderr)
        let job = try XCTUnwrap(submit.stdout.split(separator: "\"").dropFirst().first.map(String.init))
        XCTAssertEqual(try d.waitFinished(job), "done")
        let state = asNobody(bus, ["busctl", "get-property", "io.assay.Assay1", job, "io.assay.Job1", "State"])
        XCTAssertEqual(state.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "s \"done\"", state.stderr)
        let reload = asNobody(bus, ["busctl", "call", "io.assay.Assay1", "/io/assay/Assay1", "io.assay.Manager1", "ReloadPlugins"])
        XCTAssertNotEqual(reload.status, 0)
        XCTAssertTrue(reload.stderr.contains("Access denied") || reload.stderr.contains("AccessDenied"), reload.stderr)
    }

    func testPluginDirectoriesCanBeChangedWhileRunning() throws {
        let d = try Daemon()
        let other = TestEnvironment.temporaryDirectory("other-plugins")
        try FileManager.default.copyItem(atPath: TestEnvironment.fixturesDirectory + "/dropin_verifier.so", toPath: other + "/dropin.so")
        d.expectError("io.assay.Error.InvalidArgument") {
            _ = try d.client.call(destination: Daemon.name, path: Daemon.manager, interface: "org.freedesktop.DBus.Properties",
                                  member: "Set", [.string("io.assay.Manager1"), .string("PluginDirectories"), .variant(.strings(["relative/dir"]))])
        }
        _ = try d.client.call(destination: Daemon.name, path: Daemon.manager, interface: "org.freedesktop.DBus.Properties",
                              member: "Set", [.string("io.assay.Manager1"), .string("PluginDirectories"),
                                              .variant(.strings([TestEnvironment.pluginsDirectory, other]))])
        XCTAssertEqual(try d.property(Daemon.manager, "PluginDirectories", interface: "io.assay.Manager1"),
                       .strings([TestEnvironment.pluginsDirectory, other]))
        XCTAssertNotNil(try d.plugin("fixture-dropin"))
        // Dropping a directory drops its plugins.
        _ = try d.client.call(destination: Daemon.name, path: Daemon.manager, interface: "org.freedesktop.DBus.Properties",
                              member: "Set", [.string("io.assay.Manager1"), .string("PluginDirectories"), .variant(.strings([other]))])
        XCTAssertNil(try d.plugin("example-model"))
        XCTAssertNotNil(try d.plugin("fixture-dropin"))
        // And the new directory is watched.
        try FileManager.default.copyItem(atPath: TestEnvironment.pluginsDirectory + "/example-model.so", toPath: other + "/model.so")
        try d.waitPlugins { $0.contains { $0["id"]?.stringValue == "example-model" } }
    }
}
