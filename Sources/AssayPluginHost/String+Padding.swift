extension String {
    /// Padded on the left to `width` characters ("7" -> "007").
    public func leftPadded(_ width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
