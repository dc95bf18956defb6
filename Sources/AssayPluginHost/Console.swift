import Glibc

/// Standard error and output for the command-line tools, without C's `stderr`/`stdout`
/// globals (shared mutable state that Swift 6's concurrency checking rightly refuses).
public enum Console {
    /// Writes `text` to file descriptor 2, all of it.
    public static func error(_ text: String) {
        var copy = text
        copy.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { if errno == EINTR { continue }; break }
                offset += n
            }
        }
    }

    /// Flushes buffered standard output (before writing to standard error or exiting).
    public static func flushOutput() { fflush(nil) }
}
