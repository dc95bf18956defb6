/// Errors a client can cause or see. Each maps to one `io.assay.Error.*` D-Bus name, and
/// every message says what to change.
public enum AssayError: Error, Equatable, CustomStringConvertible, Sendable {
    case invalidArgument(String)
    /// An image a client handed in (Score) cannot be read, decoded or judged.
    case invalidImage(String)
    case unknownPlugin(String)
    case queueFull(String)
    case notFound(String)
    case accessDenied(String)
    case notReady(String)
    case failed(String)
    /// A plugin's worker process crashed or hung (the daemon is fine; the call is lost).
    case pluginCrashed(String)

    /// The D-Bus error name.
    public var name: String {
        switch self {
        case .invalidArgument: return "io.assay.Error.InvalidArgument"
        case .invalidImage: return "io.assay.Error.InvalidImage"
        case .unknownPlugin: return "io.assay.Error.UnknownPlugin"
        case .queueFull: return "io.assay.Error.QueueFull"
        case .notFound: return "io.assay.Error.NotFound"
        case .accessDenied: return "io.assay.Error.AccessDenied"
        case .notReady: return "io.assay.Error.NotReady"
        case .failed: return "io.assay.Error.Failed"
        case .pluginCrashed: return "io.assay.Error.PluginCrashed"
        }
    }

    public var message: String {
        switch self {
        case .invalidArgument(let m), .invalidImage(let m), .unknownPlugin(let m), .queueFull(let m), .notFound(let m),
             .accessDenied(let m), .notReady(let m), .failed(let m), .pluginCrashed(let m):
            return m
        }
    }

    public var description: String { "\(name): \(message)" }
}
