import CAssayABI

/// A model's reference-image conditioning ("assay.model-reference.draft/1",
/// ext/draft/model-reference.h): the condition for (prompt, instruction, reference image),
/// which `velocity` then takes like any other. This is how a ReflectionFlow corrector is
/// driven: the flawed image and the reflection's text go in, the corrected image comes out.
public struct ModelReference: Sendable {
    /// The extension's id, for messages.
    public static let extensionID: String = ASSAY_EXT_MODEL_REFERENCE_DRAFT
    public let model: ModelPlugin
    /// The reference image size the model takes.
    public let imageWidth: Int
    public let imageHeight: Int
    /// Words of the instruction the model reads (more are ignored by the model).
    public let maxInstructionWords: Int
    private var ext: UnsafePointer<assay_model_reference_ext_t> {
        let p: UnsafePointer<assay_plugin_t> = model.instance.plugin
        return p.pointee.get_extension(p, ASSAY_EXT_MODEL_REFERENCE_DRAFT)!.assumingMemoryBound(to: assay_model_reference_ext_t.self)
    }

    /// nil when the model does not offer the extension (or offers it half filled in).
    public init?(_ model: ModelPlugin) {
        if let remote = model.instance.remote {
            guard let r = remote.model?.reference else { return nil }
            self.model = model
            imageWidth = r.imageWidth
            imageHeight = r.imageHeight
            maxInstructionWords = r.maxInstructionWords
            return
        }
        let p: UnsafePointer<assay_plugin_t> = model.instance.plugin
        guard let raw = p.pointee.get_extension(p, ASSAY_EXT_MODEL_REFERENCE_DRAFT) else { return nil }
        let e = raw.assumingMemoryBound(to: assay_model_reference_ext_t.self)
        guard let getInfo = e.pointee.get_info, e.pointee.encode_reference != nil else { return nil }
        var info = assay_model_reference_info_t()
        getInfo(p, &info)
        guard info.image_width > 0, info.image_height > 0 else { return nil }
        self.model = model
        imageWidth = Int(info.image_width)
        imageHeight = Int(info.image_height)
        maxInstructionWords = Int(info.max_instruction_words)
    }

    /// The condition (the model's condition_size floats) for `text` and `instruction` with
    /// `image` as the reference, which must have the size the model takes.
    public func encode(_ text: String, instruction: String, image: RGBImage, context: PluginCallContext) throws -> [Float] {
        guard image.width == imageWidth, image.height == imageHeight else {
            throw PluginCallError(pluginID: model.instance.id, code: ASSAY_ERR_INVALID_ARGUMENT,
                                  message: "takes \(imageWidth)x\(imageHeight) reference images, got \(image.width)x\(image.height)")
        }
        if let remote = model.instance.remote {
            return try remote.encodeReference(text, instruction: instruction, image: image, context: context)
        }
        var out = [Float](repeating: 0, count: model.info.conditionSize)
        let r = context.withCall(model.instance) { call in
            withCImages([image]) { img in
                text.withCString { t in
                    instruction.withCString { i in ext.pointee.encode_reference(model.instance.plugin, call, t, i, img, &out) }
                }
            }
        }
        try context.check(r, plugin: model.instance.id, operation: "encode_reference")
        return out
    }
}
