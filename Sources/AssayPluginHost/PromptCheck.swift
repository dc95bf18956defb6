import CAssayABI

extension PluginInstance {
    /// Asks the plugin (through the optional "assay.prompt-check/1" extension) whether it
    /// can work with `prompt`. Throws the plugin's reason; returns false when the plugin
    /// does not offer the extension (nothing was checked).
    @discardableResult
    public func checkPrompt(_ prompt: String, context: PluginCallContext) throws -> Bool {
        if let remote { return try remote.checkPrompt(prompt, context: context) }
        guard let raw = plugin.pointee.get_extension(plugin, ASSAY_EXT_PROMPT_CHECK) else { return false }
        let ext = raw.assumingMemoryBound(to: assay_prompt_check_ext_t.self)
        guard let check = ext.pointee.check_prompt else { return false }
        let r = context.withCall(self) { call in prompt.withCString { check(plugin, call, $0) } }
        try context.check(r, plugin: id, operation: "check_prompt")
        return true
    }

    /// Whether the plugin offers "assay.prompt-check/1".
    var hasPromptCheck: Bool {
        if let remote { return remote.hasPromptCheck }
        guard let raw = plugin.pointee.get_extension(plugin, ASSAY_EXT_PROMPT_CHECK) else { return false }
        return raw.assumingMemoryBound(to: assay_prompt_check_ext_t.self).pointee.check_prompt != nil
    }
}
