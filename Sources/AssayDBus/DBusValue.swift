import CDBus
import Glibc

/// A D-Bus value with its type, as read from or written to a message.
///
/// Containers carry their element signature so that empty arrays still have a type.
public indirect enum DBusValue: Equatable, Sendable {
    case byte(UInt8)
    case bool(Bool)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case double(Double)
    case string(String)
    case objectPath(String)
    case signature(String)
    /// A file descriptor. When read, the descriptor belongs to the reader (close it).
    case unixFD(Int32)
    case array(elementSignature: String, [DBusValue])
    /// `a{kv}`: entries keep their order.
    case dictionary(keySignature: String, valueSignature: String, [(DBusValue, DBusValue)])
    case variant(DBusValue)
    case structure([DBusValue])

    /// The D-Bus type signature of this value.
    public var signature: String {
        switch self {
        case .byte: return "y"
        case .bool: return "b"
        case .int16: return "n"
        case .uint16: return "q"
        case .int32: return "i"
        case .uint32: return "u"
        case .int64: return "x"
        case .uint64: return "t"
        case .double: return "d"
        case .string: return "s"
        case .objectPath: return "o"
        case .signature: return "g"
        case .unixFD: return "h"
        case .array(let element, _): return "a" + element
        case .dictionary(let k, let v, _): return "a{" + k + v + "}"
        case .variant: return "v"
        case .structure(let fields): return "(" + fields.map(\.signature).joined() + ")"
        }
    }

    public static func == (lhs: DBusValue, rhs: DBusValue) -> Bool {
        switch (lhs, rhs) {
        case (.byte(let a), .byte(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.int16(let a), .int16(let b)): return a == b
        case (.uint16(let a), .uint16(let b)): return a == b
        case (.int32(let a), .int32(let b)): return a == b
        case (.uint32(let a), .uint32(let b)): return a == b
        case (.int64(let a), .int64(let b)): return a == b
        case (.uint64(let a), .uint64(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.objectPath(let a), .objectPath(let b)): return a == b
        case (.signature(let a), .signature(let b)): return a == b
        case (.unixFD(let a), .unixFD(let b)): return a == b
        case (.array(let s1, let a), .array(let s2, let b)): return s1 == s2 && a == b
        case (.dictionary(let k1, let v1, let a), .dictionary(let k2, let v2, let b)):
            return k1 == k2 && v1 == v2 && a.count == b.count
                && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.variant(let a), .variant(let b)): return a == b
        case (.structure(let a), .structure(let b)): return a == b
        default: return false
        }
    }
}

extension DBusValue {
    /// Every Unix fd in this value, depth first.
    public var unixFDs: [Int32] {
        switch self {
        case .unixFD(let fd): return [fd]
        case .variant(let v): return v.unixFDs
        case .array(_, let items), .structure(let items): return items.flatMap(\.unixFDs)
        case .dictionary(_, _, let entries): return entries.flatMap { $0.0.unixFDs + $0.1.unixFDs }
        default: return []
        }
    }

    /// Closes every Unix fd in this value (those `>= 0`).
    public func closeUnixFDs() {
        for fd in unixFDs where fd >= 0 { close(fd) }
    }

    /// The same value with every Unix fd replaced by `fd`.
    func replacingUnixFDs(with fd: Int32) -> DBusValue {
        switch self {
        case .unixFD: return .unixFD(fd)
        case .variant(let v): return .variant(v.replacingUnixFDs(with: fd))
        case .array(let sig, let items): return .array(elementSignature: sig, items.map { $0.replacingUnixFDs(with: fd) })
        case .structure(let items): return .structure(items.map { $0.replacingUnixFDs(with: fd) })
        case .dictionary(let k, let v, let entries):
            return .dictionary(keySignature: k, valueSignature: v,
                               entries.map { ($0.0.replacingUnixFDs(with: fd), $0.1.replacingUnixFDs(with: fd)) })
        default: return self
        }
    }

    /// Builds an `a{sv}` dictionary, keys sorted for stable output.
    public static func vardict(_ entries: [String: DBusValue]) -> DBusValue {
        .dictionary(keySignature: "s", valueSignature: "v",
                    entries.sorted { $0.key < $1.key }.map { (.string($0.key), .variant($0.value)) })
    }

    /// Builds `as`.
    public static func strings(_ values: [String]) -> DBusValue {
        .array(elementSignature: "s", values.map { .string($0) })
    }

    /// Reads an `a{sv}` back into a Swift dictionary (variants unwrapped), or nil.
    public var vardictValue: [String: DBusValue]? {
        guard case .dictionary("s", "v", let entries) = self else { return nil }
        var out: [String: DBusValue] = [:]
        for (k, v) in entries {
            guard case .string(let key) = k else { return nil }
            if case .variant(let inner) = v { out[key] = inner } else { out[key] = v }
        }
        return out
    }

    public var stringValue: String? {
        switch self {
        case .string(let s), .objectPath(let s), .signature(let s): return s
        case .variant(let v): return v.stringValue
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .double(let d): return d
        case .byte(let v): return Double(v)
        case .int16(let v): return Double(v)
        case .uint16(let v): return Double(v)
        case .int32(let v): return Double(v)
        case .uint32(let v): return Double(v)
        case .int64(let v): return Double(v)
        case .uint64(let v): return Double(v)
        case .variant(let v): return v.doubleValue
        default: return nil
        }
    }

    public var boolValue: Bool? {
        switch self {
        case .bool(let b): return b
        case .variant(let v): return v.boolValue
        default: return nil
        }
    }

    public var arrayValue: [DBusValue]? {
        switch self {
        case .array(_, let items): return items
        case .variant(let v): return v.arrayValue
        default: return nil
        }
    }

    /// A readable rendering for CLIs and logs (not a D-Bus format).
    public var description: String {
        switch self {
        case .byte(let v): return String(v)
        case .bool(let v): return String(v)
        case .int16(let v): return String(v)
        case .uint16(let v): return String(v)
        case .int32(let v): return String(v)
        case .uint32(let v): return String(v)
        case .int64(let v): return String(v)
        case .uint64(let v): return String(v)
        case .double(let v): return String(v)
        case .string(let v), .objectPath(let v), .signature(let v): return v
        case .unixFD(let v): return "fd:\(v)"
        case .array(_, let items): return "[" + items.map(\.description).joined(separator: ", ") + "]"
        case .dictionary(_, _, let entries):
            return "{" + entries.map { "\($0.0.description): \($0.1.description)" }.joined(separator: ", ") + "}"
        case .variant(let v): return v.description
        case .structure(let f): return "(" + f.map(\.description).joined(separator: ", ") + ")"
        }
    }
}
