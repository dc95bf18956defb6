import CAssayABI

/// Shapes and per-sample costs of a model's parts (`assay_model_blocks_info_t`).
public struct ModelBlocksInfo: Sendable, Equatable, Codable {
    public let blockCount: Int
    public let hiddenSize: Int
    public let contextSize: Int
    public let prologueFlops: Double
    public let blockFlops: Double
    public let epilogueFlops: Double
    /// FLOPs of one full evaluation of one row.
    public var fullFlops: Double { prologueFlops + Double(blockCount) * blockFlops + epilogueFlops }
}

/// A model's block-level interface, "assay.model-blocks/1" (ext/blocks.h): prologue, middle
/// blocks, epilogue, for caching samplers. Calls cost no NFE here; the core meters them.
public struct ModelBlocks: Sendable {
    public let instance: PluginInstance
    public let info: ModelBlocksInfo
    // The plugin's static extension table: immutable for the instance's life.
    nonisolated(unsafe) private let ext: UnsafePointer<assay_model_blocks_ext_t>!

    /// The model's blocks extension, or nil when it has none (or a malformed one).
    public init?(_ model: ModelPlugin) {
        if let remote = model.instance.remote {
            guard let b = remote.model?.blocks else { return nil }
            instance = model.instance
            info = b
            ext = nil
            return
        }
        let plugin: UnsafePointer<assay_plugin_t> = model.instance.plugin
        guard let raw = plugin.pointee.get_extension(plugin, ASSAY_EXT_MODEL_BLOCKS) else { return nil }
        let ext = raw.assumingMemoryBound(to: assay_model_blocks_ext_t.self)
        guard let getInfo = ext.pointee.get_info, ext.pointee.prologue != nil, ext.pointee.block != nil,
              ext.pointee.epilogue != nil else { return nil }
        var i = assay_model_blocks_info_t()
        getInfo(plugin, &i)
        guard i.block_count > 0, i.hidden_size > 0, i.hidden_size <= 64 * 1024 * 1024, i.context_size <= 64 * 1024 * 1024
        else { return nil }
        self.instance = model.instance
        self.ext = ext
        info = ModelBlocksInfo(blockCount: Int(i.block_count), hiddenSize: Int(i.hidden_size),
                               contextSize: Int(i.context_size), prologueFlops: i.prologue_flops,
                               blockFlops: i.block_flops, epilogueFlops: i.epilogue_flops)
    }

    public func prologue(n: Int, x: UnsafePointer<Float>, t: UnsafePointer<Float>, conditions: UnsafePointer<Float>,
                         hidden: UnsafeMutablePointer<Float>, context ctx: UnsafeMutablePointer<Float>,
                         context: PluginCallContext) throws {
        if let remote = instance.remote {
            return try remote.prologue(n: n, x: x, t: t, conditions: conditions, hidden: hidden, context: ctx, context: context)
        }
        let r = context.withCall(instance) { ext.pointee.prologue(instance.plugin, $0, UInt32(n), x, t, conditions, hidden, ctx) }
        try context.check(r, plugin: instance.id, operation: "prologue")
    }

    public func block(_ index: Int, n: Int, hidden: UnsafeMutablePointer<Float>, context ctx: UnsafePointer<Float>,
                      context: PluginCallContext) throws {
        if let remote = instance.remote { return try remote.block(index, n: n, hidden: hidden, context: ctx, context: context) }
        let r = context.withCall(instance) { ext.pointee.block(instance.plugin, $0, UInt32(index), UInt32(n), hidden, ctx) }
        try context.check(r, plugin: instance.id, operation: "block")
    }

    public func epilogue(n: Int, hidden: UnsafePointer<Float>, context ctx: UnsafePointer<Float>,
                         v: UnsafeMutablePointer<Float>, context: PluginCallContext) throws {
        if let remote = instance.remote { return try remote.epilogue(n: n, hidden: hidden, context: ctx, v: v, context: context) }
        let r = context.withCall(instance) { ext.pointee.epilogue(instance.plugin, $0, UInt32(n), hidden, ctx, v) }
        try context.check(r, plugin: instance.id, operation: "epilogue")
    }
}
