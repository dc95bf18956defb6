/// Turns a plugin file into live plugin instances.
///
/// This is the seam for isolation: today `DlopenPluginLoader` maps the library into the
/// daemon; a later loader can run the same file in a worker process and hand back
/// instances that forward calls over a pipe, without the registry or jobs changing.
public protocol PluginLoader: Sendable {
    /// Loads every plugin in the file at `path`, whose content is `bytes` with hash `sha256`
    /// (read and hashed once by the registry under its `PluginFilePolicy`: the loader maps
    /// exactly what was checked, never the path again). Throws `PluginLoadError` when the
    /// file as a whole is refused; individual plugins that fail come back in `refused`.
    func load(path: String, bytes: [UInt8], sha256: String, generation: UInt64) throws -> LoadedFile
}

/// What one load of one file produced.
public struct LoadedFile: Sendable {
    public let path: String
    public let sha256: String
    public let generation: UInt64
    public let instances: [PluginInstance]
    public let refused: [PluginRefusal]
}

/// A plugin (or a whole file) the host would not use, and why.
public struct PluginRefusal: Error, Sendable, Equatable {
    public let path: String
    /// The plugin id when the descriptor was readable, else "".
    public let id: String
    public let kind: PluginKind?
    public let version: String
    public let reason: String
}

/// A whole file refused: not a shared object, no entry symbol, wrong ABI major...
public struct PluginLoadError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}
