import AssayPluginHost
import Glibc

/// Scores images a client hands in (`Score` on io.assay.Manager1) with loaded verifiers,
/// outside any job.
///
/// The caps, and why (every one is a ``ScoreLimits`` field and an assayd option):
/// - **16 images a call** (`maxImagesPerCall`). A call carries one descriptor per image;
///   dbus-daemon passes at most 16 descriptors in one message by default
///   (`max_message_unix_fds`) and disconnects a client that sends more, and the kernel at
///   most 253. Capping at the bus's default keeps the answer ours and clear; a bus
///   configured higher can go with `--score-max-images` (up to 253). A benchmark scores
///   more images in several calls (assayctl does that for you).
/// - **16 MiB of PNG an image, 64 MiB a call; 4096 pixels a side, 16 Mpx an image, 64 Mpx
///   a call.** Memory: the daemon holds a call's files and decoded pixels at once (64 Mpx is
///   192 MiB of RGB), and the size limits are checked before a pixel buffer is allocated.
/// - **2 seconds to read all of a call's descriptors** (`readTimeoutMs`). A descriptor is
///   the client's: a pipe or FIFO may never deliver its data. Reads poll with the time
///   left, so such a call is refused, not left hanging a thread.
/// - **2 calls in flight per client, 4 in all** (`maxInFlightPerClient`, `maxInFlight`).
///   Scoring runs off the bus thread while jobs run too; a client scoring in a loop gets
///   QueueFull instead of taking every core, and others are still served.
///   Clients are told apart as for the job queue (`--client-identity`).
///
/// Verifier calls are counted as in a job: scoring n images with v verifiers is n × v
/// calls, reserved on a ``BudgetMeter`` before each verifier runs.
public struct ScoreLimits: Sendable {
    public var maxImagesPerCall = 16
    public var maxBytesPerImage = 16 << 20
    public var maxBytesPerCall = 64 << 20
    public var decode = PNGDecoder.Limits(maxSide: 4096, maxPixels: 4096 * 4096)
    public var maxPixelsPerCall = 64 << 20
    public var readTimeoutMs = 2000
    public var maxInFlightPerClient = 2
    public var maxInFlight = 4
    public init() {}
}

/// One image's result.
public struct ImageScore: Sendable {
    public var width: Int
    public var height: Int
    /// Verifier id → score (higher is better; scales differ between verifiers).
    public var scores: [String: Double] = [:]
    /// Verifier id → the plugin's details JSON, when it gave one.
    public var details: [String: String] = [:]
}

public enum ImageScorer {
    /// Reads up to `maxBytes` from a client's descriptor without ever blocking past
    /// `deadlineNs` (CLOCK_MONOTONIC, as `DispatchTimeClock`): poll with the time left, then
    /// read what is there. A regular file is read from offset 0 with pread (its offset,
    /// shared with the sender, is left alone). Throws `invalidImage` saying what went wrong.
    public static func readDescriptor(_ fd: Int32, index: Int, maxBytes: Int, deadlineNs: UInt64) throws -> [UInt8] {
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw AssayError.invalidImage("image \(index): the descriptor is not usable: \(String(cString: strerror(errno)))")
        }
        let mode = st.st_mode & S_IFMT
        if mode == S_IFDIR { throw AssayError.invalidImage("image \(index): the descriptor is a directory, not a PNG file") }
        let regular = mode == S_IFREG
        if regular && st.st_size > off_t(maxBytes) {
            throw AssayError.invalidImage("image \(index) is \(st.st_size) bytes; at most \(maxBytes) are accepted")
        }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            if !regular {
                let now = DispatchTimeClock.now()
                guard now < deadlineNs else {
                    throw AssayError.invalidImage("image \(index): the descriptor gave no end of data in time (a pipe whose writer never finishes?); send a file or a pipe that is written and closed")
                }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let waitMs = Int32(min((deadlineNs - now) / 1_000_000 + 1, 60_000))
                let r = poll(&p, 1, waitMs)
                if r < 0 {
                    if errno == EINTR { continue }
                    throw AssayError.invalidImage("image \(index): polling the descriptor failed: \(String(cString: strerror(errno)))")
                }
                if r == 0 { continue } // the deadline check above ends it
                if p.revents & Int16(POLLNVAL) != 0 {
                    throw AssayError.invalidImage("image \(index): the descriptor is not open")
                }
            }
            let want = min(buffer.count, maxBytes + 1 - out.count)
            let n = buffer.withUnsafeMutableBytes { b -> Int in
                regular ? pread(fd, b.baseAddress, want, off_t(out.count)) : read(fd, b.baseAddress, want)
            }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw AssayError.invalidImage("image \(index): the descriptor cannot be read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            out += buffer[0..<n]
            if out.count > maxBytes {
                throw AssayError.invalidImage("image \(index) is more than \(maxBytes) bytes; at most \(maxBytes) are accepted")
            }
        }
        return out
    }

    /// Decodes every file (in order), checking the per-call pixel cap.
    public static func decode(_ files: [[UInt8]], limits: ScoreLimits) throws -> [RGBImage] {
        var pixels = 0
        return try files.enumerated().map { i, bytes in
            guard !bytes.isEmpty else { throw AssayError.invalidImage("image \(i) is empty (0 bytes): not a PNG") }
            let image: RGBImage
            do { image = try PNGDecoder.decode(bytes, limits: limits.decode) } catch let e as AssayError {
                throw AssayError.invalidImage("image \(i): \(e.message)")
            }
            pixels += image.width * image.height
            guard pixels <= limits.maxPixelsPerCall else {
                throw AssayError.invalidImage("the images add up to more than \(limits.maxPixelsPerCall) pixels (at image \(i)); send fewer in one call")
            }
            return image
        }
    }

    /// Scores `images` under every verifier (one batch per verifier), counting n verifier
    /// calls per verifier on `meter` before each. A verifier's refusal names it and, when
    /// the batch had several images, the first image it refuses alone (found by scoring
    /// them one by one, each of those calls counted too).
    public static func score(prompt: String, images: [RGBImage], verifiers: [VerifierPlugin],
                             meter: BudgetMeter, context: PluginCallContext) throws -> [ImageScore] {
        var out = images.map { ImageScore(width: $0.width, height: $0.height) }
        for v in verifiers {
            let id = v.instance.id
            try meter.reserveVerifierCalls(images.count)
            let result: (scores: [Double], details: [String?])
            do {
                result = try v.score(prompt: prompt, images: images, context: context)
            } catch let e as PluginCallError where e.isCrash {
                // Not narrowed down image by image: each try would crash it again.
                throw AssayError.pluginCrashed("verifier '\(id)' \(e.message)")
            } catch let e as PluginCallError {
                var which = images.count == 1 ? "image 0: " : ""
                if images.count > 1 {
                    for (i, image) in images.enumerated() {
                        guard (try? meter.reserveVerifierCalls(1)) != nil else { break }
                        if (try? v.score(prompt: prompt, images: [image], context: context)) == nil { which = "image \(i): "; break }
                    }
                }
                let message = "\(which)verifier '\(id)' cannot judge it: \(e.message)"
                if e.isInvalidArgument || e.isUnsupported { throw AssayError.invalidImage(message) }
                throw AssayError.failed("\(which)verifier '\(id)' failed: \(e.message)")
            }
            for k in out.indices {
                out[k].scores[id] = result.scores[k]
                if let d = result.details[k] { out[k].details[id] = d }
            }
        }
        return out
    }
}
