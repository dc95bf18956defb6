import Glibc

/// Which plugin files the host reads at all, and how it reads them.
///
/// Why: a plugin file is code the daemon will run. Reading it must never block (a FIFO or a
/// device named `x.so` would hang the loader, and with it every reload), and on the system
/// bus the daemon runs as root: a file that another user can write, or that sits in a
/// folder another user can write (and so replace the file or a folder on its path), would
/// let that user run code as root. So the file is opened without blocking, checked on the
/// descriptor it was opened with (no race between the check and the read), and, when
/// `requireRootOwned` is on, the file and every folder above its resolved path must be owned
/// by root and not writable by group or others. Symlinks are resolved first and the checks
/// apply to where they lead.
public struct PluginFilePolicy: Sendable, Equatable {
    /// Refuse files not owned by root, writable by group or others, or below a folder that
    /// is. On with `--system` (or `--trusted-plugins`).
    public var requireRootOwned: Bool
    /// Larger files are refused (a plugin is read whole, to hash and copy it).
    public var maxBytes: Int

    public init(requireRootOwned: Bool = false, maxBytes: Int = 512 << 20) {
        self.requireRootOwned = requireRootOwned
        self.maxBytes = maxBytes
    }

    /// The bytes of the plugin file at `path`, or why it is refused.
    public func read(_ path: String) throws -> [UInt8] {
        guard let resolvedC = realpath(path, nil) else {
            throw PluginFileRefusal("cannot resolve the path: \(String(cString: strerror(errno)))")
        }
        let resolved = String(cString: resolvedC)
        free(resolvedC)
        if requireRootOwned {
            if let problem = PluginFilePolicy.untrustedFolder(above: resolved) { throw PluginFileRefusal(problem) }
        }
        // O_NONBLOCK: opening a FIFO or a device must not wait; O_NOFOLLOW: the resolved
        // path has no link left, so one appearing now is a swap and is refused.
        let fd = open(resolved, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW)
        guard fd >= 0 else { throw PluginFileRefusal("cannot open \(resolved): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw PluginFileRefusal("cannot stat \(resolved): \(String(cString: strerror(errno)))") }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw PluginFileRefusal("not a regular file (\(PluginFilePolicy.typeName(st.st_mode))): only regular files are loaded")
        }
        if requireRootOwned {
            if st.st_uid != 0 {
                throw PluginFileRefusal("\(resolved) is owned by uid \(st.st_uid), not root: with --system only root-owned plugin files are loaded (chown root)")
            }
            if st.st_mode & 0o022 != 0 {
                throw PluginFileRefusal("\(resolved) is writable by \(PluginFilePolicy.writers(st.st_mode)) (mode \(String(st.st_mode & 0o7777, radix: 8))): with --system a plugin file must be writable by root only (chmod go-w)")
            }
        }
        guard st.st_size <= maxBytes else {
            throw PluginFileRefusal("the file has \(st.st_size) bytes; plugin files larger than \(maxBytes) are refused")
        }
        var out: [UInt8] = []
        out.reserveCapacity(Int(st.st_size))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = Glibc.read(fd, &chunk, chunk.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw PluginFileRefusal("cannot read \(resolved): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            guard out.count <= maxBytes else {
                throw PluginFileRefusal("the file grew past \(maxBytes) bytes while being read")
            }
        }
        return out
    }

    /// The first folder above `resolved` (an absolute path without links) that is not owned
    /// by root or is writable by group or others, as a reason; nil when all are trusted.
    static func untrustedFolder(above resolved: String) -> String? {
        var folder = resolved
        repeat {
            if let slash = folder.lastIndex(of: "/") {
                folder = slash == folder.startIndex ? "/" : String(folder[..<slash])
            } else {
                return "\(resolved) is not an absolute path"
            }
            var st = stat()
            guard lstat(folder, &st) == 0 else { return "cannot stat the folder \(folder): \(String(cString: strerror(errno)))" }
            guard st.st_mode & S_IFMT == S_IFDIR else { return "\(folder) is not a folder" }
            if st.st_uid != 0 {
                return "the folder \(folder) is owned by uid \(st.st_uid), not root: with --system every folder above a plugin file must be root's"
            }
            if st.st_mode & 0o022 != 0 {
                return "the folder \(folder) is writable by \(writers(st.st_mode)) (mode \(String(st.st_mode & 0o7777, radix: 8))): with --system no folder above a plugin file may be writable by anyone but root"
            }
        } while folder != "/"
        return nil
    }

    static func writers(_ mode: mode_t) -> String {
        switch (mode & 0o020 != 0, mode & 0o002 != 0) {
        case (true, true): return "group and others"
        case (true, false): return "its group"
        default: return "others"
        }
    }

    static func typeName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFDIR: return "a folder"
        default: return "type \(String(mode & S_IFMT, radix: 8))"
        }
    }
}

/// Why a plugin file was not read.
public struct PluginFileRefusal: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
