import CDBus
import Glibc

/// The daemon's D-Bus thread: a poll loop over the connection's socket and an eventfd.
///
/// Why not `dbus_connection_read_write_dispatch(-1)` on a thread of its own: a message sent
/// from another thread waits until the blocked reader wakes (the next incoming message),
/// so progress signals would stall. Here every libdbus call happens on this one thread;
/// other threads `post` closures and a wake-up pipe ends the poll at once.
public final class DBusEventLoop: @unchecked Sendable {
    public let connection: DBusConnection
    private let wakeFD: Int32      // read end of the wake-up pipe
    private let wakeWriteFD: Int32
    private var lock = pthread_mutex_t()
    private var posted: [() -> Void] = []
    private var running = true
    private var timers: [(deadline: UInt64, seq: UInt64, fire: () -> Void)] = []
    private var timerSeq: UInt64 = 0

    public init(connection: DBusConnection) {
        self.connection = connection
        var fds: [Int32] = [-1, -1]
        precondition(pipe(&fds) == 0, "pipe failed")
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeFD = fds[0]
        wakeWriteFD = fds[1]
        pthread_mutex_init(&lock, nil)
    }

    deinit {
        close(wakeFD)
        close(wakeWriteFD)
        pthread_mutex_destroy(&lock)
    }

    /// Runs `work` on the loop thread soon. Safe from any thread.
    public func post(_ work: @escaping () -> Void) {
        pthread_mutex_lock(&lock)
        posted.append(work)
        pthread_mutex_unlock(&lock)
        var one: UInt8 = 1
        _ = write(wakeWriteFD, &one, 1)
    }

    /// Runs `work` on the loop thread after `ms` milliseconds. Loop thread only.
    public func after(ms: Int, _ work: @escaping () -> Void) {
        timerSeq += 1
        timers.append((DBusEventLoop.nowNs() + UInt64(ms) * 1_000_000, timerSeq, work))
        timers.sort { ($0.deadline, $0.seq) < ($1.deadline, $1.seq) }
    }

    /// Ends `run` after the current iteration. Safe from any thread.
    public func stop() {
        post { [self] in running = false }
    }

    /// Serves the connection until `stop` or disconnection. Call from the thread that
    /// will own the connection.
    public func run() {
        while running {
            connection.dispatchAll()
            connection.readWrite(timeoutMs: 0)
            connection.dispatchAll()
            guard connection.isConnected else { break }

            var fds = [
                pollfd(fd: connection.fileDescriptor,
                       events: Int16(POLLIN) | (connection.hasMessagesToSend ? Int16(POLLOUT) : 0), revents: 0),
                pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
            ]
            var timeout: Int32 = -1
            if let next = timers.first {
                let now = DBusEventLoop.nowNs()
                timeout = next.deadline <= now ? 0 : Int32(min((next.deadline - now) / 1_000_000 + 1, 60_000))
            }
            let n = poll(&fds, 2, timeout)
            if n < 0 && errno != EINTR { break }

            if fds[1].revents != 0 {
                var buffer = [UInt8](repeating: 0, count: 256)
                while read(wakeFD, &buffer, buffer.count) > 0 {}
            }
            pthread_mutex_lock(&lock)
            let work = posted
            posted.removeAll()
            pthread_mutex_unlock(&lock)
            for w in work { w() }

            let now = DBusEventLoop.nowNs()
            while let first = timers.first, first.deadline <= now {
                timers.removeFirst()
                first.fire()
            }
        }
        connection.flush()
    }

    static func nowNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
