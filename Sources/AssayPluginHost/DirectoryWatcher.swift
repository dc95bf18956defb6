import Glibc

/// Watches plugin directories with inotify and reports changed `.so` paths, debounced.
///
/// Builds write in several steps (`gcc -o` truncates, writes, closes; `cp` over a file
/// modifies it in place; `mv` renames one in), so a path is reported only once it has
/// been quiet for `debounceMs` after a CLOSE_WRITE, MOVED_TO, CREATE or DELETE.
public final class DirectoryWatcher: @unchecked Sendable {
    private let inotifyFD: Int32
    private let stopPipe: [Int32]
    private var watches: [Int32: String] = [:]
    private let debounceNs: UInt64
    private let onChange: @Sendable ([String]) -> Void
    private var thread: pthread_t?

    public init(directories: [String], debounceMs: Int = 150, onChange: @escaping @Sendable ([String]) -> Void) throws {
        inotifyFD = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard inotifyFD >= 0 else { throw FileIOError(path: "inotify", reason: String(cString: strerror(errno))) }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw FileIOError(path: "pipe", reason: String(cString: strerror(errno))) }
        stopPipe = fds
        debounceNs = UInt64(debounceMs) * 1_000_000
        self.onChange = onChange
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE)
        for dir in directories {
            let wd = inotify_add_watch(inotifyFD, dir, mask)
            if wd >= 0 { watches[wd] = dir }
        }
    }

    deinit {
        close(inotifyFD)
        close(stopPipe[0])
        close(stopPipe[1])
    }

    public func start() {
        let box = Unmanaged.passRetained(self)
        var t = pthread_t()
        pthread_create(&t, nil, { arg in
            let me = Unmanaged<DirectoryWatcher>.fromOpaque(arg!).takeRetainedValue()
            me.loop()
            return nil
        }, box.toOpaque())
        thread = t
    }

    public func stop() {
        var b: UInt8 = 1
        _ = write(stopPipe[1], &b, 1)
        if let t = thread { pthread_join(t, nil) }
        thread = nil
    }

    private func loop() {
        var pending: [String: UInt64] = [:] // path -> quiet deadline
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            var timeout: Int32 = -1
            if let next = pending.values.min() {
                let now = DispatchTimeClock.now()
                timeout = next <= now ? 0 : Int32((next - now) / 1_000_000 + 1)
            }
            var fds = [pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stopPipe[0], events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, timeout)
            if fds[1].revents != 0 { return }
            if fds[0].revents != 0 {
                let n = read(inotifyFD, &buffer, buffer.count)
                var offset = 0
                while n > 0 && offset + 16 <= n {
                    let (wd, length, name) = buffer.withUnsafeBytes { raw -> (Int32, Int, String) in
                        let wd = raw.load(fromByteOffset: offset, as: Int32.self)
                        let len = Int(raw.load(fromByteOffset: offset + 12, as: UInt32.self))
                        let nameBytes = raw[(offset + 16)..<(offset + 16 + len)].prefix { $0 != 0 }
                        return (wd, len, String(decoding: nameBytes, as: UTF8.self))
                    }
                    offset += 16 + length
                    guard let dir = watches[wd], name.hasSuffix(".so") else { continue }
                    pending[dir + "/" + name] = DispatchTimeClock.now() + debounceNs
                }
            }
            let now = DispatchTimeClock.now()
            let due = pending.filter { $0.value <= now }.map(\.key).sorted()
            if !due.isEmpty {
                due.forEach { pending.removeValue(forKey: $0) }
                onChange(due)
            }
        }
    }
}
