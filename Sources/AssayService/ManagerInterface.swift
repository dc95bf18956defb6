import AssayCore
import AssayDBus
import AssayPluginHost
import AssayWire
import Dispatch
import Glibc

/// `io.assay.Manager1` on /io/assay/Assay1.
extension AssayService {
    func managerProperties() -> [String: DBusValue] {
        [
            "Version": .string(AssayVersion.string),
            "AbiVersion": .string(HostABI.string),
            "PluginDirectories": .strings(registry.directories),
            "QueueLength": .uint32(UInt32(scheduler.queueLength)),
            "RunningJobs": .uint32(UInt32(scheduler.runningCount)),
            "Strategies": .strings(catalog.strategies.keys.sorted()),
            "ScoreVerifierCalls": .uint64(scoreCallsCounter.current),
        ]
    }

    func handleManager(_ msg: DBusMessage, interface: String?, member: String) throws -> DBusMessage? {
        if interface == AssayService.propertiesInterface {
            if member == "Set" { return try setManagerProperty(msg) }
            return try handleProperties(msg, member: member, interface: AssayService.managerInterface, values: managerProperties())
        }
        guard interface == nil || interface == AssayService.managerInterface else { throw unknownMethod(interface, member) }
        switch member {
        case "Submit":
            try requireSignature(msg, "sa{sv}", "Submit(s prompt, a{sv} options), e.g. Submit(\"a red circle\", {\"strategy\": <\"best-of-n\">, \"n\": <uint32 8>})")
            let args = msg.arguments(keepingFDs: false)
            guard case .string(let prompt) = args[0], let options = JobOptionsWire.decode(args[1]) else {
                throw AssayError.invalidArgument("Submit takes (s prompt, a{sv} options)")
            }
            let path = try submit(prompt: prompt, rawOptions: options, msg: msg)
            let r = msg.makeReturn()
            r.append(.objectPath(path))
            return r
        case "Score":
            return try handleScore(msg)
        case "ListPlugins":
            try requireSignature(msg, "", "ListPlugins()")
            let rows: [DBusValue] = registry.records().map { p in
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
        case "ListStrategies":
            try requireSignature(msg, "", "ListStrategies()")
            let r = msg.makeReturn()
            r.append(.array(elementSignature: "a{sv}", catalog.strategies.keys.sorted().map { StrategyListing.describe(catalog.strategies[$0]!) }))
            return r
        case "ListJobs":
            try requireSignature(msg, "", "ListJobs()")
            let r = msg.makeReturn()
            r.append(.array(elementSignature: "o", jobs.keys.sorted().map { .objectPath(jobs[$0]!.path) }))
            return r
        case "ReloadPlugins":
            try requireSignature(msg, "", "ReloadPlugins()")
            try requirePrivileged(msg, "ReloadPlugins")
            // Loading may take a while (weights): do it off the bus thread, reply when done.
            let reg = registry, loopRef = loop
            let reply = msg.makeReturn()
            DispatchQueue.global().async {
                reg.scanAll()
                loopRef.post { loopRef.connection.send(reply) }
            }
            return nil
        default:
            throw unknownMethod(interface, member)
        }
    }

    /// Properties.Set on the manager: only PluginDirectories is writable (admin only).
    private func setManagerProperty(_ msg: DBusMessage) throws -> DBusMessage? {
        try requireSignature(msg, "ssv", "Set(s interface, s property, v value)")
        let args = msg.arguments(keepingFDs: false)
        guard case .string(let name) = args[1] else { throw AssayError.invalidArgument("Set(ssv)") }
        guard name == "PluginDirectories" else {
            throw DBusError(name: "org.freedesktop.DBus.Error.PropertyReadOnly", message: "\(name) is read-only; only PluginDirectories can be set")
        }
        try requirePrivileged(msg, "changing PluginDirectories")
        guard case .variant(.array("s", let items)) = args[2] else {
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

    /// `org.freedesktop.DBus.Properties` for any object (read-only properties).
    func handleProperties(_ msg: DBusMessage, member: String, interface: String, values: [String: DBusValue]) throws -> DBusMessage {
        let args = msg.arguments(keepingFDs: false)
        switch member {
        case "Get":
            try requireSignature(msg, "ss", "Get(s interface, s property)")
            guard case .string(let iface) = args[0], case .string(let name) = args[1] else { throw AssayError.invalidArgument("Get(ss)") }
            guard iface == interface || iface.isEmpty else {
                throw DBusError(name: "org.freedesktop.DBus.Error.UnknownInterface", message: "no interface \(iface) here; try \(interface)")
            }
            guard let v = values[name] else {
                throw DBusError(name: "org.freedesktop.DBus.Error.UnknownProperty",
                                message: "no property \(name) on \(interface); properties: \(values.keys.sorted().joined(separator: ", "))")
            }
            let r = msg.makeReturn()
            r.append(.variant(v))
            return r
        case "GetAll":
            try requireSignature(msg, "s", "GetAll(s interface)")
            guard case .string(let iface) = args[0] else { throw AssayError.invalidArgument("GetAll(s)") }
            let r = msg.makeReturn()
            r.append(.vardict(iface == interface || iface.isEmpty ? values : [:]))
            return r
        case "Set":
            try requireSignature(msg, "ssv", "Set(s interface, s property, v value)")
            throw DBusError(name: "org.freedesktop.DBus.Error.PropertyReadOnly", message: "the properties of \(interface) are read-only")
        default:
            throw unknownMethod(AssayService.propertiesInterface, member)
        }
    }
}
