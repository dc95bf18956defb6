import Foundation

/// Writes PNG files of any colour type byte by byte (stored deflate blocks, no zlib), so
/// tests can hand the daemon gray, palette, alpha, broken and truncated files.
enum PNGWriter {
    enum Colour {
        case rgb, rgba, gray, palette([(UInt8, UInt8, UInt8)])
        var type: UInt8 {
            switch self { case .gray: return 0; case .rgb: return 2; case .palette: return 3; case .rgba: return 6 }
        }
        var channels: Int {
            switch self { case .gray, .palette: return 1; case .rgb: return 3; case .rgba: return 4 }
        }
    }

    /// `samples`: rows top to bottom, `channels` bytes a pixel (palette: indices).
    static func png(width: Int, height: Int, colour: Colour, samples: [UInt8]) -> [UInt8] {
        precondition(samples.count == width * height * colour.channels)
        var raw: [UInt8] = []
        let row = width * colour.channels
        for y in 0..<height { raw.append(0); raw += samples[(y * row)..<((y + 1) * row)] }
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        out += chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [8, colour.type, 0, 0, 0])
        if case .palette(let entries) = colour { out += chunk("PLTE", entries.flatMap { [$0.0, $0.1, $0.2] }) }
        out += chunk("IDAT", zlibStored(raw))
        out += chunk("IEND", [])
        return out
    }

    /// An RGB image from a pixel function.
    static func rgb(width: Int = 32, height: Int = 32, _ pixel: (Int, Int) -> (UInt8, UInt8, UInt8)) -> [UInt8] {
        var s: [UInt8] = []
        for y in 0..<height { for x in 0..<width { let p = pixel(x, y); s += [p.0, p.1, p.2] } }
        return png(width: width, height: height, colour: .rgb, samples: s)
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc32(body))
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return c ^ 0xFFFF_FFFF
    }

    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65535, data.count - i)
            let last: UInt8 = i + n >= data.count ? 1 : 0
            out += [last, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[i..<(i + n)]
            i += n
        } while i < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for x in data { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
        return out + be32((b << 16) | a)
    }
}
