/// What a row of a search is conditioned on: its prompt, its negative prompt and its
/// guidance scale. Rows of one batch may differ (one candidate continues with its own
/// negative prompt while the others do not), so conditions travel per row, as indices
/// into the job's condition table (`SearchToolkit.conditions`), which the manifest records.
public struct Condition: Hashable, Codable, Sendable {
    public var prompt: String
    public var negativePrompt: String?
    public var guidance: Double

    public init(prompt: String, negativePrompt: String? = nil, guidance: Double) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.guidance = guidance
    }

    /// Model rows one evaluation of this condition costs: 2 with guidance (positive and
    /// negative), 1 without.
    public var evaluationsPerSample: Int { guidance != 1 ? 2 : 1 }

    enum CodingKeys: String, CodingKey {
        case prompt, guidance
        case negativePrompt = "negative_prompt"
    }
}
