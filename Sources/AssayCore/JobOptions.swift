import AssayPluginHost

/// A job's options as the client gave them, validated but with defaults not yet applied
/// (defaults depend on the model, known only when the job starts).
///
/// Keys (D-Bus types): strategy s, strategy_options a{sv}, model s, models a{sv} (role →
/// model id, strings), verifiers as, reflector s, sampler s, sampler_options a{sv}, seed t,
/// steps u, guidance d, negative_prompt s, n u (shorthand for strategy_options n),
/// budget_nfe u, deadline_ms u, budget_verifier_calls u, budget_reflector_calls u,
/// target_score d, save_candidates b.
public struct JobOptions: Sendable {
    public var strategy: String?
    /// As the client sent them; the strategy checks them against its declarations.
    public var strategyOptions: [String: OptionValue] = [:]
    public var model: String?
    /// Model ids of roles other than `base`.
    public var models: [String: String] = [:]
    public var reflector: String?
    public var budgetReflectorCalls: Int?
    public var targetScore: Double?
    public var verifiers: [String]?
    public var sampler: String?
    public var samplerOptions: [(String, PluginOption)] = []
    public var seed: UInt64?
    public var steps: Int?
    public var guidance: Double?
    public var negativePrompt: String?
    public var n: Int?
    public var budgetNFE: Int?
    public var deadlineMs: Int?
    public var budgetVerifierCalls: Int?
    public var saveCandidates: Bool = false

    public init() {}

    public static let knownKeys = [
        "budget_nfe", "budget_reflector_calls", "budget_verifier_calls", "deadline_ms", "guidance", "model", "models",
        "n", "negative_prompt", "reflector", "sampler", "sampler_options", "save_candidates", "seed", "steps", "strategy",
        "strategy_options", "target_score", "verifiers",
    ]

    /// Limits that keep a typo from turning into a day-long job or a huge allocation.
    public enum Limits {
        public static let maxBudgetNFE = 10_000_000
        public static let maxN = 1024
        public static let maxSteps = 1000
        public static let maxGuidance = 50.0
        public static let maxDeadlineMs = 24 * 3600 * 1000
        public static let maxPromptBytes = 4096
    }

    /// Validates every key; the first problem is thrown as `invalidArgument`.
    public static func parse(_ raw: [String: OptionValue]) throws -> JobOptions {
        var o = JobOptions()
        for key in raw.keys.sorted() {
            let value = raw[key]!
            func bad(_ expected: String) -> AssayError {
                .invalidArgument("option '\(key)' must be \(expected), got \(value.typeDescription)")
            }
            func text() throws -> String {
                guard case .string(let s) = value else { throw bad("a string (s)") }
                return s
            }
            func number() throws -> Double {
                switch value {
                case .double(let d): return d
                case .unsigned(let u): return Double(u)
                case .signed(let s): return Double(s)
                default: throw bad("a double (d)")
                }
            }
            func unsigned(_ range: ClosedRange<Int>) throws -> Int {
                let v: Int
                switch value {
                case .unsigned(let u) where u <= UInt64(Int.max): v = Int(u)
                case .signed(let s) where s >= 0: v = Int(s)
                case .unsigned, .signed:
                    throw AssayError.invalidArgument("option '\(key)' must be between \(range.lowerBound) and \(range.upperBound)")
                default: throw bad("an unsigned integer (u)")
                }
                guard range.contains(v) else {
                    throw AssayError.invalidArgument("option '\(key)' is \(v); it must be between \(range.lowerBound) and \(range.upperBound)")
                }
                return v
            }
            switch key {
            case "strategy": o.strategy = try text()
            case "model": o.model = try text()
            case "sampler": o.sampler = try text()
            case "reflector": o.reflector = try text()
            case "strategy_options":
                guard case .dictionary(let d) = value else { throw bad("a dictionary (a{sv})") }
                o.strategyOptions = d
            case "models":
                guard case .dictionary(let d) = value else { throw bad("a dictionary of role to model id (a{sv})") }
                for (role, id) in d {
                    guard case .string(let s) = id else {
                        throw AssayError.invalidArgument("models['\(role)'] must be a model id (s), got \(id.typeDescription)")
                    }
                    guard role != "base" else {
                        throw AssayError.invalidArgument("models['base'] is the job's 'model' option: set 'model' instead")
                    }
                    o.models[role] = s
                }
            case "budget_reflector_calls": o.budgetReflectorCalls = try unsigned(1...Limits.maxBudgetNFE)
            case "target_score":
                let g = try number()
                guard g.isFinite else { throw AssayError.invalidArgument("option 'target_score' must be a finite number") }
                o.targetScore = g
            case "negative_prompt":
                let s = try text()
                guard s.utf8.count <= Limits.maxPromptBytes else {
                    throw AssayError.invalidArgument("negative_prompt is longer than \(Limits.maxPromptBytes) bytes")
                }
                o.negativePrompt = s
            case "verifiers":
                switch value {
                case .strings(let list): o.verifiers = list
                case .string(let one): o.verifiers = [one]
                default: throw bad("a string array (as)")
                }
                guard !(o.verifiers ?? []).isEmpty else {
                    throw AssayError.invalidArgument("option 'verifiers' is empty: leave it out for the default, or name at least one verifier")
                }
                guard Set(o.verifiers!).count == o.verifiers!.count else {
                    throw AssayError.invalidArgument("option 'verifiers' names a verifier twice")
                }
            case "seed":
                switch value {
                case .unsigned(let u): o.seed = u
                case .signed(let s) where s >= 0: o.seed = UInt64(s)
                default: throw bad("an unsigned 64-bit integer (t)")
                }
            case "steps": o.steps = try unsigned(1...Limits.maxSteps)
            case "n": o.n = try unsigned(1...Limits.maxN)
            case "budget_nfe": o.budgetNFE = try unsigned(1...Limits.maxBudgetNFE)
            case "budget_verifier_calls": o.budgetVerifierCalls = try unsigned(1...Limits.maxBudgetNFE)
            case "deadline_ms": o.deadlineMs = try unsigned(1...Limits.maxDeadlineMs)
            case "guidance":
                let g = try number()
                guard g.isFinite, g >= 0, g <= Limits.maxGuidance else {
                    throw AssayError.invalidArgument("option 'guidance' is \(g); it must be between 0 and \(Limits.maxGuidance) (1 = no guidance)")
                }
                o.guidance = g
            case "save_candidates":
                guard case .bool(let b) = value else { throw bad("a boolean (b)") }
                o.saveCandidates = b
            case "sampler_options":
                guard case .dictionary(let d) = value else { throw bad("a dictionary (a{sv})") }
                o.samplerOptions = try d.keys.sorted().map { k in
                    switch d[k]! {
                    case .string(let s): return (k, .string(s))
                    case .double(let x): return (k, .number(x))
                    case .unsigned(let u): return (k, .number(Double(u)))
                    case .signed(let s): return (k, .number(Double(s)))
                    case .bool(let b): return (k, .number(b ? 1 : 0))
                    default:
                        throw AssayError.invalidArgument("sampler_options['\(k)'] must be a string or a number, got \(d[k]!.typeDescription)")
                    }
                }
            default:
                throw AssayError.invalidArgument("unknown option '\(key)'; known options: \(knownKeys.joined(separator: ", "))")
            }
        }
        // `n` is shorthand for strategy_options n (best-of-n's size, and other strategies' n).
        if let n = o.n {
            if let given = o.strategyOptions["n"], given != .unsigned(UInt64(n)) {
                throw AssayError.invalidArgument("'n' and strategy_options['n'] disagree: give one of them")
            }
            o.strategyOptions["n"] = .unsigned(UInt64(n))
        }
        return o
    }

    /// Checks a prompt before a job is made for it.
    public static func validatePrompt(_ prompt: String) throws {
        if prompt.allSatisfy({ $0.isWhitespace }) {
            throw AssayError.invalidArgument("the prompt is empty: describe the image, e.g. \"a red circle\"")
        }
        if prompt.utf8.count > Limits.maxPromptBytes {
            throw AssayError.invalidArgument("the prompt is \(prompt.utf8.count) bytes; at most \(Limits.maxPromptBytes) are accepted")
        }
    }
}
