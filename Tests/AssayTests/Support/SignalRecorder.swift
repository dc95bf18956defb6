import AssayDBus
import AssayPluginHost
import Foundation

/// Records signals matching a rule on its own connection (its own thread), so a test can
/// assert that a signal was sent, and when.
final class SignalRecorder {
    private let connection: DBusConnection
    private let received = Locked<[(member: String, path: String, args: [DBusValue])]>([])
    private let running = Locked(true)
    private var thread: Thread?

    init(bus: PrivateBus, rule: String) throws {
        connection = try bus.connect()
        try connection.addMatch(rule)
        connection.setHandler { [received] msg in
            if msg.type == .signal, let member = msg.member {
                received.withLock { $0.append((member, msg.path ?? "", msg.arguments())) }
            }
            return false
        }
        let t = Thread { [connection, running] in
            while running.current { connection.readWriteDispatch(timeoutMs: 20) }
        }
        t.start()
        thread = t
    }

    deinit { running.withLock { $0 = false }; usleep(50_000) }

    var signals: [(member: String, path: String, args: [DBusValue])] { received.current }

    /// Waits for a signal `member` satisfying `match`; returns its arguments.
    func wait(for member: String, timeout: Double = 10, _ match: ([DBusValue]) -> Bool = { _ in true }) throws -> [DBusValue] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let s = signals.first(where: { $0.member == member && match($0.args) }) { return s.args }
            usleep(5_000)
        }
        throw TestFailure("no \(member) signal within \(timeout) s; got \(signals.map(\.member))")
    }
}

