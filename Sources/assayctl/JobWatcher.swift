import AssayPluginHost
import AssayDBus
import Glibc

/// SIGINT count, written by the signal handler only.
nonisolated(unsafe) var interruptCount: sig_atomic_t = 0

/// Follows one job until it ends: PropertiesChanged and Finished signals drive a live
/// progress line; a GetAll every 200 ms without news covers missed or absent signals.
final class JobWatcher {
    let client: Client
    private(set) var path: String?
    private(set) var properties: [String: DBusValue] = [:]
    private var finished: String?
    private var lastNews: UInt64 = 0
    private let progress: ProgressLine?

    static let finalStates: Set<String> = ["done", "failed", "cancelled"]

    /// Subscribes to the signals of every job object *before* the job exists: a job that
    /// finishes between Submit's reply and an AddMatch on its path would otherwise lose
    /// its Finished signal.
    init(client: Client, showProgress: Bool) throws {
        self.client = client
        progress = showProgress ? ProgressLine() : nil
        let base = "type='signal',sender='\(Client.busName)',path_namespace='\(Client.jobsPath)'"
        do {
            try client.connection.addMatch(base + ",interface='\(Client.propertiesInterface)',member='PropertiesChanged'")
            try client.connection.addMatch(base + ",interface='\(Client.jobInterface)',member='Finished'")
        } catch let e as DBusError {
            throw Client.failure(e)
        }
        client.connection.setHandler { [weak self] msg in
            guard let self, msg.type == .signal, let p = self.path, msg.path == p else { return false }
            let args = msg.arguments()
            if msg.member == "PropertiesChanged", args.count >= 2, args[0].stringValue == Client.jobInterface,
               let changed = args[1].vardictValue {
                self.properties.merge(changed) { $1 }
                self.lastNews = now()
                return true
            }
            if msg.member == "Finished", msg.interface == Client.jobInterface {
                self.finished = args.first?.stringValue ?? ""
                return true
            }
            return false
        }
    }

    var state: String { properties["State"]?.stringValue ?? "" }

    /// Waits until the job at `path` ends and returns its final properties.
    /// With `cancelOnInterrupt`, Ctrl-C cancels the job and ends with exit code 5.
    func wait(for path: String, cancelOnInterrupt: Bool) throws -> [String: DBusValue] {
        self.path = path
        var previous = sigaction()
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in interruptCount += 1 }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0 // no SA_RESTART: poll() returns at once
        if cancelOnInterrupt { sigaction(SIGINT, &action, &previous) }
        defer { if cancelOnInterrupt { sigaction(SIGINT, &previous, nil) } }

        properties = try client.jobProperties(path)
        lastNews = now()
        var cancelAt: UInt64?
        while finished == nil && !JobWatcher.finalStates.contains(state) {
            if cancelOnInterrupt && interruptCount > 0 {
                if interruptCount > 1 {
                    progress?.clear()
                    throw Failure(130, "interrupted; job \(path) may still be running")
                }
                if cancelAt == nil {
                    cancelAt = now()
                    progress?.note("cancelling \(path) ...")
                    _ = try? client.call(path, Client.jobInterface, "Cancel")
                } else if now() - cancelAt! > 5_000_000_000 {
                    progress?.clear()
                    throw Failure(ExitStatus.cancelled, "cancelled; job \(path) did not confirm within 5 s")
                }
            }
            progress?.update(properties)
            client.connection.readWriteDispatch(timeoutMs: 50)
            guard client.connection.isConnected else {
                progress?.clear()
                throw Failure(ExitStatus.unreachable, "lost the connection to the bus")
            }
            if finished == nil && now() - lastNews >= 200_000_000 {
                properties.merge(try client.jobProperties(path)) { $1 }
                lastNews = now()
            }
        }
        // The last PropertiesChanged may be coalesced; read the final values once.
        properties = try client.jobProperties(path)
        progress?.update(properties, force: true)
        progress?.finish()
        if cancelAt != nil {
            throw Failure(ExitStatus.cancelled, "job \(path) cancelled (Ctrl-C); it ended \(state)")
        }
        return properties
    }
}

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The progress line on stderr: redrawn in place on a terminal, one line per state change
/// otherwise (logs stay readable).
final class ProgressLine {
    private let tty = isatty(2) == 1
    private var lastDraw: UInt64 = 0
    private var lastState = ""
    private var drawn = false

    func update(_ p: [String: DBusValue], force: Bool = false) {
        let state = p["State"]?.stringValue ?? "?"
        if tty {
            guard force || now() - lastDraw >= 50_000_000 else { return }
            lastDraw = now()
            Console.error("\r\u{1B}[K" + ProgressLine.render(p))
            drawn = true
        } else if state != lastState {
            Console.error(ProgressLine.render(p) + "\n")
        }
        lastState = state
    }

    func note(_ text: String) {
        clear()
        Console.error(text + "\n")
    }

    func clear() {
        if tty && drawn { Console.error("\r\u{1B}[K"); drawn = false }
    }

    func finish() {
        if tty && drawn { Console.error("\n"); drawn = false }
    }

    static func render(_ p: [String: DBusValue]) -> String {
        let fraction = min(max(p["Progress"]?.doubleValue ?? 0, 0), 1)
        let width = 24
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
        let pct = String(Int((fraction * 100).rounded(.down))).leftPadded(3, with: " ") + "%"
        let used = p["NfeUsed"]?.doubleValue.map { String(Int($0)) } ?? "?"
        let budget = p["NfeBudget"]?.doubleValue.map { String(Int($0)) } ?? "?"
        return "\(bar) \(pct)  nfe \(used)/\(budget)  best \(formatScore(p["BestScore"]?.doubleValue))  \(p["State"]?.stringValue ?? "?")"
    }
}

func formatScore(_ d: Double?) -> String {
    guard let d, d.isFinite else { return "-" }
    return formatFixed(d, 4)
}

/// `d` with `digits` decimals, without Foundation's String(format:).
func formatFixed(_ d: Double, _ digits: Int) -> String {
    guard d.isFinite else { return String(d) }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (abs(d) * scale).rounded()
    let whole = Int(r / scale)
    let frac = Int(r - Double(whole) * scale)
    let sign = d < 0 && r != 0 ? "-" : ""
    return digits == 0 ? "\(sign)\(whole)" : "\(sign)\(whole).\(String(frac).leftPadded(digits, with: "0"))"
}

extension String {
    func rightPadded(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
