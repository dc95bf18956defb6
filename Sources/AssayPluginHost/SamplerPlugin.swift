import CAssayABI

/// The host side of `assay_model_access_t`: how a sampler reaches the model. The core
/// supplies `evaluate`, which counts NFEs and may refuse.
public final class ModelAccess {
    public let batch: Int
    public let channels: Int
    public let height: Int
    public let width: Int
    public let nfePerEvaluation: Int
    /// Returns an ABI result code (ASSAY_OK, ASSAY_ERR_BUDGET, ...).
    let evaluate: (UnsafePointer<Float>, Float, UnsafeMutablePointer<Float>) -> Int32
    /// Block-level access to the same model, conditions and budget, offered to the sampler
    /// as "assay.model-blocks-access/1" and the draft "assay.model-blocks-rows.draft/1";
    /// nil when the model has no blocks extension.
    let blocks: BlockAccess?
    /// The C structs handed out by get_extension (valid during one `advance`).
    fileprivate var blocksRaw: UnsafeMutablePointer<assay_model_blocks_access_t>?
    fileprivate var rowsRaw: UnsafeMutablePointer<assay_model_blocks_rows_t>?

    public init(batch: Int, channels: Int, height: Int, width: Int, nfePerEvaluation: Int, blocks: BlockAccess? = nil,
                evaluate: @escaping (UnsafePointer<Float>, Float, UnsafeMutablePointer<Float>) -> Int32) {
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
        self.nfePerEvaluation = nfePerEvaluation
        self.blocks = blocks
        self.evaluate = evaluate
    }

    public static let ok = ASSAY_OK
    public static let refusedBudget = ASSAY_ERR_BUDGET
    public static let refusedCancelled = ASSAY_ERR_CANCELLED
    public static let failed = ASSAY_ERR_INTERNAL
}

/// The host side of `assay_model_blocks_access_t` (ext/blocks.h) and of the draft
/// `assay_model_blocks_rows_t` (ext/draft/blocks-rows.h): each function returns an ABI
/// result code; the core supplies them, metered like `ModelAccess.evaluate`.
public final class BlockAccess {
    public let info: ModelBlocksInfo
    /// Rows of every hidden/context buffer: batch x conditions.
    public let rows: Int
    let prologue: (UnsafePointer<Float>, Float, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Int32
    let block: (Int, UnsafeMutablePointer<Float>, UnsafePointer<Float>) -> Int32
    let blockRows: (Int, UnsafeBufferPointer<UInt32>, UnsafeMutablePointer<Float>, UnsafePointer<Float>) -> Int32
    let epilogue: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Int32

    public init(info: ModelBlocksInfo, rows: Int,
                prologue: @escaping (UnsafePointer<Float>, Float, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Int32,
                block: @escaping (Int, UnsafeMutablePointer<Float>, UnsafePointer<Float>) -> Int32,
                blockRows: @escaping (Int, UnsafeBufferPointer<UInt32>, UnsafeMutablePointer<Float>, UnsafePointer<Float>) -> Int32,
                epilogue: @escaping (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Int32) {
        self.info = info
        self.rows = rows
        self.prologue = prologue
        self.block = block
        self.blockRows = blockRows
        self.epilogue = epilogue
    }
}

private func modelAccess(_ data: UnsafeMutableRawPointer?) -> ModelAccess? {
    data.map { Unmanaged<ModelAccess>.fromOpaque($0).takeUnretainedValue() }
}

/// Builds the C structs of the block-level access for `access` (freed by `releaseBlocks`).
private func bindBlocks(_ access: ModelAccess) {
    guard let b = access.blocks else { return }
    let me = Unmanaged.passUnretained(access).toOpaque()
    let info = assay_model_blocks_info_t(
        block_count: UInt32(b.info.blockCount), hidden_size: UInt32(b.info.hiddenSize),
        context_size: UInt32(b.info.contextSize), tokens: 0, width: 0, reserved: 0,
        prologue_flops: b.info.prologueFlops, block_flops: b.info.blockFlops, epilogue_flops: b.info.epilogueFlops)
    let raw = UnsafeMutablePointer<assay_model_blocks_access_t>.allocate(capacity: 1)
    raw.initialize(to: assay_model_blocks_access_t(
        host_data: me, info: info, rows: UInt32(b.rows), reserved: 0,
        prologue: { m, x, t, hidden, context in
            guard let m, let x, let hidden, let context, let a = modelAccess(m.pointee.host_data)?.blocks else { return ASSAY_ERR_INVALID_ARGUMENT }
            return a.prologue(x, t, hidden, context)
        },
        block: { m, index, hidden, context in
            guard let m, let hidden, let context, let a = modelAccess(m.pointee.host_data)?.blocks,
                  Int(index) < a.info.blockCount else { return ASSAY_ERR_INVALID_ARGUMENT }
            return a.block(Int(index), hidden, context)
        },
        epilogue: { m, hidden, context, v in
            guard let m, let hidden, let context, let v, let a = modelAccess(m.pointee.host_data)?.blocks else { return ASSAY_ERR_INVALID_ARGUMENT }
            return a.epilogue(hidden, context, v)
        }))
    let rows = UnsafeMutablePointer<assay_model_blocks_rows_t>.allocate(capacity: 1)
    rows.initialize(to: assay_model_blocks_rows_t(
        host_data: me,
        block_rows: { m, index, count, list, hidden, context in
            guard let m, let hidden, let context, let a = modelAccess(m.pointee.host_data)?.blocks,
                  Int(index) < a.info.blockCount, count == 0 || list != nil else { return ASSAY_ERR_INVALID_ARGUMENT }
            if count == 0 { return ASSAY_OK }
            let l = UnsafeBufferPointer(start: list, count: Int(count))
            var seen = Set<UInt32>()
            for r in l where Int(r) >= a.rows || !seen.insert(r).inserted { return ASSAY_ERR_INVALID_ARGUMENT }
            return a.blockRows(Int(index), l, hidden, context)
        }))
    access.blocksRaw = raw
    access.rowsRaw = rows
}

private func releaseBlocks(_ access: ModelAccess) {
    access.blocksRaw?.deallocate()
    access.rowsRaw?.deallocate()
    access.blocksRaw = nil
    access.rowsRaw = nil
}

/// A sampler plugin instance seen through `assay.sampler/1`.
public struct SamplerPlugin: Sendable {
    public let instance: PluginInstance
    private var ext: UnsafePointer<assay_sampler_ext_t> { instance.interface.assumingMemoryBound(to: assay_sampler_ext_t.self) }

    public init?(_ instance: PluginInstance) {
        guard instance.kind == .sampler else { return nil }
        self.instance = instance
    }

    /// Integrates `x` in place from `from` to `to` through `access`.
    public func advance(_ x: inout [Float], from: Double, to: Double, access: ModelAccess,
                        options: [(String, PluginOption)], context: PluginCallContext) throws {
        if let remote = instance.remote {
            return try remote.advance(&x, from: from, to: to, access: access, options: options, context: context)
        }
        var raw = assay_model_access_t(
            host_data: Unmanaged.passUnretained(access).toOpaque(),
            batch: UInt32(access.batch), channels: UInt32(access.channels), height: UInt32(access.height),
            width: UInt32(access.width), nfe_per_evaluation: UInt32(access.nfePerEvaluation),
            evaluate: { model, x, t, v in
                guard let model, let x, let v, let data = model.pointee.host_data else { return ASSAY_ERR_INVALID_ARGUMENT }
                return Unmanaged<ModelAccess>.fromOpaque(data).takeUnretainedValue().evaluate(x, t, v)
            },
            get_extension: { model, id in
                guard let model, let id, let access = modelAccess(model.pointee.host_data) else { return nil }
                switch String(cString: id) {
                case ASSAY_EXT_MODEL_BLOCKS_ACCESS: return UnsafeRawPointer(access.blocksRaw)
                case ASSAY_EXT_MODEL_BLOCKS_ROWS_DRAFT: return UnsafeRawPointer(access.rowsRaw)
                default: return nil
                }
            })
        bindBlocks(access)
        defer { releaseBlocks(access) }
        let r = withExtendedLifetime(access) {
            context.withCall(instance) { call in
                withCOptions(options) { opts in
                    x.withUnsafeMutableBufferPointer { buf in
                        ext.pointee.advance(instance.plugin, call, &raw, buf.baseAddress, Float(from), Float(to), opts)
                    }
                }
            }
        }
        try context.check(r, plugin: instance.id, operation: "advance")
    }
}
