import AssayDBus
import Glibc

/// A typed client of the `io.assay.Assay1` service: the one place that knows its names,
/// paths and call shapes (dist/io.assay.Assay1.xml), used by `assayctl`, `assay-bench` and
/// the tests alike. It throws the daemon's `DBusError` as it is; callers decide what an
/// error means to them (assayctl maps it to an exit code).
///
/// Threading: one connection, used from one thread at a time (libdbus blocking calls).
public final class AssayClient {
    public static let busName = "io.assay.Assay1"
    public static let managerPath = "/io/assay/Assay1"
    public static let jobsPath = "/io/assay/Assay1/jobs"
    public static let managerInterface = "io.assay.Manager1"
    public static let jobInterface = "io.assay.Job1"
    public static let propertiesInterface = "org.freedesktop.DBus.Properties"

    public let connection: DBusConnection

    public init(connection: DBusConnection) { self.connection = connection }

    public convenience init(bus: BusAddress) throws { self.init(connection: try DBusConnection(bus)) }

    /// Error names that mean "nobody is there to answer", not "the daemon said no".
    public static let unreachableErrors: Set<String> = [
        "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Disconnected",
        "org.freedesktop.DBus.Error.NoServer", "org.freedesktop.DBus.Error.Timeout",
        "org.freedesktop.DBus.Error.TimedOut", "org.freedesktop.DBus.Error.NoNetwork",
    ]

    public func call(_ path: String, _ interface: String, _ member: String, _ args: [DBusValue] = [],
                     timeoutMs: Int32 = 25_000) throws -> [DBusValue] {
        try connection.call(destination: AssayClient.busName, path: path, interface: interface, member: member, args,
                            timeoutMs: timeoutMs)
    }

    public func manager(_ member: String, _ args: [DBusValue] = [], timeoutMs: Int32 = 25_000) throws -> [DBusValue] {
        try call(AssayClient.managerPath, AssayClient.managerInterface, member, args, timeoutMs: timeoutMs)
    }

    /// Whether the daemon owns its name on this bus now.
    public func isServing() -> Bool {
        let r = try? connection.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                     interface: "org.freedesktop.DBus", member: "NameHasOwner", [.string(AssayClient.busName)])
        return r?.first == .bool(true)
    }

    /// Submits a job; its object path.
    public func submit(_ prompt: String, _ options: [String: DBusValue] = [:]) throws -> String {
        let r = try manager("Submit", [.string(prompt), .vardict(options)])
        guard case .objectPath(let path)? = r.first else { throw AssayClientError("Submit returned \(r)") }
        return path
    }

    public func property(_ path: String, _ name: String, interface: String = AssayClient.jobInterface) throws -> DBusValue {
        let r = try call(path, AssayClient.propertiesInterface, "Get", [.string(interface), .string(name)])
        guard case .variant(let v)? = r.first else { throw AssayClientError("Get \(name) returned \(r)") }
        return v
    }

    public func properties(_ path: String, interface: String = AssayClient.jobInterface) throws -> [String: DBusValue] {
        let r = try call(path, AssayClient.propertiesInterface, "GetAll", [.string(interface)])
        guard let d = r.first?.vardictValue else { throw AssayClientError("GetAll returned \(r)") }
        return d
    }

    /// ListPlugins' rows (loaded and refused).
    public func plugins() throws -> [[String: DBusValue]] {
        try manager("ListPlugins").first?.arrayValue?.compactMap(\.vardictValue) ?? []
    }

    /// The loaded plugin with this id, or nil.
    public func plugin(_ id: String) throws -> [String: DBusValue]? {
        try plugins().first { $0["id"]?.stringValue == id && $0["state"]?.stringValue == "loaded" }
    }

    public func jobs() throws -> [String] {
        try manager("ListJobs").first?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// Polls a job's State until it is final (done, failed, cancelled); returns it.
    public func waitFinished(_ path: String, timeout: Double = 60) throws -> String {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        while true {
            let state = try property(path, "State").stringValue ?? ""
            if !["queued", "running"].contains(state) { return state }
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            if Double(now.tv_sec - start.tv_sec) + Double(now.tv_nsec - start.tv_nsec) / 1e9 > timeout {
                throw AssayClientError("job \(path) did not finish in \(timeout) s (state \(state))")
            }
            usleep(10_000)
        }
    }

    /// The bytes of a file a job hands over as a descriptor (`OpenResult`, `OpenManifest`):
    /// the daemon's files may not be readable by this user.
    public func readJobFile(_ path: String, _ member: String = "OpenResult") throws -> [UInt8] {
        let r = try call(path, AssayClient.jobInterface, member)
        guard case .unixFD(let fd)? = r.first else { throw AssayClientError("\(member) returned \(r)") }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AssayClientError("reading the \(member) descriptor failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            out += buffer[0..<n]
            offset += off_t(n)
        }
        return out
    }

    /// `7` → `/io/assay/Assay1/jobs/7`; a path is taken as it is; nil for anything else.
    public static func jobPath(_ arg: String) -> String? {
        if arg.hasPrefix("/") { return arg }
        if !arg.isEmpty, arg.allSatisfy(\.isNumber) { return "\(jobsPath)/\(arg)" }
        return nil
    }
}

/// A reply that does not have the shape the interface declares, or a wait that ran out.
public struct AssayClientError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
