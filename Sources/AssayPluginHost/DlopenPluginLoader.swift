import CAssayABI
import Glibc
import Logging

/// Loads plugin files into the daemon's address space.
///
/// Each load copies the file to a unique private path, dlopens the copy and unlinks it at
/// once: glibc caches libraries by path and inode, so reloading a rebuilt file in place
/// would hand back the old code. The copy is also what makes a half-written file fail
/// softly (dlopen refuses it) instead of changing under a running job.
public final class DlopenPluginLoader: PluginLoader, @unchecked Sendable {
    private let privateDirectory: String
    private let instanceOptions: @Sendable (String) -> [(String, PluginOption)]

    /// - Parameters:
    ///   - privateDirectory: where copies are made; created if missing (mode 0700).
    ///   - instanceOptions: options for `init` of the plugin with a given id.
    public init(privateDirectory: String,
                instanceOptions: @escaping @Sendable (String) -> [(String, PluginOption)] = { _ in [] }) throws {
        try FileIO.makeDirectories(privateDirectory, mode: 0o700)
        self.privateDirectory = privateDirectory
        self.instanceOptions = instanceOptions
    }

    public func load(path: String, bytes: [UInt8], sha256 sha: String, generation: UInt64) throws -> LoadedFile {
        let base = path.split(separator: "/").last.map(String.init) ?? "plugin.so"
        let thread = PluginThread(label: "io.assay.plugin.\(generation)-\(base)")
        return try thread.sync {
            try loadOnManagementThread(path: path, bytes: bytes, sha: sha, generation: generation, thread: thread)
        }
    }

    private func refuse(_ path: String, _ reason: String) -> PluginLoadError {
        PluginLoadError(path: path, reason: reason)
    }

    private func loadOnManagementThread(path: String, bytes: [UInt8], sha: String, generation: UInt64,
                                        thread: PluginThread) throws -> LoadedFile {
        if let problem = ELFCheck.problem(bytes) { throw refuse(path, problem) }
        let base = path.split(separator: "/").last.map(String.init) ?? "plugin.so"
        let privatePath = "\(privateDirectory)/\(generation)-\(base)"
        do { try FileIO.write(bytes, to: privatePath, mode: 0o600) } catch {
            throw refuse(path, "cannot make a private copy: \(error)")
        }
        let handle = dlopen(privatePath, RTLD_NOW | RTLD_LOCAL)
        unlink(privatePath)
        guard let handle else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            throw refuse(path, "dlopen failed: \(why)")
        }
        var keepHandle = false
        defer { if !keepHandle { dlclose(handle) } }

        guard let symbol = dlsym(handle, ASSAY_ENTRY_SYMBOL) else {
            throw refuse(path, "no `assay_entry` symbol: not an Assay plugin (export `ASSAY_EXPORT const assay_plugin_entry_t assay_entry`)")
        }
        let entry = symbol.assumingMemoryBound(to: assay_plugin_entry_t.self)
        let v = entry.pointee.abi_version
        guard v.major == HostABI.major else {
            throw refuse(path, "ABI version \(v.major).\(v.minor).\(v.revision) is incompatible with this host's \(HostABI.string): the major must be \(HostABI.major); rebuild the plugin against this version's include/assay")
        }
        guard let entryInit = entry.pointee.`init`, entry.pointee.deinit != nil,
              let getFactory = entry.pointee.get_factory else {
            throw refuse(path, "malformed assay_entry: init, deinit and get_factory must all be set")
        }
        guard entryInit(path) else { throw refuse(path, "the plugin's entry init returned false (entry init failed)") }
        var initialised = true
        defer { if initialised && !keepHandle { entry.pointee.deinit?() } }

        guard let rawFactory = getFactory(ASSAY_PLUGIN_FACTORY_ID) else {
            throw refuse(path, "no \(ASSAY_PLUGIN_FACTORY_ID) factory")
        }
        let factory = rawFactory.assumingMemoryBound(to: assay_plugin_factory_t.self)
        guard let count = factory.pointee.get_plugin_count, let describe = factory.pointee.get_plugin_descriptor,
              let create = factory.pointee.create_plugin else {
            throw refuse(path, "malformed factory: get_plugin_count, get_plugin_descriptor and create_plugin must all be set")
        }
        let n = count(factory)
        guard n > 0 else { throw refuse(path, "the factory provides no plugins") }
        guard n <= 256 else { throw refuse(path, "the factory claims \(n) plugins; at most 256 are accepted") }

        let library = PluginLibrary(path: path, privatePath: privatePath, sha256: sha, generation: generation,
                                    handle: handle, entry: entry, thread: thread)
        keepHandle = true
        initialised = false
        var instances: [PluginInstance] = []
        var refused: [PluginRefusal] = []
        for index in 0..<n {
            switch makeInstance(library: library, factory: factory, describe: describe, create: create, index: index) {
            case .success(let instance): instances.append(instance)
            case .failure(let refusal): refused.append(refusal)
            }
        }
        return LoadedFile(path: path, sha256: sha, generation: generation, instances: instances, refused: refused)
    }

    private func makeInstance(
        library: PluginLibrary, factory: UnsafePointer<assay_plugin_factory_t>,
        describe: @convention(c) (UnsafePointer<assay_plugin_factory_t>?, UInt32) -> UnsafePointer<assay_plugin_descriptor_t>?,
        create: @convention(c) (UnsafePointer<assay_plugin_factory_t>?, UnsafePointer<assay_host_t>?, UnsafePointer<CChar>?) -> UnsafePointer<assay_plugin_t>?,
        index: UInt32
    ) -> Result<PluginInstance, PluginRefusal> {
        let path = library.path
        func fail(_ id: String, _ kind: PluginKind?, _ version: String, _ reason: String) -> Result<PluginInstance, PluginRefusal> {
            .failure(PluginRefusal(path: path, id: id, kind: kind, version: version, reason: reason))
        }
        guard let desc = describe(factory, index) else { return fail("", nil, "", "plugin #\(index): the factory returned no descriptor") }
        guard let idPtr = desc.pointee.id else { return fail("", nil, "", "plugin #\(index): descriptor has no id") }
        let id = String(cString: idPtr)
        let version = desc.pointee.version.map { String(cString: $0) } ?? ""
        let kind = PluginKind(abi: desc.pointee.kind)
        guard PluginInstance.isValidID(id) else {
            return fail("", kind, version, "plugin #\(index): id \"\(id)\" is invalid: use 1-64 characters of [a-z0-9._-]")
        }
        guard desc.pointee.abi_version.major == HostABI.major else {
            return fail(id, kind, version, "descriptor ABI major \(desc.pointee.abi_version.major) is incompatible with this host's \(HostABI.major)")
        }
        guard let kind else { return fail(id, nil, version, "unknown plugin kind \(desc.pointee.kind)") }
        guard desc.pointee.version != nil, desc.pointee.name != nil, desc.pointee.description != nil else {
            return fail(id, kind, version, "descriptor must set name, version and description (\"\" is fine)")
        }
        library.thread.instanceError = nil
        let host = HostStruct(pluginID: id)
        guard let plugin = create(factory, host.pointer, idPtr) else {
            host.free()
            return fail(id, kind, version, "create_plugin returned NULL" + (library.thread.instanceError.map { ": " + $0 } ?? ""))
        }
        guard let pluginInit = plugin.pointee.`init`, plugin.pointee.destroy != nil,
              let getExtension = plugin.pointee.get_extension else {
            // The instance is leaked (it cannot be destroyed), and so is its host struct,
            // which it may still hold.
            return fail(id, kind, version, "malformed plugin struct: init, destroy and get_extension must all be set (instance leaked)")
        }
        library.thread.instanceError = nil
        let result = withCOptions(instanceOptions(id)) { pluginInit(plugin, $0) }
        if result != ASSAY_OK {
            let why = library.thread.instanceError ?? "returned \(PluginCallError.codeName(result))"
            plugin.pointee.destroy?(plugin)
            host.free()
            return fail(id, kind, version, "init failed: \(why)")
        }
        guard let interface = getExtension(plugin, kind.extensionID) else {
            plugin.pointee.destroy?(plugin)
            host.free()
            return fail(id, kind, version, "a \(kind.rawValue) plugin must provide the \(kind.extensionID) extension")
        }
        let instance = PluginInstance(library: library, id: id, name: String(cString: desc.pointee.name),
                                      version: version, summary: String(cString: desc.pointee.description),
                                      kind: kind, plugin: plugin, interface: interface, host: host)
        if let problem = instance.validateInterface() {
            return fail(id, kind, version, problem)
        }
        return .success(instance)
    }
}

extension PluginInstance {
    static func isValidID(_ id: String) -> Bool {
        guard (1...64).contains(id.utf8.count) else { return false }
        return id.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 95 || $0 == 45 }
    }
}
