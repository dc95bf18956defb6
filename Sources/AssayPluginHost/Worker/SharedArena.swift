import CAssayABI
import Glibc

/// A memory region the daemon and one worker both map: the tensors of model calls (latents,
/// conditions, velocities, block states) go through it instead of the socket, so a call
/// costs two memcpys and a small message. A memfd whose size is sealed: the worker maps
/// exactly the size it sees and neither side can shrink it under the other (a shrunk
/// mapping would fault). Made by the daemon; grown by replacing it.
final class SharedArena {
    let fd: Int32
    let size: Int
    let base: UnsafeMutableRawPointer

    /// A new arena of `size` bytes (the daemon's side).
    init(size: Int) throws {
        let fd = assay_host_memfd("assay-worker-arena")
        guard fd >= 0 else { throw WorkerError.io("memfd_create: \(String(cString: strerror(errno)))") }
        guard ftruncate(fd, off_t(size)) == 0, assay_host_seal_size(fd) == 0 else {
            let why = String(cString: strerror(errno))
            Glibc.close(fd)
            throw WorkerError.io("cannot size the shared arena: \(why)")
        }
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            let why = String(cString: strerror(errno))
            Glibc.close(fd)
            throw WorkerError.io("cannot map the shared arena: \(why)")
        }
        self.fd = fd
        self.size = size
        base = p
    }

    /// Maps an arena received from the daemon (the worker's side); takes `fd`.
    init(received fd: Int32) throws {
        var st = stat()
        guard assay_host_is_size_sealed(fd) == 1, fstat(fd, &st) == 0, st.st_size > 0 else {
            Glibc.close(fd)
            throw WorkerError.io("the shared arena is not a size-sealed memfd")
        }
        guard let p = mmap(nil, Int(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            Glibc.close(fd)
            throw WorkerError.io("cannot map the shared arena")
        }
        self.fd = fd
        size = Int(st.st_size)
        base = p
    }

    deinit {
        munmap(base, size)
        Glibc.close(fd)
    }

    /// A float view at a byte offset, checked against the arena's end.
    func floats(at offset: Int, count: Int) throws -> UnsafeMutablePointer<Float> {
        guard offset >= 0, count >= 0, offset % 4 == 0, offset + count * 4 <= size else {
            throw WorkerError.io("a tensor (\(count) floats at \(offset)) is outside the \(size)-byte arena")
        }
        return (base + offset).assumingMemoryBound(to: Float.self)
    }

    func bytes(at offset: Int, count: Int) throws -> UnsafeMutablePointer<UInt8> {
        guard offset >= 0, count >= 0, offset + count <= size else {
            throw WorkerError.io("\(count) bytes at \(offset) are outside the \(size)-byte arena")
        }
        return (base + offset).assumingMemoryBound(to: UInt8.self)
    }
}
