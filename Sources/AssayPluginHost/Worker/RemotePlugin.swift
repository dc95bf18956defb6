import CAssayABI

/// A plugin instance in a worker process: the calls the daemon makes on it, each one a
/// request to the worker (see `PluginWorker` for crashes, hangs and cancellation).
public final class RemotePlugin: Sendable {
    public let worker: PluginWorker
    let id: String
    let kind: PluginKind
    let hasViews: Bool
    let hasPromptCheck: Bool

    /// For a model: its info, latent space, blocks and reference conditioning.
    let model: WorkerModel?

    init(worker: PluginWorker, id: String, kind: PluginKind, hasViews: Bool, hasPromptCheck: Bool, model: WorkerModel? = nil) {
        self.worker = worker
        self.id = id
        self.kind = kind
        self.hasViews = hasViews
        self.hasPromptCheck = hasPromptCheck
        self.model = model
    }

    private func request(_ op: WorkerOp, prompt: String, images: [RGBImage], context: PluginCallContext) -> (WorkerRequest, [UInt8]) {
        var r = WorkerRequest(op: op)
        r.plugin = id
        r.jobID = context.jobID
        r.prompt = prompt
        r.widths = images.map(\.width)
        r.heights = images.map(\.height)
        var body = [UInt8]()
        body.reserveCapacity(images.reduce(0) { $0 + $1.pixels.count })
        for i in images { body += i.pixels }
        return (r, body)
    }

    func score(prompt: String, images: [RGBImage], context: PluginCallContext) throws -> (scores: [Double], details: [String?]) {
        let (r, body) = request(.score, prompt: prompt, images: images, context: context)
        let reply = try worker.call(r, body: body, pluginID: id, kind: kind, context: context)
        guard let scores = reply.scores, scores.count == images.count else {
            throw PluginCallError(pluginID: id, code: ASSAY_ERR_INTERNAL, message: "the worker returned \(reply.scores?.count ?? 0) scores for \(images.count) images")
        }
        return (scores, reply.texts ?? Array(repeating: nil, count: images.count))
    }

    func reflect(prompt: String, images: [RGBImage], details: [String?]?, history: [String?]?,
                 context: PluginCallContext) throws -> [String] {
        var (r, body) = request(.reflect, prompt: prompt, images: images, context: context)
        r.details = details
        r.history = history
        return try texts(try worker.call(r, body: body, pluginID: id, kind: kind, context: context), count: images.count)
    }

    func reflectViews(prompt: String, names: [String], images: [[RGBImage]], details: [String?]?,
                      context: PluginCallContext) throws -> [String] {
        var (r, body) = request(.reflectViews, prompt: prompt, images: images.flatMap { $0 }, context: context)
        r.viewNames = names
        r.details = details
        return try texts(try worker.call(r, body: body, pluginID: id, kind: kind, context: context), count: images.count)
    }

    func checkPrompt(_ prompt: String, context: PluginCallContext) throws -> Bool {
        guard hasPromptCheck else { return false }
        var r = WorkerRequest(op: .checkPrompt)
        r.plugin = id
        r.jobID = context.jobID
        r.prompt = prompt
        return try worker.call(r, body: [], pluginID: id, kind: kind, context: context).checked ?? false
    }

    private func texts(_ reply: WorkerReply, count: Int) throws -> [String] {
        let t = reply.texts ?? []
        guard t.count == count, t.allSatisfy({ $0 != nil }) else {
            throw PluginCallError(pluginID: id, code: ASSAY_ERR_INTERNAL, message: "the worker returned \(t.count) texts for \(count) items")
        }
        return t.map { $0! }
    }

    // MARK: models (tensors through the worker's shared arena)

    /// Byte offsets of consecutive float tensors of these lengths (64-byte aligned), and the total.
    private static func layout(_ floats: [Int]) -> ([Int], Int) {
        var offsets: [Int] = []
        var at = 0
        for n in floats {
            offsets.append(at)
            at += (n * 4 + 63) / 64 * 64
        }
        return (offsets, at)
    }

    private func modelCall(_ op: WorkerOp, n: Int, tensors: [Int], context: PluginCallContext, prompt: String = "",
                           index: Int = 0, body: [UInt8] = [], images: [RGBImage] = [], instruction: String = "",
                           fill: (SharedArena, [Int]) throws -> Void, read: (SharedArena, [Int]) throws -> Void) throws {
        var r = WorkerRequest(op: op)
        r.plugin = id
        r.jobID = context.jobID
        r.n = n
        r.index = index
        r.prompt = prompt
        r.instruction = instruction
        r.widths = images.map(\.width)
        r.heights = images.map(\.height)
        let (offsets, total) = RemotePlugin.layout(tensors)
        r.offsets = offsets
        _ = try withoutActuallyEscaping(fill) { fill in
            try withoutActuallyEscaping(read) { read in
                try worker.call(r, body: body + images.flatMap(\.pixels), pluginID: id, kind: kind, context: context,
                                arenaBytes: total, fill: { try fill($0, offsets) }, read: { try read($0, offsets) })
            }
        }
    }

    private var info: ModelInfo { model!.info }

    func encode(_ text: String, context: PluginCallContext) throws -> [Float] {
        let cs = info.conditionSize
        var out = [Float](repeating: 0, count: cs)
        try modelCall(.modelEncode, n: 1, tensors: [cs], context: context, prompt: text, fill: { _, _ in },
                      read: { a, o in try out.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: try a.floats(at: o[0], count: cs), count: cs) } })
        return out
    }

    func encodeReference(_ text: String, instruction: String, image: RGBImage, context: PluginCallContext) throws -> [Float] {
        let cs = info.conditionSize
        var out = [Float](repeating: 0, count: cs)
        try modelCall(.modelEncodeReference, n: 1, tensors: [cs], context: context, prompt: text, images: [image],
                      instruction: instruction, fill: { _, _ in },
                      read: { a, o in try out.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: try a.floats(at: o[0], count: cs), count: cs) } })
        return out
    }

    func velocity(n: Int, x: UnsafePointer<Float>, t: UnsafePointer<Float>, conditions: UnsafePointer<Float>,
                  out: UnsafeMutablePointer<Float>, context: PluginCallContext) throws {
        let ss = info.sampleSize, cs = info.conditionSize
        try modelCall(.modelVelocity, n: n, tensors: [n * ss, n, n * cs, n * ss], context: context, fill: { a, o in
            try a.floats(at: o[0], count: n * ss).update(from: x, count: n * ss)
            try a.floats(at: o[1], count: n).update(from: t, count: n)
            try a.floats(at: o[2], count: n * cs).update(from: conditions, count: n * cs)
        }, read: { a, o in out.update(from: try a.floats(at: o[3], count: n * ss), count: n * ss) })
    }

    func decode(_ latents: [Float], count n: Int, context: PluginCallContext) throws -> [RGBImage] {
        let ss = info.sampleSize, w = info.imageWidth, h = info.imageHeight, ib = w * h * 3
        var images: [RGBImage] = []
        try modelCall(.modelDecode, n: n, tensors: [n * ss, (n * ib + 3) / 4], context: context, fill: { a, o in
            try latents.withUnsafeBufferPointer { try a.floats(at: o[0], count: n * ss).update(from: $0.baseAddress!, count: n * ss) }
        }, read: { a, o in
            let p = try a.bytes(at: o[1], count: n * ib)
            images = (0..<n).map { RGBImage(width: w, height: h, pixels: Array(UnsafeBufferPointer(start: p + $0 * ib, count: ib))) }
        })
        return images
    }

    func prologue(n: Int, x: UnsafePointer<Float>, t: UnsafePointer<Float>, conditions: UnsafePointer<Float>,
                  hidden: UnsafeMutablePointer<Float>, context ctx: UnsafeMutablePointer<Float>, context: PluginCallContext) throws {
        let ss = info.sampleSize, cs = info.conditionSize, b = model!.blocks!
        let hs = n * b.hiddenSize, xs = n * b.contextSize
        try modelCall(.blocksPrologue, n: n, tensors: [n * ss, n, n * cs, hs, xs], context: context, fill: { a, o in
            try a.floats(at: o[0], count: n * ss).update(from: x, count: n * ss)
            try a.floats(at: o[1], count: n).update(from: t, count: n)
            try a.floats(at: o[2], count: n * cs).update(from: conditions, count: n * cs)
        }, read: { a, o in
            hidden.update(from: try a.floats(at: o[3], count: hs), count: hs)
            ctx.update(from: try a.floats(at: o[4], count: xs), count: xs)
        })
    }

    func block(_ index: Int, n: Int, hidden: UnsafeMutablePointer<Float>, context ctx: UnsafePointer<Float>,
               context: PluginCallContext) throws {
        let b = model!.blocks!, hs = n * b.hiddenSize, xs = n * b.contextSize
        try modelCall(.blocksBlock, n: n, tensors: [hs, xs], context: context, index: index, fill: { a, o in
            try a.floats(at: o[0], count: hs).update(from: hidden, count: hs)
            try a.floats(at: o[1], count: xs).update(from: ctx, count: xs)
        }, read: { a, o in hidden.update(from: try a.floats(at: o[0], count: hs), count: hs) })
    }

    func epilogue(n: Int, hidden: UnsafePointer<Float>, context ctx: UnsafePointer<Float>, v: UnsafeMutablePointer<Float>,
                  context: PluginCallContext) throws {
        let b = model!.blocks!, hs = n * b.hiddenSize, xs = n * b.contextSize, ss = info.sampleSize
        try modelCall(.blocksEpilogue, n: n, tensors: [hs, xs, n * ss], context: context, fill: { a, o in
            try a.floats(at: o[0], count: hs).update(from: hidden, count: hs)
            try a.floats(at: o[1], count: xs).update(from: ctx, count: xs)
        }, read: { a, o in v.update(from: try a.floats(at: o[2], count: n * ss), count: n * ss) })
    }

    // MARK: samplers

    /// A sampler's advance in its worker; the evaluations it asks for come back as
    /// callbacks and go through `access` here, metered as in process. The worker is not
    /// trusted: every index and row it names is checked before use.
    func advance(_ x: inout [Float], from: Double, to: Double, access: ModelAccess, options: [(String, PluginOption)],
                 context: PluginCallContext) throws {
        let n = access.batch, ss = access.channels * access.height * access.width
        let rows = access.blocks?.rows ?? 0
        let hs = rows * (access.blocks?.info.hiddenSize ?? 0), cs = rows * (access.blocks?.info.contextSize ?? 0)
        var r = WorkerRequest(op: .samplerAdvance)
        r.plugin = id
        r.jobID = context.jobID
        r.from = from
        r.to = to
        r.access = WorkerModelAccess(batch: n, channels: access.channels, height: access.height, width: access.width,
                                     nfePerEvaluation: access.nfePerEvaluation, blocks: access.blocks?.info, rows: rows)
        r.samplerOptions = options.map { WorkerOption(key: $0.0, value: $0.1) }
        let (offsets, total) = RemotePlugin.layout([n * ss, n * ss, n * ss, hs, cs, max(1, rows)])
        r.offsets = offsets
        let count = x.count
        precondition(count == n * ss)
        try x.withUnsafeMutableBufferPointer { xb in
            let xp = xb.baseAddress!
            _ = try worker.call(r, body: [], pluginID: id, kind: kind, context: context, arenaBytes: total, fill: { a in
                try a.floats(at: offsets[0], count: count).update(from: xp, count: count)
            }, read: { a in
                xp.update(from: try a.floats(at: offsets[0], count: count), count: count)
            }, callback: { q, a in
                guard let cbX = try? a.floats(at: offsets[1], count: n * ss), let cbV = try? a.floats(at: offsets[2], count: n * ss),
                      let hidden = try? a.floats(at: offsets[3], count: hs), let ctx = try? a.floats(at: offsets[4], count: cs),
                      let list = try? a.floats(at: offsets[5], count: max(1, rows)) else { return ASSAY_ERR_INTERNAL }
                switch q.op {
                case .callbackEvaluate:
                    return access.evaluate(cbX, q.t, cbV)
                case .callbackPrologue:
                    guard let b = access.blocks else { return ASSAY_ERR_INVALID_ARGUMENT }
                    return b.prologue(cbX, q.t, hidden, ctx)
                case .callbackBlock:
                    guard let b = access.blocks, q.index >= 0, q.index < b.info.blockCount else { return ASSAY_ERR_INVALID_ARGUMENT }
                    return b.block(q.index, hidden, ctx)
                case .callbackBlockRows:
                    guard let b = access.blocks, q.index >= 0, q.index < b.info.blockCount, q.n >= 0, q.n <= rows else {
                        return ASSAY_ERR_INVALID_ARGUMENT
                    }
                    let l = UnsafeBufferPointer(start: UnsafeMutableRawPointer(list).assumingMemoryBound(to: UInt32.self), count: q.n)
                    var seen = Set<UInt32>()
                    for row in l where Int(row) >= rows || !seen.insert(row).inserted { return ASSAY_ERR_INVALID_ARGUMENT }
                    return q.n == 0 ? ASSAY_OK : b.blockRows(q.index, l, hidden, ctx)
                case .callbackEpilogue:
                    guard let b = access.blocks else { return ASSAY_ERR_INVALID_ARGUMENT }
                    return b.epilogue(hidden, ctx, cbV)
                default:
                    return ASSAY_ERR_INVALID_ARGUMENT
                }
            })
        }
    }
}
