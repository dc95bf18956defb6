import ArgumentParser
import AssayClient
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

/// The shared `AssayClient`, with every D-Bus failure turned into a `Failure` with the
/// documented exit code.
final class Client {
    static let busName = AssayClient.busName
    static let managerPath = AssayClient.managerPath
    static let jobsPath = AssayClient.jobsPath
    static let managerInterface = AssayClient.managerInterface
    static let jobInterface = AssayClient.jobInterface
    static let propertiesInterface = AssayClient.propertiesInterface

    let api: AssayClient
    var connection: DBusConnection { api.connection }

    init(_ options: BusOptions) throws {
        do {
            api = try AssayClient(bus: options.bus)
        } catch let e as DBusError {
            throw Failure(ExitStatus.unreachable, "cannot connect to the \(options.system ? "system" : "D-Bus") bus: \(e.name): \(e.message)")
        }
    }

    static func failure(_ e: DBusError) -> Failure {
        if AssayClient.unreachableErrors.contains(e.name) {
            return Failure(ExitStatus.unreachable,
                           "the Assay daemon (\(busName)) is not reachable on this bus: \(e.name): \(e.message)")
        }
        return Failure(ExitStatus.daemonError, "\(e.name): \(e.message)")
    }

    /// Runs a client call, mapping its errors to exit codes.
    private func mapped<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as DBusError {
            throw Client.failure(e)
        } catch let e as AssayClientError {
            throw Failure(ExitStatus.daemonError, e.description)
        }
    }

    func call(_ path: String, _ interface: String, _ member: String, _ args: [DBusValue] = [],
              timeoutMs: Int32 = 25_000) throws -> [DBusValue] {
        try mapped { try api.call(path, interface, member, args, timeoutMs: timeoutMs) }
    }

    func manager(_ member: String, _ args: [DBusValue] = [], timeoutMs: Int32 = 25_000) throws -> [DBusValue] {
        try mapped { try api.manager(member, args, timeoutMs: timeoutMs) }
    }

    func submit(prompt: String, options: [String: DBusValue]) throws -> String {
        try mapped { try api.submit(prompt, options) }
    }

    func jobProperties(_ path: String) throws -> [String: DBusValue] {
        try mapped { try api.properties(path) }
    }

    func plugins() throws -> [[String: DBusValue]] { try mapped { try api.plugins() } }

    func jobs() throws -> [String] { try mapped { try api.jobs() } }

    /// The result PNG's bytes, read through the descriptor `OpenResult` hands over (the
    /// daemon's files may not be readable by this user).
    func resultBytes(_ path: String) throws -> [UInt8] {
        do {
            return try api.readJobFile(path, "OpenResult")
        } catch let e as DBusError {
            throw Client.failure(e)
        } catch let e as AssayClientError {
            throw Failure(ExitStatus.local, e.description)
        }
    }

    /// `7` → `/io/assay/Assay1/jobs/7`; a path is taken as it is.
    static func jobPath(_ arg: String) throws -> String {
        guard let path = AssayClient.jobPath(arg) else {
            throw ValidationError("'\(arg)' is not a job: give its number (7) or its object path (\(jobsPath)/7)")
        }
        return path
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
