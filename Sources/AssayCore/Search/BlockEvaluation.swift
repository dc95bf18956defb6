import AssayPluginHost

/// The block-level access a caching sampler gets to one role's model (ext/blocks.h and the
/// draft ext/draft/blocks-rows.h), bound to a batch's conditions and the job's meter like
/// `Denoiser.velocity`: the prologue is the evaluation (metered, refused whole), blocks and
/// the epilogue cost no NFE, and the epilogue applies guidance exactly as `velocity` does,
/// so prologue + every block + epilogue equals `velocity` bit for bit.
///
/// Rows: the batch's positive rows, then one negative row per sample (rows = 2 x batch with
/// guidance, batch without). A batch that mixes guided and unguided rows has no such
/// layout: it gets no block access (`make` returns nil) and the sampler falls back to
/// `evaluate`.
///
/// The FLOPs of what really ran are counted on the denoiser (`flopsRun` beside
/// `flopsUncached`), so the compute a sampler saved is measured by the host, not claimed.
final class BlockEvaluation {
    let denoiser: Denoiser
    let blocks: ModelBlocks
    let conditions: [Condition]
    let batch: Int
    let rows: Int
    private var xs: [Float]
    private var ts: [Float]
    private var cs: [Float]
    private var vs: [Float]
    private var gatherH: [Float] = []
    private var gatherC: [Float] = []

    /// Nil when the model has no blocks or the rows mix guided and unguided conditions.
    static func make(_ d: Denoiser, conditions: [Condition]) -> BlockEvaluation? {
        guard let b = d.blocks, !conditions.isEmpty else { return nil }
        let guided = conditions.filter { $0.guidance != 1 }.count
        guard guided == 0 || guided == conditions.count else { return nil }
        return BlockEvaluation(d, b, conditions, guided: guided > 0)
    }

    private init(_ d: Denoiser, _ b: ModelBlocks, _ conditions: [Condition], guided: Bool) {
        denoiser = d
        blocks = b
        self.conditions = conditions
        batch = conditions.count
        rows = guided ? 2 * batch : batch
        let ss = d.info.sampleSize
        xs = [Float](repeating: 0, count: rows * ss)
        ts = [Float](repeating: 0, count: rows)
        cs = [Float](repeating: 0, count: rows * d.info.conditionSize)
        vs = [Float](repeating: 0, count: rows * ss)
    }

    private var chunk: Int { denoiser.info.maxBatch > 0 ? denoiser.info.maxBatch : rows }

    /// Prologue of every row at time t (metered: rows NFEs).
    func prologue(x: UnsafePointer<Float>, t: Float, hidden: UnsafeMutablePointer<Float>,
                  context ctx: UnsafeMutablePointer<Float>) throws {
        let d = denoiser, ss = d.info.sampleSize, csz = d.info.conditionSize
        try d.meter.reserveNFE(rows)
        let i = blocks.info
        d.countFlops(run: Double(rows) * (i.prologueFlops + i.epilogueFlops), uncached: Double(rows) * i.fullFlops)
        d.countMiddleFlops(run: 0, uncached: Double(rows) * max(0, i.fullFlops - i.prologueFlops - i.epilogueFlops))
        for r in 0..<rows {
            let c = conditions[r % batch]
            ts[r] = t
            let e = try d.encoding(c, negative: r >= batch)
            cs.replaceSubrange(r * csz..<(r + 1) * csz, with: e)
        }
        try xs.withUnsafeMutableBufferPointer { xb in
            for r in 0..<rows { (xb.baseAddress! + r * ss).update(from: x + (r % batch) * ss, count: ss) }
            try ts.withUnsafeBufferPointer { tb in
                try cs.withUnsafeBufferPointer { cb in
                    var row = 0
                    while row < rows {
                        let m = min(chunk, rows - row)
                        try blocks.prologue(n: m, x: xb.baseAddress! + row * ss, t: tb.baseAddress! + row,
                                            conditions: cb.baseAddress! + row * csz, hidden: hidden + row * i.hiddenSize,
                                            context: ctx + row * i.contextSize, context: d.context)
                        row += m
                    }
                }
            }
        }
    }

    /// Block `index` on every row.
    func block(_ index: Int, hidden: UnsafeMutablePointer<Float>, context ctx: UnsafePointer<Float>) throws {
        let i = blocks.info
        denoiser.countFlops(run: Double(rows) * i.blockFlops, uncached: 0)
        denoiser.countMiddleFlops(run: Double(rows) * i.blockFlops, uncached: 0)
        var row = 0
        while row < rows {
            let m = min(chunk, rows - row)
            try blocks.block(index, n: m, hidden: hidden + row * i.hiddenSize, context: ctx + row * i.contextSize,
                             context: denoiser.context)
            row += m
        }
    }

    /// Block `index` on the listed rows only: gathered into one batch, run, scattered back
    /// (batch invariance makes each row's result what a full call gives it).
    func blockRows(_ index: Int, _ list: UnsafeBufferPointer<UInt32>, hidden: UnsafeMutablePointer<Float>,
                   context ctx: UnsafePointer<Float>) throws {
        let i = blocks.info, hs = i.hiddenSize, cz = i.contextSize, n = list.count
        guard n > 0 else { return }
        denoiser.countFlops(run: Double(n) * i.blockFlops, uncached: 0)
        denoiser.countMiddleFlops(run: Double(n) * i.blockFlops, uncached: 0)
        if gatherH.count < n * hs { gatherH = [Float](repeating: 0, count: n * hs) }
        if gatherC.count < n * cz { gatherC = [Float](repeating: 0, count: n * cz) }
        try gatherH.withUnsafeMutableBufferPointer { hb in
            try gatherC.withUnsafeMutableBufferPointer { cb in
                let h = hb.baseAddress!, c = cb.baseAddress!
                for (k, r) in list.enumerated() {
                    (h + k * hs).update(from: hidden + Int(r) * hs, count: hs)
                    if cz > 0 { (c + k * cz).update(from: ctx + Int(r) * cz, count: cz) }
                }
                var row = 0
                while row < n {
                    let m = min(chunk, n - row)
                    try blocks.block(index, n: m, hidden: h + row * hs, context: c + row * cz, context: denoiser.context)
                    row += m
                }
                for (k, r) in list.enumerated() { (hidden + Int(r) * hs).update(from: h + k * hs, count: hs) }
            }
        }
    }

    /// Epilogue of every row, then guidance into the batch's velocities `v`.
    func epilogue(hidden: UnsafePointer<Float>, context ctx: UnsafePointer<Float>, v: UnsafeMutablePointer<Float>) throws {
        let i = blocks.info, ss = denoiser.info.sampleSize
        try vs.withUnsafeMutableBufferPointer { vb in
            let vp = vb.baseAddress!
            var row = 0
            while row < rows {
                let m = min(chunk, rows - row)
                try blocks.epilogue(n: m, hidden: hidden + row * i.hiddenSize, context: ctx + row * i.contextSize,
                                    v: vp + row * ss, context: denoiser.context)
                row += m
            }
            v.update(from: vp, count: batch * ss)
            guard rows > batch else { return }
            for r in 0..<batch {
                let g = Float(conditions[r].guidance)
                let pos = v + r * ss, neg = vp + (batch + r) * ss
                for k in 0..<ss { pos[k] = neg[k] + g * (pos[k] - neg[k]) }
            }
        }
    }
}
