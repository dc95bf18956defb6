import AssayDBus
import Foundation

/// A private `dbus-daemon` for one test: no test touches the user's session bus.
final class PrivateBus {
    let address: String
    private let process: Process
    private let directory: String

    /// - Parameter policy: nil for a plain session bus; else busconfig XML (policies,
    ///   includes) for a system-like bus that any local user may connect to.
    init(policy: String? = nil) throws {
        directory = TestEnvironment.temporaryDirectory("bus")
        chmod(directory, 0o755)
        let socket = directory + "/bus"
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/dbus-daemon")
        if let policy {
            let config = """
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig>
              <type>system</type>
              <listen>unix:path=\(socket)</listen>
              <auth>EXTERNAL</auth>
              \(policy)
            </busconfig>
            """
            try config.write(toFile: directory + "/bus.conf", atomically: true, encoding: .utf8)
            process.arguments = ["--config-file=\(directory)/bus.conf", "--nofork", "--nopidfile"]
        } else {
            process.arguments = ["--session", "--nofork", "--nopidfile", "--address=unix:path=\(socket)"]
        }
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        address = "unix:path=\(socket)"
        for _ in 0..<200 {
            if FileManager.default.fileExists(atPath: socket), (try? DBusConnection(.address(address))) != nil { return }
            usleep(10_000)
        }
        throw TestFailure("dbus-daemon did not start")
    }

    deinit {
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func connect() throws -> DBusConnection { try DBusConnection(.address(address)) }

    /// Runs a D-Bus command-line client (busctl, gdbus, dbus-send) against this bus.
    func cli(_ argv: [String]) -> Shell.Result {
        var args = argv
        switch argv.first {
        case "busctl": args.insert("--address=\(address)", at: 1)
        case "gdbus": args.insert(contentsOf: ["--address", address], at: 2)
        case "dbus-send": args.insert("--bus=\(address)", at: 1)
        default: break
        }
        return Shell.run(args, environment: ["DBUS_SESSION_BUS_ADDRESS": address])
    }
}
