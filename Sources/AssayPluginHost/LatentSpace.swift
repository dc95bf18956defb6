import CAssayABI

extension PluginInstance {
    /// The latent-space id a model declares through the draft extension
    /// "assay.latent-space.draft/1" (ext/draft/latent-space.h), or nil when it declares
    /// none: such a model shares its latents with no other model.
    public var latentSpaceID: String? {
        if let remote { return remote.model?.latentSpace }
        guard let raw = plugin.pointee.get_extension(plugin, ASSAY_EXT_LATENT_SPACE_DRAFT) else { return nil }
        let ext = raw.assumingMemoryBound(to: assay_latent_space_ext_t.self)
        guard let f = ext.pointee.id, let s = f(plugin) else { return nil }
        let id = String(cString: s)
        return id.isEmpty ? nil : id
    }
}
