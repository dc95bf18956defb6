import AssayCore
import AssayDBus
import AssayPluginHost

/// What `ListStrategies` says about a strategy, so a script can discover every strategy,
/// its model roles and its options (name, D-Bus type, default, range or choices, help)
/// without reading the source.
enum StrategyListing {
    static func describe(_ s: any Strategy) -> DBusValue {
        let options: [DBusValue] = s.options.map { o in
            var d: [String: DBusValue] = ["name": .string(o.name), "type": .string(o.signature), "help": .string(o.help)]
            switch (o.kind, o.defaultValue) {
            case (.count(let r), .number(let v)):
                d["default"] = .uint32(UInt32(v)); d["min"] = .uint32(UInt32(r.lowerBound)); d["max"] = .uint32(UInt32(r.upperBound))
            case (.number(let r), .number(let v)):
                d["default"] = .double(v); d["min"] = .double(r.lowerBound); d["max"] = .double(r.upperBound)
            case (.choice(let words), .string(let v)):
                d["default"] = .string(v); d["choices"] = .strings(words)
            default: break
            }
            if o.name == s.sizeOption { d["sizes_to_budget"] = .bool(true) }
            return .vardict(d)
        }
        return .vardict([
            "name": .string(s.name), "summary": .string(s.summary), "needs_verifier": .bool(s.needsVerifier),
            "roles": .strings(s.roles.map(\.name)),
            "options": .array(elementSignature: "a{sv}", options),
        ])
    }
}
