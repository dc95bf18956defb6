import ArgumentParser
import AssayCore
import AssayDBus
import AssayPluginHost
import AssayService
import Dispatch
import Glibc
import Logging

/// The Assay daemon: serves io.assay.Assay1 on the session bus (default) or system bus.
struct AssayDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assayd",
        abstract: "Inference-time search for text-to-image models, as a D-Bus service (io.assay.Assay1).")

    @Flag(help: "Serve on the system bus (state in /var/lib/assay) instead of the session bus.")
    var system = false

    @Option(help: "Connect to this bus address instead (e.g. a private test bus).")
    var address: String?

    @Option(name: .customLong("plugin-dir"), help: "A plugin directory; repeat for several. Default: the user's and the installed ones.")
    var pluginDirs: [String] = []

    @Option(help: "Where job results and manifests are written.")
    var stateDir: String?

    @Option(help: "Jobs that run at the same time.")
    var maxConcurrentJobs = 1

    @Option(help: "Jobs that may wait in the queue, all clients together.")
    var maxQueued = 64

    @Option(help: "Jobs one client may have waiting.")
    var maxQueuedPerClient = 16

    @Option(help: "Images one Score call may carry (one descriptor each; the kernel passes at most 253 in a message).")
    var scoreMaxImages = ScoreLimits().maxImagesPerCall

    @Option(help: "Score calls one client may have in progress at once.")
    var scoreMaxInFlightPerClient = ScoreLimits().maxInFlightPerClient

    @Option(help: "Milliseconds a Score call may take to read all its descriptors (a pipe that never ends is refused then).")
    var scoreReadTimeoutMs = ScoreLimits().readTimeoutMs

    @Option(help: "Seconds a finished job stays on the bus.")
    var retentionSeconds = 600.0

    @Option(help: "On SIGTERM, seconds running jobs get to leave the plugin call they are in; the daemon then exits anyway (interrupted jobs run again at the next start).")
    var stopTimeoutSeconds = 5.0

    @Option(help: "At start-up, seconds plugin files may take to load (all at once, each library on its own thread) before the bus name is taken without the slow ones; they join when ready.")
    var pluginLoadWaitSeconds = 5.0

    @Flag(name: .customLong("in-process-plugins"), help: "Load every plugin into the daemon's own process (trusted plugins only: a crash or hang then takes the daemon or its job thread). Default: verifiers and reflectors run in worker processes, and every file is first loaded in one.")
    var inProcessPlugins = false

    @Option(help: "Seconds one call of an isolated plugin (verifier, reflector) may take before its worker is killed and the call fails.")
    var pluginCallTimeoutSeconds = 60.0

    @Option(help: "Crashes or hangs of one plugin file's worker after which its plugins are quarantined (until the file changes).")
    var pluginQuarantineAfter = 3

    @Option(help: "Each plugin worker's data limit in MiB (heap and private mappings, RLIMIT_DATA): a plugin that allocates past it fails its call, not the machine. 0 = none.")
    var pluginMemoryLimitMib = 0

    @Option(help: "How clients are told apart for queue caps: connection or uid (default: connection on the session bus, uid on the system bus).")
    var clientIdentity: String?

    @Option(help: "Preferred default model ids, comma-separated.")
    var defaultModels = "shapes,example-model"

    @Option(help: "Preferred default verifier ids, comma-separated.")
    var defaultVerifiers = "shapes-checker,example-colour"

    @Flag(help: "Allow administrative calls (ReloadPlugins, setting PluginDirectories) from root only. Always on with --system.")
    var restrictAdmin = false

    @Option(name: .customLong("plugin-option"),
            help: ArgumentHelp("An instance option for a plugin's init: ID.KEY=VALUE (numbers are passed as numbers). Repeatable.",
                               valueName: "id.key=value"))
    var pluginOptions: [String] = []

    @Flag(help: "Load only plugin files owned by root and writable by root only, in folders (all the way up) owned and writable by root only. Always on with --system, where plugins run as root.")
    var trustedPlugins = false

    @Flag(help: "Print the D-Bus interfaces as introspection XML (what dist/io.assay.Assay1.xml holds) and exit.")
    var printInterfaces = false

    @Flag(help: "Do not watch plugin directories for changes.")
    var noWatch = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = "info"

    func validate() throws {
        if system && address != nil { throw ValidationError("--system and --address exclude each other") }
        if maxConcurrentJobs < 1 || maxQueued < 1 || maxQueuedPerClient < 1 {
            throw ValidationError("--max-concurrent-jobs, --max-queued and --max-queued-per-client must be at least 1")
        }
        if !(1...253).contains(scoreMaxImages) || scoreMaxInFlightPerClient < 1 || scoreReadTimeoutMs < 1 {
            throw ValidationError("--score-max-images must be 1 to 253; --score-max-in-flight-per-client and --score-read-timeout-ms at least 1")
        }
        if let c = clientIdentity, ServiceConfig.ClientIdentity(rawValue: c) == nil {
            throw ValidationError("--client-identity must be connection or uid")
        }
        for o in pluginOptions where AssayDaemon.parsePluginOption(o) == nil {
            throw ValidationError("--plugin-option '\(o)' must look like ID.KEY=VALUE, e.g. shapes.threads=4")
        }
    }

    func run() throws {
        if printInterfaces {
            print(Introspection.interfaceFile, terminator: "")
            return
        }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        // Plugin workers (children of this process) log at the same level.
        setenv(PluginWorkerMain.logLevelVariable, level.rawValue, 1)
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let env = { (name: String) -> String? in getenv(name).map { String(cString: $0) } }
        let home = env("HOME") ?? "/tmp"

        var config = ServiceConfig()
        // Started by D-Bus activation: serve the bus that started us (its address is in
        // DBUS_STARTER_ADDRESS), whichever bus that is.
        let starter = env("DBUS_STARTER_ADDRESS")
        config.bus = system ? .system : address.map { .address($0) } ?? starter.map { .address($0) } ?? .session
        if system {
            config.pluginDirectories = pluginDirs.isEmpty ? ["/usr/local/lib/assay/plugins", "/var/lib/assay/plugins"] : pluginDirs
            config.stateDirectory = stateDir ?? "/var/lib/assay"
            config.runtimeDirectory = "/run/assay/plugins-\(getpid())"
        } else {
            let data = env("XDG_DATA_HOME") ?? home + "/.local/share"
            let userDir = data + "/assay/plugins"
            if pluginDirs.isEmpty { try? FileIO.makeDirectories(userDir) }
            config.pluginDirectories = pluginDirs.isEmpty ? [userDir, "/usr/local/lib/assay/plugins"] : pluginDirs
            config.stateDirectory = stateDir ?? (env("XDG_STATE_HOME") ?? home + "/.local/state") + "/assay"
            let runtime = env("XDG_RUNTIME_DIR") ?? "/tmp"
            config.runtimeDirectory = "\(runtime)/assayd-\(getuid())-\(getpid())"
        }
        // Absolute paths: they appear in ListPlugins and manifests, read by other processes.
        config.pluginDirectories = config.pluginDirectories.map(absolute)
        config.stateDirectory = absolute(config.stateDirectory)
        config.limits = Scheduler.Limits(maxConcurrentJobs: maxConcurrentJobs, maxQueued: maxQueued,
                                         maxQueuedPerClient: maxQueuedPerClient)
        config.scoreLimits.maxImagesPerCall = scoreMaxImages
        config.scoreLimits.maxInFlightPerClient = scoreMaxInFlightPerClient
        config.scoreLimits.maxInFlight = max(config.scoreLimits.maxInFlight, scoreMaxInFlightPerClient)
        config.scoreLimits.readTimeoutMs = scoreReadTimeoutMs
        config.retentionSeconds = retentionSeconds
        config.stopTimeoutSeconds = stopTimeoutSeconds
        config.pluginLoadWaitSeconds = pluginLoadWaitSeconds
        config.pluginCallTimeoutSeconds = pluginCallTimeoutSeconds
        config.pluginQuarantineAfter = pluginQuarantineAfter
        config.pluginMemoryLimitMiB = max(0, pluginMemoryLimitMib)
        if !inProcessPlugins {
            guard let me = AssayDaemon.ownExecutable() else {
                Logger(label: "io.assay.daemon").critical("cannot find this executable (/proc/self/exe) to start plugin workers; --in-process-plugins runs without them")
                throw ExitCode(1)
            }
            config.workerExecutable = me
        }
        config.clientIdentity = clientIdentity.flatMap(ServiceConfig.ClientIdentity.init) ?? (system ? .uid : .connection)
        config.defaults = JobDefaults(models: defaultModels.split(separator: ",").map(String.init),
                                      verifiers: defaultVerifiers.split(separator: ",").map(String.init))
        config.watch = !noWatch
        for o in pluginOptions {
            let (id, key, value) = AssayDaemon.parsePluginOption(o)!
            config.pluginOptions[id, default: []].append((key, value))
        }
        config.restrictAdmin = system || restrictAdmin
        config.pluginFilePolicy.requireRootOwned = system || trustedPlugins

        let logger = Logger(label: "io.assay.daemon")
        let service: AssayService
        do {
            service = try AssayService(config: config, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        // Stop cleanly on SIGTERM/SIGINT: running jobs are cancelled, then we exit.
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { service.stop() }
            s.resume()
            sources.append(s)
        }
        do {
            try service.run()
        } catch {
            logger.critical("cannot serve: \(error)")
            throw ExitCode(1)
        }
        rmdir(config.runtimeDirectory)
        if !service.stoppedCleanly {
            fflush(nil) // every stream: the log handler writes to stderr
            _exit(0)
        }
        withExtendedLifetime(sources) {}
    }
}

extension AssayDaemon {
    /// "shapes.threads=4" -> ("shapes", "threads", .number(4)). Plugin ids may contain dots,
    /// so the key is what follows the LAST dot before '='.
    static func parsePluginOption(_ text: String) -> (String, String, PluginOption)? {
        guard let eq = text.firstIndex(of: "=") else { return nil }
        let name = text[..<eq], value = String(text[text.index(after: eq)...])
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex, name.index(after: dot) != name.endIndex else { return nil }
        let id = String(name[..<dot]), key = String(name[name.index(after: dot)...])
        if let number = Double(value) { return (id, key, .number(number)) }
        return (id, key, .string(value))
    }
}

extension AssayDaemon {
    /// This executable's path (plugin workers are this binary run with --plugin-worker).
    static func ownExecutable() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// `path` made absolute against the working directory, without a trailing slash.
func absolute(_ path: String) -> String {
    var p = path
    if !p.hasPrefix("/") {
        if let cwd = getcwd(nil, 0) {
            p = String(cString: cwd) + "/" + p
            free(cwd)
        }
    }
    while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
    return p
}

// A plugin worker (started by this daemon, never by hand): serves one plugin file.
if CommandLine.arguments.count == 2 && CommandLine.arguments[1] == PluginWorkerMain.flag {
    PluginWorkerMain.run()
}
AssayDaemon.main()
