import CAssayABI
import Glibc
import Logging

/// The per-call context behind `assay_call_t`: which job a plugin call serves, whether
/// that job is cancelled, and the error the plugin reported. One per job (or per
/// management operation); used from one thread at a time.
public final class PluginCallContext: @unchecked Sendable {
    public let jobID: UInt64
    private let cancelled: @Sendable () -> Bool
    fileprivate var lastError: String?

    public init(jobID: UInt64, isCancelled: @escaping @Sendable () -> Bool = { false }) {
        self.jobID = jobID
        self.cancelled = isCancelled
    }

    public var isCancelled: Bool { cancelled() }

    /// Builds the C call struct for a call into `instance` for the duration of `body`; it
    /// lends the instance its own host struct.
    func withCall<R>(_ instance: PluginInstance, _ body: (UnsafePointer<assay_call_t>) throws -> R) rethrows -> R {
        lastError = nil
        var call = assay_call_t(host: instance.host.pointer, job_id: jobID,
                                host_data: Unmanaged.passUnretained(self).toOpaque())
        return try withUnsafePointer(to: &call) { try body($0) }
    }

    /// Turns a result code into a thrown `PluginCallError` carrying the plugin's reason.
    func check(_ result: Int32, plugin: String, operation: String) throws {
        guard result != ASSAY_OK else { return }
        let reason = lastError ?? "\(operation) failed with \(PluginCallError.codeName(result))"
        throw PluginCallError(pluginID: plugin, code: result, message: reason)
    }
}

/// A plugin function returned an error.
public struct PluginCallError: Error, CustomStringConvertible, Sendable {
    public let pluginID: String
    public let code: Int32
    public let message: String

    public init(pluginID: String, code: Int32, message: String) {
        self.pluginID = pluginID
        self.code = code
        self.message = message
    }

    public var isBudget: Bool { code == ASSAY_ERR_BUDGET }
    public var isCancelled: Bool { code == ASSAY_ERR_CANCELLED }
    public var isInvalidArgument: Bool { code == ASSAY_ERR_INVALID_ARGUMENT }
    public var isUnsupported: Bool { code == ASSAY_ERR_UNSUPPORTED }
    public var description: String { "plugin \(pluginID): \(message)" }

    static func codeName(_ code: Int32) -> String {
        switch code {
        case ASSAY_ERR_INVALID_ARGUMENT: return "ASSAY_ERR_INVALID_ARGUMENT"
        case ASSAY_ERR_BUDGET: return "ASSAY_ERR_BUDGET"
        case ASSAY_ERR_CANCELLED: return "ASSAY_ERR_CANCELLED"
        case ASSAY_ERR_NO_MEMORY: return "ASSAY_ERR_NO_MEMORY"
        case ASSAY_ERR_UNSUPPORTED: return "ASSAY_ERR_UNSUPPORTED"
        case ASSAY_ERR_IO: return "ASSAY_ERR_IO"
        default: return "error code \(code)"
        }
    }
}

/// The one `assay_host_t` the daemon gives every plugin instance.
public enum HostServices {
    /// Where plugin log lines go. Set once at start-up.
    nonisolated(unsafe) public static var logger = Logger(label: "io.assay.plugin")


    /// A host struct of the plugin instance `pluginID`'s own: one per instance, so that a
    /// plugin that writes over the struct it was lent (a bug, or worse) breaks only itself,
    /// never another plugin or a job that does not use it. Its strings are its own copies
    /// too; `host_data` names the instance, so its log lines say which plugin wrote them.
    /// Freed by `freeHost` once the instance is destroyed.
    static func makeHost(pluginID: String) -> UnsafePointer<assay_host_t> {
        let p = UnsafeMutablePointer<assay_host_t>.allocate(capacity: 1)
        p.initialize(to: assay_host_t(
            abi_version: assay_version_t(major: HostABI.major, minor: HostABI.minor, revision: HostABI.revision),
            host_data: UnsafeMutableRawPointer(strdup(pluginID)),
            name: UnsafePointer(strdup("assayd")),
            version: UnsafePointer(strdup(AssayVersion.string)),
            get_extension: { _, _ in nil },
            log: { host, call, level, message in
                guard let message else { return }
                let text = String(cString: message)
                var meta: Logger.Metadata = [:]
                if let id = host.flatMap(HostServices.pluginID) { meta["plugin"] = "\(id)" }
                if let call, call.pointee.job_id != 0 { meta["job"] = "\(call.pointee.job_id)" }
                switch level {
                case ASSAY_LOG_DEBUG: HostServices.logger.debug("\(text)", metadata: meta)
                case ASSAY_LOG_WARNING: HostServices.logger.warning("\(text)", metadata: meta)
                case ASSAY_LOG_ERROR: HostServices.logger.error("\(text)", metadata: meta)
                default: HostServices.logger.info("\(text)", metadata: meta)
                }
            },
            is_cancelled: { _, call in
                guard let data = call?.pointee.host_data else { return false }
                return Unmanaged<PluginCallContext>.fromOpaque(data).takeUnretainedValue().isCancelled
            },
            report_error: { _, call, message in
                guard let message else { return }
                let text = String(cString: message)
                if let data = call?.pointee.host_data {
                    Unmanaged<PluginCallContext>.fromOpaque(data).takeUnretainedValue().lastError = text
                } else if let thread = PluginThread.current {
                    thread.instanceError = text
                } else {
                    HostServices.logger.error("plugin reported an error outside any call: \(text)")
                }
            }))
        return UnsafePointer(p)
    }

    /// The plugin id a host struct was made for (read from the host's own copy of what it
    /// wrote there: a struct the plugin scribbled over is not trusted beyond a bounded read).
    static func pluginID(_ host: UnsafePointer<assay_host_t>) -> String? {
        guard let raw = host.pointee.host_data else { return nil }
        let bytes = raw.assumingMemoryBound(to: CChar.self)
        guard strnlen(bytes, 65) <= 64 else { return nil }
        return String(cString: bytes)
    }

    /// Frees a struct made by `makeHost` (after the instance's destroy has returned). The
    /// strings are the ones `makeHost` allocated, remembered apart from the struct, which
    /// the plugin may have changed.
    static func freeHost(_ host: UnsafePointer<assay_host_t>, strings: [UnsafeMutableRawPointer?]) {
        for s in strings { free(s) }
        UnsafeMutablePointer(mutating: host).deinitialize(count: 1)
        UnsafeMutablePointer(mutating: host).deallocate()
    }
}

/// The daemon's own version.
public enum AssayVersion {
    public static let string = "0.1.0"
}

/// An option for a plugin: the ABI's key/value pairs.
public enum PluginOption: Sendable, Equatable, Codable {
    case string(String)
    case number(Double)
}

/// Lends `options` to C as an `assay_options_t` for the duration of `body`.
func withCOptions<R>(_ options: [(String, PluginOption)], _ body: (UnsafePointer<assay_options_t>) throws -> R) rethrows -> R {
    var owned: [UnsafeMutablePointer<CChar>] = []
    defer { owned.forEach { free($0) } }
    var items: [assay_option_t] = []
    for (key, value) in options {
        let k = strdup(key)!
        owned.append(k)
        switch value {
        case .string(let s):
            let v = strdup(s)!
            owned.append(v)
            items.append(assay_option_t(key: k, type: ASSAY_OPTION_STRING, string: v, number: 0))
        case .number(let d):
            items.append(assay_option_t(key: k, type: ASSAY_OPTION_NUMBER, string: nil, number: d))
        }
    }
    return try items.withUnsafeBufferPointer { buffer in
        var opts = assay_options_t(count: UInt32(buffer.count), items: buffer.baseAddress)
        return try withUnsafePointer(to: &opts) { try body($0) }
    }
}

/// Collects the texts a plugin sets on an `assay_text_out_t`.
final class TextCollector {
    var texts: [String?]
    init(count: Int) { texts = Array(repeating: nil, count: count) }

    func withTextOut<R>(_ body: (UnsafePointer<assay_text_out_t>) throws -> R) rethrows -> R {
        var out = assay_text_out_t(host_data: Unmanaged.passUnretained(self).toOpaque(), set: { out, index, utf8 in
            guard let out, let data = out.pointee.host_data, let utf8 else { return }
            let me = Unmanaged<TextCollector>.fromOpaque(data).takeUnretainedValue()
            guard Int(index) < me.texts.count else { return }
            me.texts[Int(index)] = String(cString: utf8)
        })
        return try withUnsafePointer(to: &out) { try body($0) }
    }
}
