import Glibc

/// Reproducible starting noise. A job's seed derives one seed per candidate, and each
/// candidate seed alone determines its noise, so a manifest can replay any candidate.
public enum NoiseSource {
    /// SplitMix64 step: a well-mixed 64-bit hash.
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The seed of candidate `index` of a job seeded with `jobSeed`.
    public static func candidateSeed(jobSeed: UInt64, index: Int) -> UInt64 {
        mix(jobSeed ^ mix(UInt64(index) &+ 1))
    }

    /// `count` standard normal floats from xoshiro256** and the Box-Muller transform.
    public static func gaussian(seed: UInt64, count: Int) -> [Float] {
        var s0 = mix(seed), s1 = mix(s0), s2 = mix(s1), s3 = mix(s2)
        func next() -> UInt64 {
            let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
            let t = s1 << 17
            s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
            s3 = (s3 << 45) | (s3 >> 19)
            return result
        }
        func uniform() -> Double { (Double(next() >> 11) + 0.5) / 9_007_199_254_740_992.0 } // (0,1)
        var out = [Float](repeating: 0, count: count)
        var i = 0
        while i < count {
            let r = (-2.0 * log(uniform())).squareRoot()
            let theta = 2.0 * Double.pi * uniform()
            out[i] = Float(r * cos(theta))
            if i + 1 < count { out[i + 1] = Float(r * sin(theta)) }
            i += 2
        }
        return out
    }
}

/// The time schedule shared by the host's Euler integrator and recorded in manifests:
/// t_i = shift(1 - i/steps), shift(u) = s u / (1 + (s - 1) u) (see ext/model.h).
public enum Schedule {
    public static func times(steps: Int, shift: Double) -> [Float] {
        (0...steps).map { i in
            let u = 1.0 - Double(i) / Double(steps)
            let s = shift > 0 ? shift : 1
            return Float(s * u / (1 + (s - 1) * u))
        }
    }
}
