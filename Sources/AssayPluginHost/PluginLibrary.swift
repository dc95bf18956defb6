import CAssayABI
import Glibc
import Logging

/// One dlopen-ed generation of a plugin file.
///
/// Reference-counted by Swift: every `PluginInstance` holds its library, and a job holds
/// the instances it started with. When the registry swaps in a new generation, the old one
/// lives on until its last job finishes; then `deinit` calls the entry's `deinit` and
/// `dlclose` on its management thread, and the mapping disappears.
public final class PluginLibrary: @unchecked Sendable {
    /// The path the user installed.
    public let path: String
    /// The unique private copy that was actually mapped (already unlinked).
    public let privatePath: String
    public let sha256: String
    public let generation: UInt64
    public let abiVersion: String
    /// In process: the dlopen handle, the entry and the thread of `[main-thread]` calls
    /// (all nil for a library that lives in a worker process).
    let handle: UnsafeMutableRawPointer!
    let entry: UnsafePointer<assay_plugin_entry_t>!
    let thread: PluginThread!
    /// Out of process: the worker that holds the library (nil in process).
    public let worker: PluginWorker?

    private init(path: String, privatePath: String, sha256: String, generation: UInt64, abiVersion: String,
                 handle: UnsafeMutableRawPointer?, entry: UnsafePointer<assay_plugin_entry_t>?, thread: PluginThread?,
                 worker: PluginWorker?) {
        self.path = path
        self.privatePath = privatePath
        self.sha256 = sha256
        self.generation = generation
        self.abiVersion = abiVersion
        self.handle = handle
        self.entry = entry
        self.thread = thread
        self.worker = worker
    }

    /// A library mapped into this process.
    convenience init(path: String, privatePath: String, sha256: String, generation: UInt64,
                     handle: UnsafeMutableRawPointer, entry: UnsafePointer<assay_plugin_entry_t>, thread: PluginThread) {
        let v = entry.pointee.abi_version
        self.init(path: path, privatePath: privatePath, sha256: sha256, generation: generation,
                  abiVersion: "\(v.major).\(v.minor).\(v.revision)", handle: handle, entry: entry, thread: thread, worker: nil)
    }

    /// A library loaded in `worker`.
    convenience init(path: String, sha256: String, generation: UInt64, abiVersion: String, worker: PluginWorker) {
        self.init(path: path, privatePath: "", sha256: sha256, generation: generation, abiVersion: abiVersion,
                  handle: nil, entry: nil, thread: nil, worker: worker)
    }

    deinit {
        if let worker {
            worker.stop()
            HostServices.logger.debug("unloaded \(path) generation \(generation) (its workers stopped)")
            return
        }
        let handle = UInt(bitPattern: handle)
        let entry = UInt(bitPattern: entry)
        let name = privatePath
        thread.async {
            let e = UnsafePointer<assay_plugin_entry_t>(bitPattern: entry)!
            e.pointee.deinit?()
            dlclose(UnsafeMutableRawPointer(bitPattern: handle)!)
            HostServices.logger.debug("unloaded \(name)")
        }
    }
}

/// A created and initialised plugin instance, shared by every job that uses it.
public final class PluginInstance: @unchecked Sendable {
    public let library: PluginLibrary
    public let id: String
    public let name: String
    public let version: String
    public let summary: String
    public let kind: PluginKind
    /// In process: the plugin, the kind's interface struct (`assay_model_ext_t`, ...) and
    /// this instance's own host struct (`HostServices.makeHost`), given to create_plugin
    /// and in every call. All nil for an instance in a worker process (`remote`).
    let plugin: UnsafePointer<assay_plugin_t>!
    let interface: UnsafeRawPointer!
    let host: HostStruct!
    /// Out of process: how to reach the instance in its worker (nil in process).
    public let remote: RemotePlugin?

    private init(library: PluginLibrary, id: String, name: String, version: String, summary: String, kind: PluginKind,
                 plugin: UnsafePointer<assay_plugin_t>?, interface: UnsafeRawPointer?, host: HostStruct?, remote: RemotePlugin?) {
        self.library = library
        self.id = id
        self.name = name
        self.version = version
        self.summary = summary
        self.kind = kind
        self.plugin = plugin
        self.interface = interface
        self.host = host
        self.remote = remote
    }

    /// An instance in this process.
    convenience init(library: PluginLibrary, id: String, name: String, version: String, summary: String,
                     kind: PluginKind, plugin: UnsafePointer<assay_plugin_t>, interface: UnsafeRawPointer, host: HostStruct) {
        self.init(library: library, id: id, name: name, version: version, summary: summary, kind: kind,
                  plugin: plugin, interface: interface, host: host, remote: nil)
    }

    /// An instance living in a worker process.
    convenience init(library: PluginLibrary, id: String, name: String, version: String, summary: String, kind: PluginKind,
                     remote: RemotePlugin) {
        self.init(library: library, id: id, name: name, version: version, summary: summary, kind: kind,
                  plugin: nil, interface: nil, host: nil, remote: remote)
    }

    deinit {
        guard remote == nil else { return } // destroyed with its worker
        let p = UInt(bitPattern: plugin)
        let lib = library // keep the code mapped until destroy has run
        let host: HostStruct = self.host
        library.thread.async {
            let plugin = UnsafePointer<assay_plugin_t>(bitPattern: p)!
            plugin.pointee.destroy?(plugin)
            host.free()
            _ = lib
        }
    }
}

/// A host struct made for one plugin instance, with the pointers it was made with (the
/// struct itself may have been written over by the plugin).
struct HostStruct: @unchecked Sendable {
    let pointer: UnsafePointer<assay_host_t>
    private let strings: [UnsafeMutableRawPointer?]

    init(pluginID: String) {
        pointer = HostServices.makeHost(pluginID: pluginID)
        strings = [pointer.pointee.host_data, UnsafeMutableRawPointer(mutating: pointer.pointee.name),
                   UnsafeMutableRawPointer(mutating: pointer.pointee.version)]
    }

    func free() { HostServices.freeHost(pointer, strings: strings) }
}
