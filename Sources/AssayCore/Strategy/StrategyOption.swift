import AssayPluginHost

/// One option a strategy declares: its name, type, range, default and what it means.
/// The planner checks every client value against it at Submit, so a strategy's `run`
/// only ever sees valid values, and `ListStrategies` shows them to scripts.
public struct StrategyOption: Sendable {
    public enum Kind: Sendable, Equatable {
        /// A whole number in the range (D-Bus `u`).
        case count(ClosedRange<Int>)
        /// A real number in the range (D-Bus `d`).
        case number(ClosedRange<Double>)
        /// One of these words (D-Bus `s`).
        case choice([String])
    }
    public let name: String
    public let kind: Kind
    public let defaultValue: PluginOption
    public let help: String

    public init(_ name: String, _ kind: Kind, default value: PluginOption, _ help: String) {
        self.name = name
        self.kind = kind
        self.defaultValue = value
        self.help = help
    }

    public static func count(_ name: String, _ range: ClosedRange<Int>, default d: Int, _ help: String) -> StrategyOption {
        StrategyOption(name, .count(range), default: .number(Double(d)), help)
    }
    public static func number(_ name: String, _ range: ClosedRange<Double>, default d: Double, _ help: String) -> StrategyOption {
        StrategyOption(name, .number(range), default: .number(d), help)
    }
    public static func choice(_ name: String, _ words: [String], default d: String, _ help: String) -> StrategyOption {
        StrategyOption(name, .choice(words), default: .string(d), help)
    }

    /// The D-Bus type a client sends.
    public var signature: String {
        switch kind { case .count: return "u"; case .number: return "d"; case .choice: return "s" }
    }

    /// Checks a client's value (as it arrived) and converts it, or says what to change.
    func parse(_ value: OptionValue, strategy: String) throws -> PluginOption {
        let what = "strategy option '\(name)' of '\(strategy)'"
        switch kind {
        case .count(let r):
            let v: Int
            switch value {
            case .unsigned(let u) where u <= UInt64(Int.max): v = Int(u)
            case .signed(let s): v = Int(s)
            case .double(let d) where d == d.rounded() && abs(d) < 1e15: v = Int(d)
            default: throw AssayError.invalidArgument("\(what) must be a whole number (u), got \(value.typeDescription)")
            }
            guard r.contains(v) else {
                throw AssayError.invalidArgument("\(what) is \(v); it must be between \(r.lowerBound) and \(r.upperBound) (\(help))")
            }
            return .number(Double(v))
        case .number(let r):
            let d: Double
            switch value {
            case .double(let x): d = x
            case .unsigned(let u): d = Double(u)
            case .signed(let s): d = Double(s)
            default: throw AssayError.invalidArgument("\(what) must be a number (d), got \(value.typeDescription)")
            }
            guard d.isFinite, r.contains(d) else {
                throw AssayError.invalidArgument("\(what) is \(d); it must be between \(r.lowerBound) and \(r.upperBound) (\(help))")
            }
            return .number(d)
        case .choice(let words):
            guard case .string(let s) = value else {
                throw AssayError.invalidArgument("\(what) must be a string (s), one of \(words.joined(separator: ", ")), got \(value.typeDescription)")
            }
            guard words.contains(s) else {
                throw AssayError.invalidArgument("\(what) is '\(s)'; it must be one of \(words.joined(separator: ", "))")
            }
            return .string(s)
        }
    }
}

/// A strategy's resolved options: every declared option with its value (client's or
/// default). Recorded in the plan, so a replay runs the same search.
public struct StrategyOptions: Sendable, Equatable, Codable {
    public var values: [String: PluginOption]
    public init(_ values: [String: PluginOption] = [:]) { self.values = values }

    public func int(_ name: String) -> Int {
        guard case .number(let d)? = values[name] else { preconditionFailure("strategy option '\(name)' is not a declared count") }
        return Int(d)
    }
    public func double(_ name: String) -> Double {
        guard case .number(let d)? = values[name] else { preconditionFailure("strategy option '\(name)' is not a declared number") }
        return d
    }
    public func string(_ name: String) -> String {
        guard case .string(let s)? = values[name] else { preconditionFailure("strategy option '\(name)' is not a declared choice") }
        return s
    }

    /// JSON as plain numbers and strings: {"n": 4, "potential": "max"}.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        var v: [String: PluginOption] = [:]
        for k in c.allKeys {
            if let d = try? c.decode(Double.self, forKey: k) { v[k.stringValue] = .number(d) } else {
                v[k.stringValue] = .string(try c.decode(String.self, forKey: k))
            }
        }
        values = v
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        for (k, v) in values {
            switch v {
            case .number(let d): try c.encode(d, forKey: AnyKey(k))
            case .string(let s): try c.encode(s, forKey: AnyKey(k))
            }
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// A model role a strategy uses. Every strategy has `base`, the job's `model`.
public struct StrategyRole: Sendable {
    /// What a role's model must be able to do; checked at Submit, before compute is spent.
    public enum Use: Sendable {
        /// It continues the base model's latents (a hand-over): both declare the same
        /// latent-space id (ext/draft/latent-space.h).
        case continuesLatents
        /// It generates from its own noise, conditioned on an image of the job and an
        /// instruction (a ReflectionFlow corrector): it has the reference extension
        /// (ext/draft/model-reference.h) and takes images of the base model's size.
        case correctsImages
    }
    public let name: String
    public let help: String
    public let use: Use
    /// Needed only when this strategy option has this value (nil: always needed).
    public let neededWhen: (option: String, value: String)?
    public init(_ name: String, _ help: String, use: Use = .continuesLatents, neededWhen: (option: String, value: String)? = nil) {
        self.name = name
        self.help = help
        self.use = use
        self.neededWhen = neededWhen
    }

    /// Whether a job with these options must name a model for this role.
    public func isNeeded(_ o: StrategyOptions) -> Bool {
        guard let w = neededWhen else { return true }
        return o.values[w.option] == .string(w.value)
    }
    public static let base = StrategyRole("base", "the model that makes the final images (the job's 'model')")
}
