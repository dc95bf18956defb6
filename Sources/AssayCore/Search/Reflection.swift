import FoundationEssentials

/// The fields of a reflector's answer (one JSON object, ext/reflector.h) that strategies act
/// on. Parsed with FoundationEssentials: the daemon does not link the rest of Foundation
/// (and its ICU data) for this.
public struct Reflection: Decodable, Sendable, Equatable {
    public var feedback: String?
    public var negativePrompt: String?
    public var revisedPrompt: String?

    enum CodingKeys: String, CodingKey {
        case feedback
        case negativePrompt = "negative_prompt"
        case revisedPrompt = "revised_prompt"
    }

    public init(feedback: String? = nil, negativePrompt: String? = nil, revisedPrompt: String? = nil) {
        self.feedback = feedback
        self.negativePrompt = negativePrompt
        self.revisedPrompt = revisedPrompt
    }

    /// The reflection in `json`; a field that is missing, empty or of another type is nil
    /// (so is every field of text that is not a JSON object).
    public init(json: String) {
        struct Loose: Decodable {
            var feedback: String?, negativePrompt: String?, revisedPrompt: String?
            enum CodingKeys: String, CodingKey {
                case feedback, negativePrompt = "negative_prompt", revisedPrompt = "revised_prompt"
            }
            init(from d: Decoder) throws {
                let c = try d.container(keyedBy: CodingKeys.self)
                feedback = try? c.decodeIfPresent(String.self, forKey: .feedback)
                negativePrompt = try? c.decodeIfPresent(String.self, forKey: .negativePrompt)
                revisedPrompt = try? c.decodeIfPresent(String.self, forKey: .revisedPrompt)
            }
        }
        let l = try? JSONDecoder().decode(Loose.self, from: Data(json.utf8))
        func nonEmpty(_ s: String??) -> String? { (s ?? nil).flatMap { $0.isEmpty ? nil : $0 } }
        self.init(feedback: nonEmpty(l?.feedback), negativePrompt: nonEmpty(l?.negativePrompt),
                  revisedPrompt: nonEmpty(l?.revisedPrompt))
    }
}
