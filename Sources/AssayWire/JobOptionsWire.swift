import AssayCore
import AssayDBus

/// Job options on the wire: the one place that knows which D-Bus type each option key
/// has (seed `t`, counts `u`, guidance `d`, ...). The daemon decodes `Submit`'s `a{sv}`
/// with it; clients (assayctl's replay, tests) encode plans with it.
public enum JobOptionsWire {
    /// The `a{sv}` of a Submit call as transport-independent values. The wire type is kept
    /// (`.unsigned` vs `.string`...) so the options parser can say "must be u, got s".
    /// Nil when the value is not an `a{sv}`.
    public static func decode(_ value: DBusValue) -> [String: OptionValue]? {
        guard case .dictionary("s", "v", let entries) = value else { return nil }
        var out: [String: OptionValue] = [:]
        for (k, v) in entries {
            guard case .string(let key) = k, case .variant(let inner) = v else { return nil }
            out[key] = decodeValue(inner)
        }
        return out
    }

    static func decodeValue(_ v: DBusValue) -> OptionValue {
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
        case .variant(let inner): return decodeValue(inner)
        case .array("s", let items): return .strings(items.compactMap(\.stringValue))
        case .array("v", let items):
            // Python and gdbus sometimes send lists as av; accept all-string ones.
            let strings = items.compactMap(\.stringValue)
            return strings.count == items.count ? .strings(strings) : .other(signature: "av")
        case .dictionary("s", "v", _):
            return .dictionary(decode(v) ?? [:])
        default: return .other(signature: v.signature)
        }
    }

    /// Options (e.g. `JobPlan.asOptionValues`) as the `a{sv}` Submit expects: each key
    /// with its documented type; `sampler_options` numbers as doubles.
    public static func encode(_ options: [String: OptionValue]) -> [String: DBusValue] {
        Dictionary(uniqueKeysWithValues: options.map { ($0.key, encodeValue($0.value, key: $0.key)) })
    }

    static func encodeValue(_ v: OptionValue, key: String?) -> DBusValue {
        switch v {
        case .string(let s): return .string(s)
        case .strings(let l): return .strings(l)
        case .unsigned(let u):
            switch key {
            case "seed": return .uint64(u)
            case nil: return .double(Double(u)) // inside sampler_options: a number
            default: return .uint32(UInt32(clamping: u))
            }
        case .signed(let s): return encodeValue(.unsigned(UInt64(clamping: s)), key: key)
        case .double(let d): return .double(d)
        case .bool(let b): return .bool(b)
        case .dictionary(let d): return .vardict(d.mapValues { encodeValue($0, key: nil) })
        case .other: return .string("")
        }
    }
}
