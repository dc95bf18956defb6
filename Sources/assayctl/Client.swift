import ArgumentParser
import AssayDBus
import Glibc

/// `--system` / `--address`, accepted by every subcommand.
struct BusOptions: ParsableArguments {
    @Flag(help: "Use the system bus instead of the session bus.")
    var system = false

    @Option(help: "Connect to this D-Bus address instead (e.g. unix:path=/tmp/bus).")
    var address: String?

    func validate() throws {
        if system && address != nil { throw ValidationError("--system and --address exclude each other") }
    }

    var bus: BusAddress { system ? .system : address.map { .address($0) } ?? .session }
}

/// A connection to the bus and typed calls to the daemon; every D-Bus failure becomes a
/// `Failure` with the documented exit code.
final class Client {
    static let busName = "io.assay.Assay1"
    static let managerPath = "/io/assay/Assay1"
    static let jobsPath = "/io/assay/Assay1/jobs"
    static let managerInterface = "io.assay.Manager1"
    static let jobInterface = "io.assay.Job1"
    static let propertiesInterface = "org.freedesktop.DBus.Properties"

    let connection: DBusConnection

    init(_ options: BusOptions) throws {
        do {
            connection = try DBusConnection(options.bus)
        } catch let e as DBusError {
            throw Failure(ExitStatus.unreachable, "cannot connect to the \(options.system ? "system" : "D-Bus") bus: \(e.name): \(e.message)")
        }
    }

    /// Error names that mean "nobody is there to answer", not "the daemon said no".
    static let unreachableErrors: Set<String> = [
        "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Disconnected",
        "org.freedesktop.DBus.Error.NoServer", "org.freedesktop.DBus.Error.Timeout",
        "org.freedesktop.DBus.Error.TimedOut", "org.freedesktop.DBus.Error.NoNetwork",
    ]

    static func failure(_ e: DBusError) -> Failure {
        if unreachableErrors.contains(e.name) {
            return Failure(ExitStatus.unreachable,
                           "the Assay daemon (\(busName)) is not reachable on this bus: \(e.name): \(e.message)")
        }
        return Failure(ExitStatus.daemonError, "\(e.name): \(e.message)")
    }

    func call(_ path: String, _ interface: String, _ member: String, _ args: [DBusValue] = [],
              timeoutMs: Int32 = 25_000) throws -> [DBusValue] {
        do {
            return try connection.call(destination: Client.busName, path: path, interface: interface,
                                       member: member, args, timeoutMs: timeoutMs)
        } catch let e as DBusError {
            throw Client.failure(e)
        }
    }

    func manager(_ member: String, _ args: [DBusValue] = [], timeoutMs: Int32 = 25_000) throws -> [DBusValue] {
        try call(Client.managerPath, Client.managerInterface, member, args, timeoutMs: timeoutMs)
    }

    func submit(prompt: String, options: [String: DBusValue]) throws -> String {
        let r = try manager("Submit", [.string(prompt), .vardict(options)])
        guard let path = r.first?.stringValue else { throw Failure(ExitStatus.daemonError, "Submit returned \(r)") }
        return path
    }

    func jobProperties(_ path: String) throws -> [String: DBusValue] {
        let r = try call(path, Client.propertiesInterface, "GetAll", [.string(Client.jobInterface)])
        guard let d = r.first?.vardictValue else { throw Failure(ExitStatus.daemonError, "GetAll returned \(r)") }
        return d
    }

    func plugins() throws -> [[String: DBusValue]] {
        try manager("ListPlugins").first?.arrayValue?.compactMap(\.vardictValue) ?? []
    }

    func jobs() throws -> [String] {
        try manager("ListJobs").first?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// The result PNG's bytes, read through the descriptor `OpenResult` hands over (the
    /// daemon's files may not be readable by this user).
    func resultBytes(_ path: String) throws -> [UInt8] {
        let r = try call(path, Client.jobInterface, "OpenResult")
        guard case .unixFD(let fd)? = r.first else { throw Failure(ExitStatus.daemonError, "OpenResult returned \(r)") }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(ExitStatus.local, "reading the result descriptor failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            out += buffer[0..<n]
            offset += off_t(n)
        }
        return out
    }

    /// `7` → `/io/assay/Assay1/jobs/7`; a path is taken as it is.
    static func jobPath(_ arg: String) throws -> String {
        if arg.hasPrefix("/") { return arg }
        if !arg.isEmpty, arg.allSatisfy(\.isNumber) { return "\(jobsPath)/\(arg)" }
        throw ValidationError("'\(arg)' is not a job: give its number (7) or its object path (\(jobsPath)/7)")
    }
}

// MARK: local files

enum LocalFile {
    static func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(ExitStatus.local, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(ExitStatus.local, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            out += buffer[0..<n]
        }
        return out
    }

    /// Writes through a temporary file in the same directory, then renames it into place,
    /// so a reader never sees half a PNG.
    static func write(_ bytes: [UInt8], to path: String) throws {
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(ExitStatus.local, "cannot write \(path): \(String(cString: strerror(errno)))") }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                let why = String(cString: strerror(errno))
                close(fd); unlink(tmp)
                throw Failure(ExitStatus.local, "cannot write \(path): \(why)")
            }
            done += n
        }
        guard close(fd) == 0, rename(tmp, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw Failure(ExitStatus.local, "cannot write \(path): \(why)")
        }
    }
}
