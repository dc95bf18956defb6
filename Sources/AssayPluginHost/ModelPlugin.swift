import CAssayABI

/// What a model says about itself (`assay_model_info_t`).
public struct ModelInfo: Sendable, Equatable, Codable {
    public let channels: Int
    public let height: Int
    public let width: Int
    public let imageWidth: Int
    public let imageHeight: Int
    public let conditionSize: Int
    public let maxBatch: Int
    public let defaultSteps: Int
    public let defaultGuidance: Double
    public let scheduleShift: Double
    public var sampleSize: Int { channels * height * width }
}

/// A model plugin instance seen through `assay.model/1`. These calls do not count NFEs:
/// budgets are enforced one level up, by the core's model session.
public struct ModelPlugin: Sendable {
    public let instance: PluginInstance
    public let info: ModelInfo
    private var ext: UnsafePointer<assay_model_ext_t> { instance.interface.assumingMemoryBound(to: assay_model_ext_t.self) }

    public init?(_ instance: PluginInstance) {
        guard instance.kind == .model else { return nil }
        self.instance = instance
        if let remote = instance.remote {
            guard let m = remote.model else { return nil }
            info = m.info
            return
        }
        var raw = assay_model_info_t()
        instance.interface.assumingMemoryBound(to: assay_model_ext_t.self).pointee.get_info(instance.plugin, &raw)
        info = ModelInfo(channels: Int(raw.latent_channels), height: Int(raw.latent_height), width: Int(raw.latent_width),
                         imageWidth: Int(raw.image_width), imageHeight: Int(raw.image_height),
                         conditionSize: Int(raw.condition_size), maxBatch: Int(raw.max_batch),
                         defaultSteps: Int(raw.default_steps), defaultGuidance: Double(raw.default_guidance),
                         scheduleShift: Double(raw.schedule_shift))
    }

    public func encode(_ text: String, context: PluginCallContext) throws -> [Float] {
        if let remote = instance.remote { return try remote.encode(text, context: context) }
        var out = [Float](repeating: 0, count: info.conditionSize)
        let r = context.withCall(instance) { call in text.withCString { ext.pointee.encode(instance.plugin, call, $0, &out) } }
        try context.check(r, plugin: instance.id, operation: "encode")
        return out
    }

    /// Velocity of `n` samples; buffers as in the header.
    public func velocity(n: Int, x: UnsafePointer<Float>, t: UnsafePointer<Float>, conditions: UnsafePointer<Float>,
                         out: UnsafeMutablePointer<Float>, context: PluginCallContext) throws {
        if let remote = instance.remote {
            return try remote.velocity(n: n, x: x, t: t, conditions: conditions, out: out, context: context)
        }
        let r = context.withCall(instance) { ext.pointee.velocity(instance.plugin, $0, UInt32(n), x, t, conditions, out) }
        try context.check(r, plugin: instance.id, operation: "velocity")
    }

    public func decode(_ latents: [Float], count n: Int, context: PluginCallContext) throws -> [RGBImage] {
        precondition(latents.count == n * info.sampleSize)
        if let remote = instance.remote { return try remote.decode(latents, count: n, context: context) }
        let imageBytes = info.imageWidth * info.imageHeight * 3
        var rgb = [UInt8](repeating: 0, count: n * imageBytes)
        let r = context.withCall(instance) { call in latents.withUnsafeBufferPointer { ext.pointee.decode(instance.plugin, call, UInt32(n), $0.baseAddress, &rgb) } }
        try context.check(r, plugin: instance.id, operation: "decode")
        return (0..<n).map { RGBImage(width: info.imageWidth, height: info.imageHeight, pixels: Array(rgb[$0 * imageBytes..<($0 + 1) * imageBytes])) }
    }
}
