import AssayCore
import AssayDBus

/// One D-Bus interface, declared once, as data: its methods (signature and handler), its
/// properties (type, how changes are announced, getter, optional setter) and its signals.
/// Dispatch, signature checks, `org.freedesktop.DBus.Properties`, the introspection XML
/// and `dist/io.assay.Assay1.xml` are all derived from it, as sd-bus derives them from a
/// vtable, so the four can no longer drift apart.
///
/// `Object` is what the handlers and getters work on: the service for the manager, a job
/// (with the snapshot to read) for a job.
struct BusInterface<Object>: Sendable {
    let name: String
    let methods: [BusMethod<Object>]
    let signals: [BusSignal]
    let properties: [BusProperty<Object>]

    /// The `<interface>` element, indented for a `<node>`.
    var xml: String {
        var out = "  <interface name=\"\(name)\">\n"
        for m in methods {
            let args = m.inArgs.map { ($0, "in") } + m.outArgs.map { ($0, "out") }
            if args.isEmpty {
                out += "    <method name=\"\(m.name)\"/>\n"
            } else {
                out += "    <method name=\"\(m.name)\">\n"
                for (a, dir) in args { out += "      <arg name=\"\(a.name)\" type=\"\(a.type)\" direction=\"\(dir)\"/>\n" }
                out += "    </method>\n"
            }
        }
        for s in signals {
            if s.args.isEmpty {
                out += "    <signal name=\"\(s.name)\"/>\n"
            } else {
                out += "    <signal name=\"\(s.name)\">\n"
                for a in s.args { out += "      <arg name=\"\(a.name)\" type=\"\(a.type)\"/>\n" }
                out += "    </signal>\n"
            }
        }
        for p in properties {
            let access = p.set == nil ? "read" : "readwrite"
            out += "    <property name=\"\(p.name)\" type=\"\(p.type)\" access=\"\(access)\">\n"
            out += "      <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"\(p.change.rawValue)\"/>\n"
            out += "    </property>\n"
        }
        return out + "  </interface>\n"
    }

    /// Every property's value for `object`.
    func values(_ object: Object) -> [String: DBusValue] {
        Dictionary(uniqueKeysWithValues: properties.map { ($0.name, $0.get(object)) })
    }

    /// Runs the method `member`, after checking the call's signature against the
    /// declaration (a wrong one is refused naming the expected arguments and an example).
    /// Returns the reply, or nil when the handler answers later; nil from `method(named:)`
    /// means this interface has no such method.
    func method(named member: String) -> BusMethod<Object>? { methods.first { $0.name == member } }
}

struct BusArg: Sendable {
    let name: String
    let type: String
    init(_ name: String, _ type: String) {
        self.name = name
        self.type = type
    }
}

struct BusMethod<Object>: Sendable {
    let name: String
    let inArgs: [BusArg]
    let outArgs: [BusArg]
    /// An example call, shown when the signature is wrong.
    let example: String?
    let handler: @Sendable (Object, DBusMessage) throws -> DBusMessage?

    init(_ name: String, in inArgs: [BusArg] = [], out outArgs: [BusArg] = [], example: String? = nil,
         _ handler: @escaping @Sendable (Object, DBusMessage) throws -> DBusMessage?) {
        self.name = name
        self.inArgs = inArgs
        self.outArgs = outArgs
        self.example = example
        self.handler = handler
    }

    var inSignature: String { inArgs.map(\.type).joined() }

    /// "Submit(s prompt, a{sv} options)".
    var usage: String { "\(name)(" + inArgs.map { "\($0.type) \($0.name)" }.joined(separator: ", ") + ")" }

    func call(_ object: Object, _ msg: DBusMessage) throws -> DBusMessage? {
        guard msg.signature == inSignature else {
            throw AssayError.invalidArgument("\(name) takes (\(inSignature)) but got (\(msg.signature)); usage: \(usage)"
                                             + (example.map { ", e.g. " + $0 } ?? ""))
        }
        return try handler(object, msg)
    }
}

struct BusSignal: Sendable {
    let name: String
    let args: [BusArg]
    init(_ name: String, _ args: [BusArg] = []) {
        self.name = name
        self.args = args
    }
}

/// How a property's changes reach clients (the standard EmitsChangedSignal annotation).
enum PropertyChange: String, Sendable {
    /// PropertiesChanged carries the new value.
    case emits = "true"
    /// Never changes for the object's lifetime.
    case constant = "const"
    /// Changes without a signal: read it when needed.
    case silent = "false"
}

struct BusProperty<Object>: Sendable {
    let name: String
    let type: String
    let change: PropertyChange
    let get: @Sendable (Object) -> DBusValue
    /// nil: read-only. Gets the new value (already checked against `type`) and the call;
    /// returns the reply, or nil when it answers later.
    let set: (@Sendable (Object, DBusValue, DBusMessage) throws -> DBusMessage?)?

    init(_ name: String, _ type: String, _ change: PropertyChange, get: @escaping @Sendable (Object) -> DBusValue,
         set: (@Sendable (Object, DBusValue, DBusMessage) throws -> DBusMessage?)? = nil) {
        self.name = name
        self.type = type
        self.change = change
        self.get = get
        self.set = set
    }
}

/// Routing of one object's calls through its declared interfaces, `Properties` included.
enum BusDispatch {
    static let properties = "org.freedesktop.DBus.Properties"

    static func handle<Object>(_ interfaces: [BusInterface<Object>], object: Object, msg: DBusMessage,
                               interface: String?, member: String) throws -> DBusMessage? {
        if interface == properties { return try handleProperties(interfaces, object: object, msg: msg, member: member) }
        // Without an interface, the first declared method of that name (as libdbus-based
        // services resolve it).
        for iface in interfaces where interface == nil || interface == iface.name {
            if let m = iface.method(named: member) { return try m.call(object, msg) }
        }
        throw DBusError(name: "org.freedesktop.DBus.Error.UnknownMethod",
                        message: "no method \(member) in interface \(interface ?? "(none)")"
                            + (interface.map { i in interfaces.contains { $0.name == i } } == false
                               ? "; this object has " + interfaces.map(\.name).joined(separator: ", ") : ""))
    }

    static let get = BusArg("interface_name", "s"), property = BusArg("property_name", "s")

    static func handleProperties<Object>(_ interfaces: [BusInterface<Object>], object: Object, msg: DBusMessage,
                                         member: String) throws -> DBusMessage? {
        func requireSignature(_ expected: String, _ usage: String) throws {
            guard msg.signature == expected else {
                throw AssayError.invalidArgument("\(member) takes (\(expected)) but got (\(msg.signature)); usage: \(usage)")
            }
        }
        func find(_ name: String) throws -> [BusInterface<Object>] {
            if name.isEmpty { return interfaces }
            guard let i = interfaces.first(where: { $0.name == name }) else {
                throw DBusError(name: "org.freedesktop.DBus.Error.UnknownInterface",
                                message: "no interface \(name) here; try \(interfaces.map(\.name).joined(separator: ", "))")
            }
            return [i]
        }
        func lookup(_ iface: String, _ name: String) throws -> BusProperty<Object> {
            let candidates = try find(iface)
            for i in candidates { if let p = i.properties.first(where: { $0.name == name }) { return p } }
            throw DBusError(name: "org.freedesktop.DBus.Error.UnknownProperty",
                            message: "no property \(name) on \(candidates.map(\.name).joined(separator: ", ")); properties: "
                                + candidates.flatMap { $0.properties.map(\.name) }.sorted().joined(separator: ", "))
        }
        let args = msg.arguments(keepingFDs: false)
        switch member {
        case "Get":
            try requireSignature("ss", "Get(s interface, s property)")
            guard case .string(let iface) = args[0], case .string(let name) = args[1] else { throw AssayError.invalidArgument("Get(ss)") }
            let p = try lookup(iface, name)
            let r = msg.makeReturn()
            r.append(.variant(p.get(object)))
            return r
        case "GetAll":
            try requireSignature("s", "GetAll(s interface)")
            guard case .string(let iface) = args[0] else { throw AssayError.invalidArgument("GetAll(s)") }
            let r = msg.makeReturn()
            let found = (try? find(iface)) ?? []
            var all: [String: DBusValue] = [:]
            for i in found { all.merge(i.values(object)) { a, _ in a } }
            r.append(.vardict(all))
            return r
        case "Set":
            try requireSignature("ssv", "Set(s interface, s property, v value)")
            guard case .string(let iface) = args[0], case .string(let name) = args[1], case .variant(let value) = args[2] else {
                throw AssayError.invalidArgument("Set(ssv)")
            }
            let p = try lookup(iface, name)
            guard let set = p.set else {
                let writable = interfaces.flatMap { $0.properties.filter { $0.set != nil }.map(\.name) }
                throw DBusError(name: "org.freedesktop.DBus.Error.PropertyReadOnly",
                                message: "\(name) is read-only" + (writable.isEmpty ? "" : "; only \(writable.joined(separator: ", ")) can be set"))
            }
            guard value.signature == p.type else {
                throw AssayError.invalidArgument("\(name) takes a value of type \(p.type), got \(value.signature)")
            }
            return try set(object, value, msg)
        default:
            throw DBusError(name: "org.freedesktop.DBus.Error.UnknownMethod", message: "no method \(member) in interface \(properties)")
        }
    }
}
