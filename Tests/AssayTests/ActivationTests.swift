import AssayDBus
import Foundation
import XCTest

/// The shipped session activation file, used by a real dbus-daemon: the first call to
/// io.assay.Assay1 starts assayd, which takes its name only once its plugins are loaded.
final class ActivationTests: XCTestCase {
    func testTheFirstCallStartsTheDaemonThroughDBusActivation() throws {
        _ = TestEnvironment.pluginsBuilt
        let dir = TestEnvironment.temporaryDirectory("activation")
        let services = dir + "/services"
        try FileManager.default.createDirectory(atPath: services, withIntermediateDirectories: true)
        // The template from dist/, filled in like `make install` does, plus test-only flags.
        let template = try String(contentsOfFile: TestEnvironment.repoRoot + "/dist/io.assay.Assay1.service.in", encoding: .utf8)
        let file = template.replacingOccurrences(of: "@BINDIR@", with: TestEnvironment.productsDirectory)
            .replacingOccurrences(of: "/assayd\n", with: "/assayd --plugin-dir \(TestEnvironment.pluginsDirectory) --state-dir \(dir)/state --default-models example-model\n")
            .replacingOccurrences(of: "SystemdService=assayd.service\n", with: "")
        try file.write(toFile: services + "/io.assay.Assay1.service", atomically: true, encoding: .utf8)
        let bus = try PrivateBus(policy: """
            <servicedir>\(services)</servicedir>
            <policy context="default">
              <allow user="root"/>
              <allow own="*"/>
              <allow send_destination="*"/>
              <allow receive_sender="*"/>
            </policy>
            """)
        let client = try bus.connect()
        // Nobody owns the name yet; this call activates the daemon and waits for it.
        let reply = try client.call(destination: "io.assay.Assay1", path: "/io/assay/Assay1", interface: "io.assay.Manager1",
                                    member: "ListPlugins", timeoutMs: 20_000)
        let ids = reply.first?.arrayValue?.compactMap { $0.vardictValue?["id"]?.stringValue } ?? []
        XCTAssertTrue(ids.contains("example-model"), "\(ids)")
        let job = try client.call(destination: "io.assay.Assay1", path: "/io/assay/Assay1", interface: "io.assay.Manager1",
                                  member: "Submit", [.string("a red circle"), .vardict(["steps": .uint32(2)])])
        XCTAssertEqual(job.first?.stringValue?.hasPrefix("/io/assay/Assay1/jobs/"), true)
        // Stop the activated daemon (the bus does not).
        let pid = try client.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
                                  member: "GetConnectionUnixProcessID", [.string("io.assay.Assay1")])
        if case .uint32(let p)? = pid.first { kill(pid_t(p), SIGTERM) }
    }
}
