import CAssayABI
import FoundationEssentials
import Glibc

/// One end of the socket between the daemon and a plugin worker process.
///
/// A `SOCK_SEQPACKET` pair keeps message boundaries, so a message is one `sendmsg`: a small
/// JSON header and a binary body (images, a plugin file) in one datagram when it fits, and
/// otherwise in a sealed memfd passed along (`SCM_RIGHTS`). The seals (no shrink, no grow,
/// no write) let the receiver trust the size it reads. The header is JSON because it is
/// small and rare next to the body, and readable in a trace.
final class WorkerChannel: @unchecked Sendable {
    let fd: Int32
    /// Bodies above this go through a memfd (datagrams are bounded by the socket buffer).
    static let inlineLimit = 48 * 1024

    init(fd: Int32) { self.fd = fd }

    func close() { _ = Glibc.close(fd) }

    /// A connected pair (close-on-exec both; the spawner hands one to the child).
    static func pair() throws -> (WorkerChannel, WorkerChannel) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw WorkerError.io("socketpair: \(String(cString: strerror(errno)))")
        }
        return (WorkerChannel(fd: fds[0]), WorkerChannel(fd: fds[1]))
    }

    /// Sends `header` and `body` as one message. Throws `WorkerError.closed` when the peer
    /// is gone.
    func send<H: Encodable>(_ header: H, body: [UInt8] = [], attach: Int32? = nil) throws {
        let json = Array(try JSONEncoder().encode(header))
        var frame = [UInt8]()
        frame.reserveCapacity(8 + json.count + body.count)
        append32(&frame, UInt32(json.count))
        append32(&frame, UInt32(body.count))
        frame += json
        frame += body
        if let attach {
            // A descriptor for the receiver to keep (a shared arena); the frame is small.
            precondition(frame.count <= WorkerChannel.inlineLimit)
            try sendFrame([2] + frame, fd: attach)
        } else if frame.count <= WorkerChannel.inlineLimit {
            try sendFrame([0] + frame, fd: nil)
        } else {
            let memfd = try WorkerChannel.sealedMemfd(frame)
            defer { Glibc.close(memfd) }
            try sendFrame([1], fd: memfd)
        }
    }

    private func append32(_ out: inout [UInt8], _ v: UInt32) {
        out += [UInt8(v & 0xff), UInt8((v >> 8) & 0xff), UInt8((v >> 16) & 0xff), UInt8(v >> 24)]
    }

    private static func sealedMemfd(_ bytes: [UInt8]) throws -> Int32 {
        let fd = assay_host_memfd("assay-worker-message")
        guard fd >= 0 else { throw WorkerError.io("memfd_create: \(String(cString: strerror(errno)))") }
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let why = String(cString: strerror(errno))
                Glibc.close(fd)
                throw WorkerError.io("memfd write: \(why)")
            }
            off += n
        }
        _ = assay_host_seal(fd)
        return fd
    }

    private func sendFrame(_ bytes: [UInt8], fd attached: Int32?) throws {
        var bytes = bytes
        let rc: Int = bytes.withUnsafeMutableBytes { buf in
            var iov = iovec(iov_base: buf.baseAddress, iov_len: buf.count)
            var msg = msghdr()
            return withUnsafeMutablePointer(to: &iov) { iovp in
                msg.msg_iov = iovp
                msg.msg_iovlen = 1
                guard let attached else {
                    return Glibc.sendmsg(fd, &msg, Int32(MSG_NOSIGNAL))
                }
                let space = Int(WorkerChannel.cmsgSpace)
                var control = [UInt8](repeating: 0, count: space)
                return control.withUnsafeMutableBytes { cbuf in
                    msg.msg_control = cbuf.baseAddress
                    msg.msg_controllen = space
                    let c = cbuf.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
                    c.pointee.cmsg_level = SOL_SOCKET
                    c.pointee.cmsg_type = Int32(SCM_RIGHTS)
                    c.pointee.cmsg_len = Int(WorkerChannel.cmsgLen)
                    (cbuf.baseAddress! + MemoryLayout<cmsghdr>.size).storeBytes(of: attached, as: Int32.self)
                    return Glibc.sendmsg(fd, &msg, Int32(MSG_NOSIGNAL))
                }
            }
        }
        if rc < 0 {
            if errno == EPIPE || errno == ECONNRESET { throw WorkerError.closed }
            throw WorkerError.io("sendmsg: \(String(cString: strerror(errno)))")
        }
    }

    static let cmsgLen = MemoryLayout<cmsghdr>.size + MemoryLayout<Int32>.size
    static let cmsgSpace = (cmsgLen + MemoryLayout<Int>.size - 1) / MemoryLayout<Int>.size * MemoryLayout<Int>.size

    /// Waits for one message until `deadline` (monotonic ns; nil = forever), checking
    /// `stop` every 10 ms. Throws `.closed` at end of stream, `.timedOut`, `.stopped`.
    func receive(deadline: UInt64? = nil, stop: () -> Bool = { false }) throws -> (header: [UInt8], body: [UInt8]) {
        let m = try receiveKeeping(deadline: deadline, stop: stop)
        if let fd = m.attached { Glibc.close(fd) }
        return (m.header, m.body)
    }

    /// `receive`, and the descriptor a sender attached for keeping (the caller closes it).
    func receiveKeeping(deadline: UInt64? = nil, stop: () -> Bool = { false }) throws -> (header: [UInt8], body: [UInt8], attached: Int32?) {
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, 10)
            if r < 0 && errno != EINTR { throw WorkerError.io("poll: \(String(cString: strerror(errno)))") }
            if r > 0 { break }
            if stop() { throw WorkerError.stopped }
            if let deadline, WorkerChannel.now() >= deadline { throw WorkerError.timedOut }
        }
        var buf = [UInt8](repeating: 0, count: WorkerChannel.inlineLimit + 16)
        var control = [UInt8](repeating: 0, count: Int(WorkerChannel.cmsgSpace))
        var received: Int32 = -1
        let n: Int = buf.withUnsafeMutableBytes { b in
            control.withUnsafeMutableBytes { cbuf in
                var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
                return withUnsafeMutablePointer(to: &iov) { iovp in
                    var msg = msghdr()
                    msg.msg_iov = iovp
                    msg.msg_iovlen = 1
                    msg.msg_control = cbuf.baseAddress
                    msg.msg_controllen = cbuf.count
                    let n = Glibc.recvmsg(fd, &msg, Int32(MSG_CMSG_CLOEXEC))
                    if n >= 0 && msg.msg_controllen >= WorkerChannel.cmsgLen {
                        let c = cbuf.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
                        if c.pointee.cmsg_level == SOL_SOCKET && c.pointee.cmsg_type == Int32(SCM_RIGHTS) {
                            received = (cbuf.baseAddress! + MemoryLayout<cmsghdr>.size).load(as: Int32.self)
                        }
                    }
                    return n
                }
            }
        }
        let keep = n > 0 && buf[0] == 2
        var handedOver = false // the caller owns an attached descriptor only on success
        defer { if received >= 0 && !handedOver { Glibc.close(received) } }
        if n < 0 {
            if errno == ECONNRESET { throw WorkerError.closed }
            throw WorkerError.io("recvmsg: \(String(cString: strerror(errno)))")
        }
        if n == 0 { throw WorkerError.closed }
        var frame: ArraySlice<UInt8>
        if buf[0] == 1 {
            guard received >= 0 else { throw WorkerError.io("a memfd message came without its descriptor") }
            guard assay_host_is_sealed(received) == 1 else {
                throw WorkerError.io("a memfd message is not sealed")
            }
            var st = stat()
            guard fstat(received, &st) == 0, st.st_size >= 8, st.st_size < 1 << 31 else { throw WorkerError.io("a memfd message has a bad size") }
            var all = [UInt8](repeating: 0, count: Int(st.st_size))
            var off = 0
            while off < all.count {
                let r = all[off...].withUnsafeMutableBytes { pread(received, $0.baseAddress, $0.count, off_t(off)) }
                if r < 0 && errno == EINTR { continue }
                guard r > 0 else { throw WorkerError.io("reading a memfd message failed") }
                off += r
            }
            frame = all[...]
        } else {
            if keep && received < 0 { throw WorkerError.io("a message came without the descriptor it announced") }
            frame = buf[1..<n]
        }
        guard frame.count >= 8 else { throw WorkerError.io("a short message (\(frame.count) bytes)") }
        func u32(_ at: Int) -> Int {
            let b = frame.startIndex + at
            return Int(frame[b]) | Int(frame[b + 1]) << 8 | Int(frame[b + 2]) << 16 | Int(frame[b + 3]) << 24
        }
        let hl = u32(0), bl = u32(4)
        guard 8 + hl + bl == frame.count else { throw WorkerError.io("a message's lengths do not add up") }
        let h0 = frame.startIndex + 8
        handedOver = keep
        return (Array(frame[h0..<h0 + hl]), Array(frame[(h0 + hl)...]), keep ? received : nil)
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

enum WorkerError: Error, Equatable {
    case closed
    case timedOut
    case stopped
    case io(String)
}
