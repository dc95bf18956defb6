/// A job option as it arrived, independent of the transport (D-Bus variants today).
/// The wire type is kept so that a wrong type is an error, not a silent conversion.
public enum OptionValue: Sendable, Equatable {
    case string(String)
    case strings([String])
    case unsigned(UInt64)
    case signed(Int64)
    case double(Double)
    case bool(Bool)
    case dictionary([String: OptionValue])
    /// Anything else, with its D-Bus signature for the error message.
    case other(signature: String)

    var typeDescription: String {
        switch self {
        case .string: return "a string (s)"
        case .strings: return "a string array (as)"
        case .unsigned: return "an unsigned integer"
        case .signed: return "a signed integer"
        case .double: return "a double (d)"
        case .bool: return "a boolean (b)"
        case .dictionary: return "a dictionary (a{sv})"
        case .other(let sig): return "a value of type \(sig)"
        }
    }
}
