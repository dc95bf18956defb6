/// An 8-bit RGB image, rows top to bottom, 3 bytes a pixel, no padding.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "pixel buffer does not match \(width)x\(height)x3")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}
