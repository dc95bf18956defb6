import Glibc
import CAssayABI

/// Lends images to C as `assay_image_t` for the duration of `body`.
func withCImages<R>(_ images: [RGBImage], _ body: (UnsafePointer<assay_image_t>) throws -> R) rethrows -> R {
    // Pin every pixel buffer, then build the descriptor array over the pinned pointers.
    func pin(_ i: Int, _ acc: [assay_image_t]) throws -> R {
        if i == images.count { return try acc.withUnsafeBufferPointer { try body($0.baseAddress!) } }
        return try images[i].pixels.withUnsafeBufferPointer { buf in
            var next = acc
            next.append(assay_image_t(width: UInt32(images[i].width), height: UInt32(images[i].height),
                                      stride: UInt32(images[i].width * 3), pixels: buf.baseAddress))
            return try pin(i + 1, next)
        }
    }
    return try pin(0, [])
}

/// Lends an array of optional strings to C as `const char *const *` (NULL entries kept).
func withCStringArray<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>) throws -> R) rethrows -> R {
    let owned = strings.map { $0.map { strdup($0)! } }
    defer { owned.forEach { free($0) } }
    let ptrs = owned.map { $0.map { UnsafePointer($0) } }
    return try ptrs.withUnsafeBufferPointer { try body($0.baseAddress!) }
}

/// A verifier plugin instance seen through `assay.verifier/1`.
public struct VerifierPlugin: Sendable {
    public let instance: PluginInstance
    private var ext: UnsafePointer<assay_verifier_ext_t> { instance.interface.assumingMemoryBound(to: assay_verifier_ext_t.self) }

    public init?(_ instance: PluginInstance) {
        guard instance.kind == .verifier else { return nil }
        self.instance = instance
    }

    /// Scores images; returns one score and one optional details JSON text per image.
    public func score(prompt: String, images: [RGBImage], context: PluginCallContext) throws -> (scores: [Double], details: [String?]) {
        guard !images.isEmpty else { return ([], []) }
        if let remote = instance.remote { return try checked(try remote.score(prompt: prompt, images: images, context: context)) }
        var scores = [Double](repeating: .nan, count: images.count)
        let details = TextCollector(count: images.count)
        let r = context.withCall(instance) { call in
            details.withTextOut { out in
                withCImages(images) { imgs in
                    prompt.withCString { ext.pointee.score(instance.plugin, call, $0, UInt32(images.count), imgs, &scores, out) }
                }
            }
        }
        try context.check(r, plugin: instance.id, operation: "score")
        return try checked((scores, details.texts))
    }

    private func checked(_ r: (scores: [Double], details: [String?])) throws -> (scores: [Double], details: [String?]) {
        if let bad = r.scores.firstIndex(where: { !$0.isFinite }) {
            throw PluginCallError(pluginID: instance.id, code: ASSAY_ERR_INTERNAL,
                                  message: "score \(bad) is not a finite number (\(r.scores[bad]))")
        }
        return r
    }
}

/// A reflector plugin instance seen through `assay.reflector/1`.
public struct ReflectorPlugin: Sendable {
    public let instance: PluginInstance
    private var ext: UnsafePointer<assay_reflector_ext_t> { instance.interface.assumingMemoryBound(to: assay_reflector_ext_t.self) }

    public init?(_ instance: PluginInstance) {
        guard instance.kind == .reflector else { return nil }
        self.instance = instance
    }

    /// One JSON object per image (see ext/reflector.h).
    public func reflect(prompt: String, images: [RGBImage], details: [String?]?, history: [String?]?,
                        context: PluginCallContext) throws -> [String] {
        guard !images.isEmpty else { return [] }
        if let remote = instance.remote {
            return try remote.reflect(prompt: prompt, images: images, details: details, history: history, context: context)
        }
        let out = TextCollector(count: images.count)
        let r = context.withCall(instance) { call in
            out.withTextOut { sink in
                withCImages(images) { imgs in
                    withCStringArray(details ?? []) { d in
                        withCStringArray(history ?? []) { h in
                            prompt.withCString {
                                ext.pointee.reflect(instance.plugin, call, $0, UInt32(images.count), imgs,
                                                    details == nil ? nil : d, history == nil ? nil : h, sink)
                            }
                        }
                    }
                }
            }
        }
        try context.check(r, plugin: instance.id, operation: "reflect")
        return try out.texts.enumerated().map { i, text in
            guard let text else {
                throw PluginCallError(pluginID: instance.id, code: ASSAY_ERR_INTERNAL, message: "no reflection set for image \(i)")
            }
            return text
        }
    }
}

extension ReflectorPlugin {
    private var views: UnsafePointer<assay_reflector_views_ext_t>? {
        guard instance.remote == nil else { return nil }
        let p: UnsafePointer<assay_plugin_t> = instance.plugin
        guard let raw = p.pointee.get_extension(p, ASSAY_EXT_REFLECTOR_VIEWS_DRAFT) else { return nil }
        let e = raw.assumingMemoryBound(to: assay_reflector_views_ext_t.self)
        return e.pointee.reflect_views == nil ? nil : e
    }

    /// True when the reflector reads several views of a lineage ("assay.reflector-views.draft/1").
    public var hasViews: Bool { instance.remote?.hasViews ?? (views != nil) }

    /// One JSON object per lineage; `images[i]` are lineage i's views, named by `names`
    /// (ext/draft/reflector-views.h).
    public func reflectViews(prompt: String, names: [String], images: [[RGBImage]], details: [String?]?,
                             context: PluginCallContext) throws -> [String] {
        if let remote = instance.remote, !images.isEmpty, remote.hasViews {
            return try remote.reflectViews(prompt: prompt, names: names, images: images, details: details, context: context)
        }
        guard let views, !images.isEmpty else { return [] }
        precondition(images.allSatisfy { $0.count == names.count })
        let out = TextCollector(count: images.count)
        let r = context.withCall(instance) { call in
            out.withTextOut { sink in
                withCImages(images.flatMap { $0 }) { imgs in
                    withCStringArray(names.map { Optional($0) }) { nm in
                        withCStringArray(details ?? []) { d in
                            prompt.withCString {
                                views.pointee.reflect_views(instance.plugin, call, $0, UInt32(images.count), UInt32(names.count),
                                                            nm, imgs, details == nil ? nil : d, nil, sink)
                            }
                        }
                    }
                }
            }
        }
        try context.check(r, plugin: instance.id, operation: "reflect_views")
        return try out.texts.enumerated().map { i, text in
            guard let text else {
                throw PluginCallError(pluginID: instance.id, code: ASSAY_ERR_INTERNAL, message: "no reflection set for lineage \(i)")
            }
            return text
        }
    }
}

extension PluginInstance {
    /// Checks that the kind's interface has every function it must have.
    func validateInterface() -> String? {
        let missing: Bool
        switch kind {
        case .model:
            let e = interface.assumingMemoryBound(to: assay_model_ext_t.self).pointee
            missing = e.get_info == nil || e.encode == nil || e.velocity == nil || e.decode == nil
        case .sampler:
            missing = interface.assumingMemoryBound(to: assay_sampler_ext_t.self).pointee.advance == nil
        case .verifier:
            missing = interface.assumingMemoryBound(to: assay_verifier_ext_t.self).pointee.score == nil
        case .reflector:
            missing = interface.assumingMemoryBound(to: assay_reflector_ext_t.self).pointee.reflect == nil
        }
        if missing { return "the \(kind.extensionID) interface has NULL functions" }
        if kind == .model, let m = ModelPlugin(self) {
            let i = m.info
            if i.channels == 0 || i.height == 0 || i.width == 0 || i.imageWidth == 0 || i.imageHeight == 0 || i.conditionSize == 0 {
                return "model info has a zero dimension (latent \(i.channels)x\(i.height)x\(i.width), image \(i.imageWidth)x\(i.imageHeight), condition \(i.conditionSize))"
            }
            if i.sampleSize > 64 * 1024 * 1024 || i.conditionSize > 16 * 1024 * 1024 {
                return "model info dimensions are implausibly large"
            }
        }
        return nil
    }
}
