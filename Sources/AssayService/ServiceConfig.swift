import AssayCore
import AssayDBus
import AssayPluginHost

/// Everything `assayd` can be told at start-up.
public struct ServiceConfig: Sendable {
    /// How clients are told apart for queue caps and fairness.
    public enum ClientIdentity: String, Sendable {
        /// One client per bus connection (session bus default: every caller is the same user).
        case connection
        /// One client per Unix user (system bus default: a user's loop of new connections
        /// is still one client).
        case uid
    }

    public var bus: BusAddress = .session
    public var busName = "io.assay.Assay1"
    public var pluginDirectories: [String] = []
    /// Which plugin files are read: regular files only, always; with `requireRootOwned`
    /// (`--system`, `--trusted-plugins`) only root's, in folders only root can write.
    public var pluginFilePolicy = PluginFilePolicy()
    /// Instance options per plugin id, given to the plugin's `init` (e.g. threads, weights).
    public var pluginOptions: [String: [(String, PluginOption)]] = [:]
    public var stateDirectory: String = ""
    /// Where private copies of plugin files are mapped from (emptied as they load).
    public var runtimeDirectory: String = ""
    public var limits = Scheduler.Limits()
    /// Caps on `Score` calls (images a call, bytes, pixels, read time, calls in flight).
    public var scoreLimits = ScoreLimits()
    /// How long finished jobs stay on the bus, in seconds (no count cap: see
    /// `AssayService.retire`); after a restart, what was left of it.
    public var retentionSeconds: Double = 600
    /// On SIGTERM, how long running jobs get to return from the plugin call they are in.
    public var stopTimeoutSeconds: Double = 5
    /// At start-up, how long plugin files may take to load before the bus name is taken
    /// without the slow ones (they join when ready).
    public var pluginLoadWaitSeconds: Double = 5
    /// Plugin workers (`IsolatingPluginLoader`): the executable that serves as one (assayd
    /// itself), or nil to load every plugin in process (trusted plugins only).
    public var workerExecutable: String?
    /// Seconds one isolated plugin call may take before its worker is killed.
    public var pluginCallTimeoutSeconds: Double = 60
    /// Crashes or hangs of one file's worker after which its plugins are quarantined.
    public var pluginQuarantineAfter = 3
    /// Each plugin worker's data limit in MiB (heap and private mappings); 0 = none.
    public var pluginMemoryLimitMiB = 0
    public var defaults = JobDefaults()
    public var clientIdentity: ClientIdentity = .connection
    /// Watch plugin directories for changes (hot reload).
    public var watch = true
    /// Minimum interval between two PropertiesChanged of one job, in milliseconds.
    public var propertiesIntervalMs = 100

    public init() {}

    /// Administrative calls (ReloadPlugins, changing PluginDirectories) only from root.
    /// On by default on the system bus; `--restrict-admin` turns it on elsewhere.
    public var restrictAdmin = false

    public var isSystemBus: Bool { bus == .system }
}
