import AssayCore
import AssayPluginHost

/// A grid of a job's candidates: each scaled up (nearest neighbour) to at least 96 px,
/// the best one framed in green, a bar under each proportional to its score and the
/// candidate's index and score written in a tiny bitmap font.
enum ContactSheet {
    struct Tile {
        var index: Int
        var image: RGBImage
        var score: Double?
    }

    /// Builds the sheet from the job's manifest (scores, best index) and candidate PNGs.
    static func make(manifestPath: String) throws -> RGBImage {
        let manifest: Manifest
        do {
            manifest = try Manifest.decode(try LocalFile.read(manifestPath))
        } catch let f as Failure {
            throw f
        } catch {
            throw Failure(ExitStatus.local, "cannot decode the manifest \(manifestPath): \(error)")
        }
        let jobDir = String(manifestPath[..<(manifestPath.lastIndex(of: "/") ?? manifestPath.startIndex)])
        let primary = manifest.plan.verifiers.first
        var tiles: [Tile] = []
        for c in manifest.candidates {
            guard let name = c.image else { continue }
            let file = name.hasPrefix("/") ? name : jobDir + "/" + name
            let image: RGBImage
            do { image = try PNGEncoder.decode(try LocalFile.read(file)) } catch let f as Failure { throw f } catch {
                throw Failure(ExitStatus.local, "cannot decode candidate \(file): \(error)")
            }
            tiles.append(Tile(index: c.index, image: image, score: primary.flatMap { c.scores[$0] }))
        }
        guard !tiles.isEmpty else {
            throw Failure(ExitStatus.local, "job \(manifest.jobID) saved no candidate images: a contact sheet needs save_candidates")
        }
        return render(tiles, best: manifest.bestIndex)
    }

    static let background: [UInt8] = [32, 32, 36]
    static let frame: [UInt8] = [90, 90, 96]
    static let green: [UInt8] = [40, 220, 70]
    static let barColour: [UInt8] = [80, 150, 255]
    static let track: [UInt8] = [60, 60, 66]
    static let textColour: [UInt8] = [230, 230, 230]

    static func render(_ tiles: [Tile], best: Int?) -> RGBImage {
        let maxW = tiles.map(\.image.width).max() ?? 1, maxH = tiles.map(\.image.height).max() ?? 1
        let scale = max(1, (96 + max(maxW, maxH) - 1) / max(maxW, maxH))
        let tw = maxW * scale, th = maxH * scale
        let pad = 8, barH = 6, textScale = 2, textH = 5 * textScale
        let cellW = tw + 2 * pad, cellH = th + pad + 4 + barH + 4 + textH + pad
        var cols = 1
        while cols * cols < tiles.count { cols += 1 }
        let rows = (tiles.count + cols - 1) / cols
        var canvas = Canvas(width: cols * cellW, height: rows * cellH, colour: background)

        // Bars: absolute when every score is in [0, 1], else relative to the range seen.
        let scores = tiles.compactMap(\.score).filter(\.isFinite)
        let lo = scores.min() ?? 0, hi = scores.max() ?? 1
        let unit = scores.allSatisfy { $0 >= 0 && $0 <= 1 }
        func fraction(_ s: Double) -> Double {
            if unit { return s }
            return hi > lo ? (s - lo) / (hi - lo) : 1
        }

        for (k, tile) in tiles.enumerated() {
            let x0 = (k % cols) * cellW + pad, y0 = (k / cols) * cellH + pad
            let isBest = tile.index == best
            let border = isBest ? 3 : 1
            canvas.fill(x: x0 - border, y: y0 - border, w: tw + 2 * border, h: th + 2 * border, isBest ? green : frame)
            let s = scale
            for y in 0..<(tile.image.height * s) {
                for x in 0..<(tile.image.width * s) {
                    let i = ((y / s) * tile.image.width + x / s) * 3
                    canvas.set(x0 + x, y0 + y, tile.image.pixels[i], tile.image.pixels[i + 1], tile.image.pixels[i + 2])
                }
            }
            let barY = y0 + th + 4
            canvas.fill(x: x0, y: barY, w: tw, h: barH, track)
            if let score = tile.score, score.isFinite {
                let w = Int((min(max(fraction(score), 0), 1) * Double(tw)).rounded())
                canvas.fill(x: x0, y: barY, w: w, h: barH, isBest ? green : barColour)
            }
            let label = "\(tile.index) " + (tile.score.map { $0.isFinite ? formatFixed($0, 3) : "-" } ?? "")
            canvas.text(label, x: x0, y: barY + barH + 4, scale: textScale, isBest ? green : textColour)
        }
        return RGBImage(width: canvas.width, height: canvas.height, pixels: canvas.pixels)
    }

    /// 3x5 glyphs for the characters labels use.
    static let font: [Character: [String]] = [
        "0": ["111", "101", "101", "101", "111"], "1": ["010", "110", "010", "010", "111"],
        "2": ["111", "001", "111", "100", "111"], "3": ["111", "001", "111", "001", "111"],
        "4": ["101", "101", "111", "001", "001"], "5": ["111", "100", "111", "001", "111"],
        "6": ["111", "100", "111", "101", "111"], "7": ["111", "001", "001", "001", "001"],
        "8": ["111", "101", "111", "101", "111"], "9": ["111", "101", "111", "001", "111"],
        ".": ["000", "000", "000", "000", "010"], "-": ["000", "000", "111", "000", "000"],
        "e": ["000", "111", "111", "100", "111"], "+": ["000", "010", "111", "010", "000"],
    ]

    struct Canvas {
        let width: Int, height: Int
        var pixels: [UInt8]
        init(width: Int, height: Int, colour: [UInt8]) {
            self.width = width
            self.height = height
            pixels = [UInt8](repeating: 0, count: width * height * 3)
            for i in 0..<(width * height) { pixels[i * 3] = colour[0]; pixels[i * 3 + 1] = colour[1]; pixels[i * 3 + 2] = colour[2] }
        }
        mutating func set(_ x: Int, _ y: Int, _ r: UInt8, _ g: UInt8, _ b: UInt8) {
            guard x >= 0, y >= 0, x < width, y < height else { return }
            let i = (y * width + x) * 3
            pixels[i] = r; pixels[i + 1] = g; pixels[i + 2] = b
        }
        mutating func fill(x: Int, y: Int, w: Int, h: Int, _ c: [UInt8]) {
            guard w > 0, h > 0 else { return }
            for yy in y..<(y + h) { for xx in x..<(x + w) { set(xx, yy, c[0], c[1], c[2]) } }
        }
        mutating func text(_ s: String, x: Int, y: Int, scale: Int, _ c: [UInt8]) {
            var cx = x
            for ch in s {
                if let glyph = ContactSheet.font[ch] {
                    for (gy, row) in glyph.enumerated() {
                        for (gx, bit) in row.enumerated() where bit == "1" {
                            fill(x: cx + gx * scale, y: y + gy * scale, w: scale, h: scale, c)
                        }
                    }
                }
                cx += 4 * scale
            }
        }
    }
}
