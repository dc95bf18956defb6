import AssayPluginHost
import CAssayABI

/// One model role of a job (`base`, `draft`, ...) as a metered, guided denoiser: every
/// evaluation is counted by the job's `BudgetMeter` before it happens, guidance is applied
/// here, and each text is encoded once per model and reused.
///
/// A batch may mix conditions: each row has its own time and condition. The rows of one
/// evaluation become ONE plugin call (in chunks of the model's max_batch): positive rows
/// first, then the negative rows of the guided ones. A guided row costs 2 NFEs, an unguided
/// one 1 (the header's definition: NFEs are model rows). This relies on the model's batch
/// invariance (ext/model.h): a row's velocity does not depend on its neighbours.
public final class Denoiser: @unchecked Sendable {
    public let role: String
    public let model: ModelPlugin
    public let meter: BudgetMeter
    public let context: PluginCallContext
    /// The model's latent-space id ("assay.latent-space.draft/1"), nil when it declares none.
    public let latentSpace: String?
    private var encodings: [String: [Float]] = [:]
    private var referenceEncodings: [ReferenceKey: [Float]] = [:]
    /// The model's reference conditioning (ext/draft/model-reference.h), nil without it.
    public let reference: ModelReference?
    /// The decoded image of a node, for conditions with a reference (set by the toolkit
    /// that owns the images).
    public var referenceImage: ((Int) -> RGBImage?)?
    private var xs: [Float] = []
    private var ts: [Float] = []
    private var cs: [Float] = []
    private var vs: [Float] = []
    /// Nanoseconds spent inside the plugin's `velocity` (for host-overhead measurement).
    public private(set) var pluginNs: UInt64 = 0
    /// The model's block-level interface (ext/blocks.h), nil when it has none.
    public let blocks: ModelBlocks?
    /// Model FLOPs actually run, and what the same evaluations cost with every block run
    /// (from the *_flops fields of ext/blocks.h; both 0 for a model without blocks). A
    /// caching sampler makes `flopsRun` smaller; their ratio is the compute it saved.
    public private(set) var flopsRun: Double = 0
    public private(set) var flopsUncached: Double = 0

    /// The same for the middle blocks alone (what a caching sampler can skip; the
    /// prologue and epilogue always run): DBCache's saving as cache-dit states it.
    public private(set) var middleFlopsRun: Double = 0
    public private(set) var middleFlopsUncached: Double = 0

    func countFlops(run: Double, uncached: Double) {
        flopsRun += run
        flopsUncached += uncached
    }

    func countMiddleFlops(run: Double, uncached: Double) {
        middleFlopsRun += run
        middleFlopsUncached += uncached
    }

    public var info: ModelInfo { model.info }

    public init(role: String, model: ModelPlugin, meter: BudgetMeter, context: PluginCallContext) {
        self.role = role
        self.model = model
        self.meter = meter
        self.context = context
        latentSpace = model.instance.latentSpaceID
        blocks = ModelBlocks(model)
        reference = ModelReference(model)
    }

    /// The encoding of `text`, computed once.
    public func encoding(_ text: String) throws -> [Float] {
        if let e = encodings[text] { return e }
        let e = try model.encode(text, context: context)
        encodings[text] = e
        return e
    }

    private struct ReferenceKey: Hashable {
        var text: String, instruction: String, node: Int
    }

    /// The encoding of a row's positive (or, `negative`, its guidance-negative) condition.
    /// With a reference image both branches see the same image: the positive is (prompt,
    /// instruction, image), the negative (negative prompt or "", "", image), as
    /// ext/draft/model-reference.h specifies.
    public func encoding(_ c: Condition, negative: Bool) throws -> [Float] {
        let text = negative ? (c.negativePrompt ?? "") : c.prompt
        guard let node = c.reference else { return try encoding(text) }
        let key = ReferenceKey(text: text, instruction: negative ? "" : (c.instruction ?? ""), node: node)
        if let e = referenceEncodings[key] { return e }
        guard let reference else {
            throw AssayError.failed("model '\(model.instance.id)' (role \(role)) cannot take a reference image: it has no \(ModelReference.extensionID) extension")
        }
        guard let image = referenceImage?(node) else {
            throw AssayError.failed("node \(node) has no decoded image to use as a reference")
        }
        let e = try reference.encode(key.text, instruction: key.instruction, image: image, context: context)
        referenceEncodings[key] = e
        return e
    }

    /// NFEs one evaluation of rows with these conditions costs.
    public static func nfe(_ conditions: [Condition]) -> Int {
        conditions.reduce(0) { $0 + $1.evaluationsPerSample }
    }

    /// Guided velocity of `conditions.count` rows at times `t` (one per row). Throws
    /// `BudgetRefusal` when the meter refuses (nothing is evaluated then) and
    /// `PluginCallError` when the plugin fails.
    public func velocity(x: UnsafePointer<Float>, t: [Float], conditions: [Condition],
                         out: UnsafeMutablePointer<Float>) throws {
        let n = conditions.count, ss = info.sampleSize, csz = info.conditionSize
        precondition(t.count == n)
        let guided = conditions.indices.filter { conditions[$0].guidance != 1 }
        let rows = n + guided.count
        try meter.reserveNFE(rows)
        if let b = blocks?.info { countFlops(run: Double(rows) * b.fullFlops, uncached: Double(rows) * b.fullFlops) }
        if ts.count < rows { ts = [Float](repeating: 0, count: rows) }
        if cs.count < rows * csz { cs = [Float](repeating: 0, count: rows * csz) }
        for r in 0..<n {
            ts[r] = t[r]
            cs.replaceSubrange(r * csz..<(r + 1) * csz, with: try encoding(conditions[r], negative: false))
        }
        for (k, r) in guided.enumerated() {
            ts[n + k] = t[r]
            let neg = try encoding(conditions[r], negative: true)
            cs.replaceSubrange((n + k) * csz..<(n + k + 1) * csz, with: neg)
        }
        if guided.isEmpty {
            try evaluate(rows: rows, x: x, out: out)
            return
        }
        if xs.count < rows * ss {
            xs = [Float](repeating: 0, count: rows * ss)
            vs = [Float](repeating: 0, count: rows * ss)
        }
        try xs.withUnsafeMutableBufferPointer { xb in
            try vs.withUnsafeMutableBufferPointer { vb in
                let xp = xb.baseAddress!, vp = vb.baseAddress!
                xp.update(from: x, count: n * ss)
                for (k, r) in guided.enumerated() { (xp + (n + k) * ss).update(from: x + r * ss, count: ss) }
                try evaluate(rows: rows, x: xp, out: vp)
                out.update(from: vp, count: n * ss)
                for (k, r) in guided.enumerated() {
                    let g = Float(conditions[r].guidance)
                    let pos = out + r * ss, neg = vp + (n + k) * ss
                    for i in 0..<ss { pos[i] = neg[i] + g * (pos[i] - neg[i]) }
                }
            }
        }
    }

    /// Calls the plugin on `rows` rows (conditions and times from the scratch buffers), in
    /// chunks of the model's max_batch.
    private func evaluate(rows: Int, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) throws {
        let ss = info.sampleSize, csz = info.conditionSize
        let chunk = info.maxBatch > 0 ? info.maxBatch : rows
        var row = 0
        while row < rows {
            let m = min(chunk, rows - row)
            let p0 = DispatchTimeClock.now()
            try ts.withUnsafeBufferPointer { tb in
                try cs.withUnsafeBufferPointer { cb in
                    try model.velocity(n: m, x: x + row * ss, t: tb.baseAddress! + row,
                                       conditions: cb.baseAddress! + row * csz, out: out + row * ss, context: context)
                }
            }
            pluginNs += DispatchTimeClock.now() - p0
            row += m
        }
    }
}
