import AssayPluginHost
import CPNG
import Glibc

/// Decodes PNG files a client hands in (`Score`) into 8-bit RGB, refusing anything it
/// cannot read with a reason. libpng's longjmp error path is contained in the C shim
/// (`assay_png_decode_rgb8` in Sources/CPNG/shim.h): Swift only sees a status and a message.
///
/// Accepted: gray, gray+alpha, palette, RGB and RGBA, 1 to 16 bits, interlaced or not; all
/// become RGB8 (palette and low-bit gray expanded, 16 bits stripped, alpha dropped).
public enum PNGDecoder {
    public struct Limits: Sendable {
        /// Largest width or height accepted.
        public var maxSide: Int
        /// Largest width × height accepted.
        public var maxPixels: Int
        public init(maxSide: Int = 4096, maxPixels: Int = 4096 * 4096) {
            self.maxSide = maxSide
            self.maxPixels = maxPixels
        }
    }

    /// Throws `AssayError.invalidImage` for anything that is not a complete, readable PNG
    /// within `limits`.
    public static func decode(_ bytes: [UInt8], limits: Limits = Limits()) throws -> RGBImage {
        var width: UInt32 = 0, height: UInt32 = 0
        var pixels: UnsafeMutablePointer<UInt8>?
        var message = [CChar](repeating: 0, count: 320)
        let status = bytes.withUnsafeBufferPointer { buf in
            message.withUnsafeMutableBufferPointer { msg in
                assay_png_decode_rgb8(buf.baseAddress, buf.count, UInt32(clamping: limits.maxSide),
                                      UInt64(clamping: limits.maxPixels), &width, &height, &pixels,
                                      msg.baseAddress, msg.count)
            }
        }
        guard status == 0, let pixels else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw AssayError.invalidImage(text.isEmpty ? "invalid PNG" : text)
        }
        defer { free(pixels) }
        let count = Int(width) * Int(height) * 3
        return RGBImage(width: Int(width), height: Int(height),
                        pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }
}
