import AssayCore
import AssayDBus

/// Converts an `a{sv}` from a client into transport-independent option values, keeping
/// the wire type so the options parser can say "must be u, got s".
enum OptionConversion {
    static func options(from value: DBusValue) -> [String: OptionValue]? {
        guard case .dictionary("s", "v", let entries) = value else { return nil }
        var out: [String: OptionValue] = [:]
        for (k, v) in entries {
            guard case .string(let key) = k, case .variant(let inner) = v else { return nil }
            out[key] = convert(inner)
        }
        return out
    }

    static func convert(_ v: DBusValue) -> OptionValue {
        switch v {
        case .string(let s): return .string(s)
        case .bool(let b): return .bool(b)
        case .double(let d): return .double(d)
        case .byte(let x): return .unsigned(UInt64(x))
        case .uint16(let x): return .unsigned(UInt64(x))
        case .uint32(let x): return .unsigned(UInt64(x))
        case .uint64(let x): return .unsigned(x)
        case .int16(let x): return .signed(Int64(x))
        case .int32(let x): return .signed(Int64(x))
        case .int64(let x): return .signed(x)
        case .variant(let inner): return convert(inner)
        case .array("s", let items): return .strings(items.compactMap(\.stringValue))
        case .array("v", let items):
            // Python and gdbus sometimes send lists as av; accept all-string ones.
            let strings = items.compactMap(\.stringValue)
            return strings.count == items.count ? .strings(strings) : .other(signature: "av")
        case .dictionary("s", "v", _):
            return .dictionary(options(from: v) ?? [:])
        default: return .other(signature: v.signature)
        }
    }

    /// The reverse, for replaying a plan through Submit.
    static func dbus(_ o: OptionValue) -> DBusValue {
        switch o {
        case .string(let s): return .string(s)
        case .strings(let l): return .strings(l)
        case .unsigned(let u): return .uint64(u)
        case .signed(let s): return .int64(s)
        case .double(let d): return .double(d)
        case .bool(let b): return .bool(b)
        case .dictionary(let d): return .vardict(d.mapValues(dbus))
        case .other: return .string("")
        }
    }
}
