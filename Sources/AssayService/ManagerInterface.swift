import AssayCore
import AssayDBus
import AssayPluginHost
import AssayWire
import Dispatch
import Glibc

/// `io.assay.Manager1` on /io/assay/Assay1.
extension AssayService {
    /// `io.assay.Manager1`, declared once (see `BusInterface`).
    static let managerBus = BusInterface<AssayService>(
        name: managerInterface,
        methods: [
            BusMethod("Submit", in: [BusArg("prompt", "s"), BusArg("options", "a{sv}")], out: [BusArg("job", "o")],
                      example: "Submit(\"a red circle\", {\"strategy\": <\"best-of-n\">, \"n\": <uint32 8>})") { s, msg in
                let args = msg.arguments(keepingFDs: false)
                guard case .string(let prompt) = args[0], let options = JobOptionsWire.decode(args[1]) else {
                    throw AssayError.invalidArgument("Submit takes (s prompt, a{sv} options)")
                }
                let path = try s.submit(prompt: prompt, rawOptions: options, msg: msg)
                let r = msg.makeReturn()
                r.append(.objectPath(path))
                return r
            },
            BusMethod("Score", in: [BusArg("prompt", "s"), BusArg("images", "ah"), BusArg("verifiers", "as"), BusArg("options", "a{sv}")],
                      out: [BusArg("results", "aa{sv}")], example: "Score(\"a red circle\", [fd of a PNG], [], {})") { s, msg in
                try s.handleScore(msg)
            },
            BusMethod("ListPlugins", out: [BusArg("plugins", "aa{sv}")]) { s, msg in
                let rows: [DBusValue] = s.registry.records().map { p in
                    var d: [String: DBusValue] = [
                        "id": .string(p.id), "kind": .string(p.kind), "name": .string(p.name), "version": .string(p.version),
                        "description": .string(p.summary), "path": .string(p.path), "state": .string(p.state.rawValue),
                        "sha256": .string(p.sha256), "generation": .uint64(p.generation),
                    ]
                    if !p.reason.isEmpty { d["reason"] = .string(p.reason) }
                    return .vardict(d)
                }
                let r = msg.makeReturn()
                r.append(.array(elementSignature: "a{sv}", rows))
                return r
            },
            BusMethod("ListJobs", out: [BusArg("jobs", "ao")]) { s, msg in
                let r = msg.makeReturn()
                r.append(.array(elementSignature: "o", s.jobs.all.map { .objectPath($0.path) }))
                return r
            },
            BusMethod("ListStrategies", out: [BusArg("strategies", "aa{sv}")]) { s, msg in
                let r = msg.makeReturn()
                r.append(.array(elementSignature: "a{sv}", s.catalog.strategies.keys.sorted().map { StrategyListing.describe(s.catalog.strategies[$0]!) }))
                return r
            },
            BusMethod("ReloadPlugins") { s, msg in
                try s.requirePrivileged(msg, "ReloadPlugins")
                // Loading may take a while (weights): do it off the bus thread, reply when done.
                let reg = s.registry, loopRef = s.loop
                let reply = msg.makeReturn()
                DispatchQueue.global().async {
                    reg.scanAll()
                    loopRef.post { loopRef.connection.send(reply) }
                }
                return nil
            },
        ],
        signals: [
            BusSignal("PluginsChanged"),
            BusSignal("PluginLoadFailed", [BusArg("path", "s"), BusArg("reason", "s")]),
        ],
        properties: [
            BusProperty("Version", "s", .constant) { _ in .string(AssayVersion.string) },
            BusProperty("AbiVersion", "s", .constant) { _ in .string(HostABI.string) },
            BusProperty("PluginDirectories", "as", .emits, get: { .strings($0.registry.directories) },
                        set: { s, value, msg in try s.setPluginDirectories(value, msg) }),
            BusProperty("QueueLength", "u", .emits) { .uint32(UInt32($0.scheduler.queueLength)) },
            BusProperty("RunningJobs", "u", .emits) { .uint32(UInt32($0.scheduler.runningCount)) },
            BusProperty("Strategies", "as", .constant) { .strings($0.catalog.strategies.keys.sorted()) },
            BusProperty("ScoreVerifierCalls", "t", .silent) { .uint64($0.scoreCallsCounter.current) },
        ])

    /// Properties.Set of PluginDirectories (admin only): absolute paths of existing folders.
    func setPluginDirectories(_ value: DBusValue, _ msg: DBusMessage) throws -> DBusMessage? {
        try requirePrivileged(msg, "changing PluginDirectories")
        guard case .array("s", let items) = value else {
            throw AssayError.invalidArgument("PluginDirectories takes an array of strings (as)")
        }
        let dirs = items.compactMap(\.stringValue).map { $0.count > 1 && $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        for d in dirs {
            guard d.hasPrefix("/") else { throw AssayError.invalidArgument("plugin directory '\(d)' is not an absolute path") }
            var st = stat()
            guard stat(d, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw AssayError.invalidArgument("plugin directory '\(d)' does not exist or is not a directory")
            }
        }
        setPluginDirectories(dirs, reply: msg.makeReturn())
        return nil
    }
}
