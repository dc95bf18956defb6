import CDBus
import Glibc

/// D-Bus type codes (libdbus defines them as cast macros that Swift cannot import).
enum TypeCode {
    static let byte = Int32(UInt8(ascii: "y"))
    static let bool = Int32(UInt8(ascii: "b"))
    static let int16 = Int32(UInt8(ascii: "n"))
    static let uint16 = Int32(UInt8(ascii: "q"))
    static let int32 = Int32(UInt8(ascii: "i"))
    static let uint32 = Int32(UInt8(ascii: "u"))
    static let int64 = Int32(UInt8(ascii: "x"))
    static let uint64 = Int32(UInt8(ascii: "t"))
    static let double = Int32(UInt8(ascii: "d"))
    static let string = Int32(UInt8(ascii: "s"))
    static let objectPath = Int32(UInt8(ascii: "o"))
    static let signature = Int32(UInt8(ascii: "g"))
    static let unixFD = Int32(UInt8(ascii: "h"))
    static let array = Int32(UInt8(ascii: "a"))
    static let variant = Int32(UInt8(ascii: "v"))
    static let structure = Int32(UInt8(ascii: "r"))
    static let dictEntry = Int32(UInt8(ascii: "e"))
    static let invalid: Int32 = 0
}

/// Message types (same reason as `TypeCode`).
public enum MessageType: Int32 {
    case methodCall = 1, methodReturn = 2, error = 3, signal = 4
}

/// An owned reference to a libdbus message.
public final class DBusMessage: @unchecked Sendable {
    public let raw: OpaquePointer

    /// Takes over one reference (the caller must not unref it).
    public init(taking raw: OpaquePointer) { self.raw = raw }

    /// Adds a reference; for messages borrowed from libdbus callbacks.
    public init(retaining raw: OpaquePointer) {
        self.raw = raw
        dbus_message_ref(raw)
    }

    deinit { dbus_message_unref(raw) }

    public static func methodCall(destination: String?, path: String, interface: String?, member: String) -> DBusMessage {
        DBusMessage(taking: dbus_message_new_method_call(destination, path, interface, member)!)
    }

    public static func signal(path: String, interface: String, member: String) -> DBusMessage {
        DBusMessage(taking: dbus_message_new_signal(path, interface, member)!)
    }

    /// Why an `append` failed (libdbus out of memory, or a descriptor it could not
    /// duplicate because the process is out of them), or nil. Such a message is never
    /// sent: `DBusConnection.send` answers the call it replies to with an error instead.
    public private(set) var appendFailure: (name: String, message: String)?
    /// The call this message answers (set by `makeReturn`), for that error.
    public private(set) var replyTo: DBusMessage?

    public func makeReturn() -> DBusMessage {
        let r = DBusMessage(taking: dbus_message_new_method_return(raw)!)
        r.replyTo = self
        return r
    }

    public func makeError(_ error: DBusError) -> DBusMessage {
        DBusMessage(taking: dbus_message_new_error(raw, error.name, error.message)!)
    }

    public var type: MessageType? { MessageType(rawValue: dbus_message_get_type(raw)) }
    public var path: String? { dbus_message_get_path(raw).map { String(cString: $0) } }
    public var interface: String? { dbus_message_get_interface(raw).map { String(cString: $0) } }
    public var member: String? { dbus_message_get_member(raw).map { String(cString: $0) } }
    public var sender: String? { dbus_message_get_sender(raw).map { String(cString: $0) } }
    public var errorName: String? { dbus_message_get_error_name(raw).map { String(cString: $0) } }
    public var signature: String { String(cString: dbus_message_get_signature(raw)) }
    public var noReplyExpected: Bool { dbus_message_get_no_reply(raw) != 0 }

    /// Whether the message carries Unix file descriptors.
    public var containsUnixFDs: Bool { dbus_message_contains_unix_fds(raw) != 0 }

    /// Reads every argument. libdbus hands out a fresh duplicate of each Unix fd on every
    /// read: with `keepingFDs` (the default) they belong to the caller, who must close
    /// them; without, they are closed here and read as `.unixFD(-1)`. A handler that has
    /// no use for descriptors reads without keeping them, or each message carrying one
    /// (say an `h` in a variant) would leak a descriptor.
    public func arguments(keepingFDs: Bool) -> [DBusValue] {
        let values = arguments()
        guard !keepingFDs, containsUnixFDs else { return values }
        for v in values { v.closeUnixFDs() }
        return values.map { $0.replacingUnixFDs(with: -1) }
    }

    /// Reads every argument. Unix fds come back owned by the caller.
    public func arguments() -> [DBusValue] {
        var iter = DBusMessageIter()
        guard dbus_message_iter_init(raw, &iter) != 0 else { return [] }
        var out: [DBusValue] = []
        repeat {
            if let v = DBusMessage.read(&iter) { out.append(v) }
        } while dbus_message_iter_next(&iter) != 0
        return out
    }

    /// Appends arguments. Running out of memory or of descriptors while doing so is not a
    /// crash: the failure is kept in `appendFailure`, later appends are skipped, and the
    /// message is not sent (see `appendFailure`).
    public func append(_ values: DBusValue...) { append(contentsOf: values) }

    public func append(contentsOf values: [DBusValue]) {
        guard appendFailure == nil else { return }
        var iter = DBusMessageIter()
        dbus_message_iter_init_append(raw, &iter)
        do {
            for v in values { try DBusMessage.write(v, to: &iter) }
        } catch let f as AppendFailure {
            appendFailure = (f.name, f.message)
        } catch {
            appendFailure = ("org.freedesktop.DBus.Error.NoMemory", "\(error)")
        }
    }

    struct AppendFailure: Error {
        let name: String, message: String
        static let noMemory = AppendFailure(name: "org.freedesktop.DBus.Error.NoMemory",
                                            message: "the daemon ran out of memory building the reply")
    }

    // MARK: reading

    static func read(_ iter: inout DBusMessageIter) -> DBusValue? {
        let type = dbus_message_iter_get_arg_type(&iter)
        func basic<T: BitwiseCopyable>(_ initial: T) -> T {
            var v = initial
            dbus_message_iter_get_basic(&iter, &v)
            return v
        }
        switch type {
        case TypeCode.byte: return .byte(basic(UInt8(0)))
        case TypeCode.bool: return .bool(basic(UInt32(0)) != 0)
        case TypeCode.int16: return .int16(basic(Int16(0)))
        case TypeCode.uint16: return .uint16(basic(UInt16(0)))
        case TypeCode.int32: return .int32(basic(Int32(0)))
        case TypeCode.uint32: return .uint32(basic(UInt32(0)))
        case TypeCode.int64: return .int64(basic(Int64(0)))
        case TypeCode.uint64: return .uint64(basic(UInt64(0)))
        case TypeCode.double: return .double(basic(Double(0)))
        case TypeCode.unixFD: return .unixFD(basic(Int32(-1)))
        case TypeCode.string, TypeCode.objectPath, TypeCode.signature:
            let p: UnsafePointer<CChar>? = basic(nil)
            let s = p.map { String(cString: $0) } ?? ""
            return type == TypeCode.string ? .string(s) : type == TypeCode.objectPath ? .objectPath(s) : .signature(s)
        case TypeCode.variant:
            var sub = DBusMessageIter()
            dbus_message_iter_recurse(&iter, &sub)
            guard let inner = read(&sub) else { return nil }
            return .variant(inner)
        case TypeCode.structure:
            var sub = DBusMessageIter()
            dbus_message_iter_recurse(&iter, &sub)
            var fields: [DBusValue] = []
            while dbus_message_iter_get_arg_type(&sub) != TypeCode.invalid {
                if let v = read(&sub) { fields.append(v) }
                dbus_message_iter_next(&sub)
            }
            return .structure(fields)
        case TypeCode.array:
            let sigPtr = dbus_message_iter_get_signature(&iter)!
            let fullSig = String(cString: sigPtr)
            dbus_free(sigPtr)
            let elementSig = String(fullSig.dropFirst())
            var sub = DBusMessageIter()
            dbus_message_iter_recurse(&iter, &sub)
            if elementSig.hasPrefix("{") {
                let inner = String(elementSig.dropFirst().dropLast())
                let keySig = String(inner.prefix(1))
                let valueSig = String(inner.dropFirst())
                var entries: [(DBusValue, DBusValue)] = []
                while dbus_message_iter_get_arg_type(&sub) == TypeCode.dictEntry {
                    var entry = DBusMessageIter()
                    dbus_message_iter_recurse(&sub, &entry)
                    let k = read(&entry)
                    dbus_message_iter_next(&entry)
                    let v = read(&entry)
                    if let k, let v { entries.append((k, v)) }
                    dbus_message_iter_next(&sub)
                }
                return .dictionary(keySignature: keySig, valueSignature: valueSig, entries)
            }
            var items: [DBusValue] = []
            while dbus_message_iter_get_arg_type(&sub) != TypeCode.invalid {
                if let v = read(&sub) { items.append(v) }
                dbus_message_iter_next(&sub)
            }
            return .array(elementSignature: elementSig, items)
        default:
            return nil
        }
    }

    // MARK: writing

    static func write(_ value: DBusValue, to iter: inout DBusMessageIter) throws {
        func basic<T: BitwiseCopyable>(_ type: Int32, _ v: T) throws {
            var copy = v
            errno = 0
            guard dbus_message_iter_append_basic(&iter, type, &copy) != 0 else {
                // libdbus duplicates a descriptor it appends; EMFILE/ENFILE is the usual cause.
                if type == TypeCode.unixFD {
                    let why = errno != 0 ? String(cString: strerror(errno)) : "out of memory"
                    throw AppendFailure(name: "org.freedesktop.DBus.Error.LimitsExceeded",
                                        message: "the daemon cannot pass a file descriptor now (\(why)); try again later")
                }
                throw AppendFailure.noMemory
            }
        }
        func text(_ type: Int32, _ s: String) throws {
            // libdbus aborts on embedded NULs or invalid paths; Swift strings are valid
            // UTF-8, so only NULs need care.
            let clean = s.contains("\0") ? String(s.filter { $0 != "\0" }) : s
            try clean.withCString { p in
                var ptr: UnsafePointer<CChar>? = p
                guard dbus_message_iter_append_basic(&iter, type, &ptr) != 0 else { throw AppendFailure.noMemory }
            }
        }
        func container(_ type: Int32, _ sig: String?, _ body: (inout DBusMessageIter) throws -> Void) throws {
            var sub = DBusMessageIter()
            let opened: dbus_bool_t
            if let sig { opened = sig.withCString { dbus_message_iter_open_container(&iter, type, $0, &sub) } }
            else { opened = dbus_message_iter_open_container(&iter, type, nil, &sub) }
            guard opened != 0 else { throw AppendFailure.noMemory }
            do { try body(&sub) } catch {
                dbus_message_iter_abandon_container(&iter, &sub)
                throw error
            }
            guard dbus_message_iter_close_container(&iter, &sub) != 0 else { throw AppendFailure.noMemory }
        }
        switch value {
        case .byte(let v): try basic(TypeCode.byte, v)
        case .bool(let v): try basic(TypeCode.bool, UInt32(v ? 1 : 0))
        case .int16(let v): try basic(TypeCode.int16, v)
        case .uint16(let v): try basic(TypeCode.uint16, v)
        case .int32(let v): try basic(TypeCode.int32, v)
        case .uint32(let v): try basic(TypeCode.uint32, v)
        case .int64(let v): try basic(TypeCode.int64, v)
        case .uint64(let v): try basic(TypeCode.uint64, v)
        case .double(let v): try basic(TypeCode.double, v)
        case .unixFD(let v): try basic(TypeCode.unixFD, v)
        case .string(let s): try text(TypeCode.string, s)
        case .objectPath(let s): try text(TypeCode.objectPath, s)
        case .signature(let s): try text(TypeCode.signature, s)
        case .variant(let inner):
            try container(TypeCode.variant, inner.signature) { try write(inner, to: &$0) }
        case .structure(let fields):
            try container(TypeCode.structure, nil) { sub in for f in fields { try write(f, to: &sub) } }
        case .array(let elementSig, let items):
            try container(TypeCode.array, elementSig) { sub in for item in items { try write(item, to: &sub) } }
        case .dictionary(let k, let v, let entries):
            try container(TypeCode.array, "{" + k + v + "}") { sub in
                for (key, val) in entries {
                    var entry = DBusMessageIter()
                    guard dbus_message_iter_open_container(&sub, TypeCode.dictEntry, nil, &entry) != 0 else { throw AppendFailure.noMemory }
                    do {
                        try write(key, to: &entry)
                        try write(val, to: &entry)
                    } catch {
                        dbus_message_iter_abandon_container(&sub, &entry)
                        throw error
                    }
                    guard dbus_message_iter_close_container(&sub, &entry) != 0 else { throw AppendFailure.noMemory }
                }
            }
        }
    }
}
