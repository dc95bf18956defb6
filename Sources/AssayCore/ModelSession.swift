import AssayPluginHost

/// A job's view of its model: conditions encoded once, guidance applied, and every
/// evaluation counted by the job's `BudgetMeter` before it happens.
///
/// Guided evaluation of n samples is ONE plugin call on a batch of 2n ([positive; negative]
/// conditions), which costs 2n NFEs (the header's definition). Scratch buffers are reused
/// across steps so the host adds no allocation per evaluation.
public final class ModelSession: @unchecked Sendable {
    public let model: ModelPlugin
    public let meter: BudgetMeter
    public let context: PluginCallContext
    public let guidance: Double
    private let positive: [Float]
    private let negative: [Float]
    private var xs: [Float] = []
    private var ts: [Float] = []
    private var cs: [Float] = []
    private var vs: [Float] = []
    /// Nanoseconds spent inside the plugin's `velocity` (for host-overhead measurement).
    public private(set) var pluginNs: UInt64 = 0

    public var isGuided: Bool { guidance != 1 }
    public var conditionsPerSample: Int { isGuided ? 2 : 1 }
    public var info: ModelInfo { model.info }

    public init(model: ModelPlugin, prompt: String, negativePrompt: String?, guidance: Double,
                meter: BudgetMeter, context: PluginCallContext) throws {
        self.model = model
        self.meter = meter
        self.context = context
        self.guidance = guidance
        positive = try model.encode(prompt, context: context)
        negative = guidance != 1 ? try model.encode(negativePrompt ?? "", context: context) : []
    }

    /// Guided velocity of `n` samples at time `t`. Throws `BudgetRefusal` when the meter
    /// refuses (nothing is evaluated then) and `PluginCallError` when the plugin fails.
    /// Without guidance the plugin reads `x` and writes `out` directly; with guidance the
    /// batch is doubled into scratch buffers and combined afterwards.
    public func velocity(x: UnsafePointer<Float>, n: Int, t: Float, out: UnsafeMutablePointer<Float>) throws {
        let ss = info.sampleSize, csz = info.conditionSize
        let rows = n * conditionsPerSample
        try meter.reserveNFE(rows)
        if ts.count != rows {
            ts = [Float](repeating: 0, count: rows)
            cs = [Float](repeating: 0, count: rows * csz)
            for r in 0..<rows {
                cs.replaceSubrange(r * csz..<(r + 1) * csz, with: r < n ? positive : negative)
            }
            if isGuided {
                xs = [Float](repeating: 0, count: rows * ss)
                vs = [Float](repeating: 0, count: rows * ss)
            }
        }
        for r in 0..<rows { ts[r] = t }
        if isGuided {
            try xs.withUnsafeMutableBufferPointer { xb in
                try vs.withUnsafeMutableBufferPointer { vb in
                    xb.baseAddress!.update(from: x, count: n * ss)
                    (xb.baseAddress! + n * ss).update(from: x, count: n * ss)
                    try evaluate(rows: rows, x: xb.baseAddress!, out: vb.baseAddress!)
                    let g = Float(guidance), count = n * ss
                    for i in 0..<count {
                        let vp = vb[i], vn = vb[count + i]
                        out[i] = vn + g * (vp - vn)
                    }
                }
            }
        } else {
            try evaluate(rows: rows, x: x, out: out)
        }
    }

    /// Calls the plugin on `rows` samples (conditions and times from the scratch buffers),
    /// in chunks of the model's max_batch.
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
