/// The time schedule shared by the host's Euler integrator and recorded in manifests:
/// t_i = shift(1 - i/steps), shift(u) = s u / (1 + (s - 1) u) (see ext/model.h).
public enum Schedule {
    public static func times(steps: Int, shift: Double) -> [Float] {
        (0...steps).map { i in time(u: 1.0 - Double(i) / Double(steps), shift: shift) }
    }

    static func time(u: Double, shift: Double) -> Float {
        let s = shift > 0 ? shift : 1
        return Float(s * u / (1 + (s - 1) * u))
    }

    /// The inverse of shift: the uniform position u of time t.
    static func position(t: Double, shift: Double) -> Double {
        let s = shift > 0 ? shift : 1
        return t / (s - (s - 1) * t)
    }

    /// The times of an integration from `from` down to `to`: the model's own schedule
    /// restricted to the segment, with both ends added (so 1 → 0 is exactly the full
    /// schedule, and splitting it at schedule points composes exactly). With `steps`, the
    /// segment gets that many steps of its own, uniform in the shifted time.
    public static func segment(from: Float, to: Float, steps: Int, shift: Double, stepsInSegment: Int? = nil) -> [Float] {
        precondition(from > to)
        if let k = stepsInSegment, k >= 1 {
            let ua = position(t: Double(from), shift: shift), ub = position(t: Double(to), shift: shift)
            return [from] + (1..<k).map { time(u: ua + (ub - ua) * Double($0) / Double(k), shift: shift) } + [to]
        }
        let inner = times(steps: steps, shift: shift).filter { $0 < from && $0 > to }
        return [from] + inner + [to]
    }
}
