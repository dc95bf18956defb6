import AssayPluginHost
import CPNG

/// PNG encoding through libpng's simplified API (no setjmp error handling needed).
public enum PNGEncoder {
    public static func encode(_ image: RGBImage) throws -> [UInt8] {
        var png = png_image()
        png.version = UInt32(PNG_IMAGE_VERSION)
        png.width = UInt32(image.width)
        png.height = UInt32(image.height)
        png.format = UInt32(PNG_FORMAT_RGB)
        var size = 0
        let stride = Int32(image.width * 3)
        let ok1 = image.pixels.withUnsafeBufferPointer {
            png_image_write_to_memory(&png, nil, &size, 0, $0.baseAddress, stride, nil)
        }
        guard ok1 != 0, size > 0 else { throw AssayError.failed("PNG encoding failed: \(errorMessage(&png))") }
        var out = [UInt8](repeating: 0, count: size)
        let ok2 = image.pixels.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBytes { png_image_write_to_memory(&png, $0.baseAddress, &size, 0, px.baseAddress, stride, nil) }
        }
        guard ok2 != 0 else { throw AssayError.failed("PNG encoding failed: \(errorMessage(&png))") }
        png_image_free(&png)
        return Array(out.prefix(size))
    }

    /// Decodes an 8-bit RGB PNG (tests and contact sheets read results back).
    public static func decode(_ bytes: [UInt8]) throws -> RGBImage {
        var png = png_image()
        png.version = UInt32(PNG_IMAGE_VERSION)
        let ok = bytes.withUnsafeBytes { png_image_begin_read_from_memory(&png, $0.baseAddress, $0.count) }
        guard ok != 0 else { throw AssayError.failed("not a PNG: \(errorMessage(&png))") }
        png.format = UInt32(PNG_FORMAT_RGB)
        var pixels = [UInt8](repeating: 0, count: Int(png.width) * Int(png.height) * 3)
        let ok2 = pixels.withUnsafeMutableBytes { png_image_finish_read(&png, nil, $0.baseAddress, Int32(png.width * 3), nil) }
        guard ok2 != 0 else { throw AssayError.failed("PNG decoding failed: \(errorMessage(&png))") }
        return RGBImage(width: Int(png.width), height: Int(png.height), pixels: pixels)
    }

    private static func errorMessage(_ png: inout png_image) -> String {
        withUnsafeBytes(of: &png.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
