/// What a row of a search is conditioned on: its prompt, its negative prompt and its
/// guidance scale, and for a corrector model also an instruction and a reference image.
/// Rows of one batch may differ (one candidate continues with its own negative prompt while
/// the others do not), so conditions travel per row, as indices into the job's condition
/// table (`SearchToolkit.conditions`), which the manifest records.
public struct Condition: Hashable, Codable, Sendable {
    public var prompt: String
    public var negativePrompt: String?
    public var guidance: Double
    /// What to change (a reflection's feedback), for a model with reference conditioning
    /// (ext/draft/model-reference.h); nil otherwise.
    public var instruction: String?
    /// The node whose decoded image is the reference (the flawed image a corrector
    /// repairs); nil = an ordinary text condition. A node id, not pixels, so the manifest
    /// stays small and says which image it was.
    public var reference: Int?

    public init(prompt: String, negativePrompt: String? = nil, guidance: Double, instruction: String? = nil,
                reference: Int? = nil) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.guidance = guidance
        self.instruction = instruction
        self.reference = reference
    }

    /// Model rows one evaluation of this condition costs: 2 with guidance (positive and
    /// negative), 1 without.
    public var evaluationsPerSample: Int { guidance != 1 ? 2 : 1 }

    enum CodingKeys: String, CodingKey {
        case prompt, guidance, instruction
        case negativePrompt = "negative_prompt"
        case reference = "reference_node"
    }
}
