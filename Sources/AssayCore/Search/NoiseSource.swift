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
        childSeed(jobSeed, UInt64(index))
    }

    /// The seed of child `k` of a node seeded `seed` (root i of a job is child i of the job).
    public static func childSeed(_ seed: UInt64, _ k: UInt64) -> UInt64 {
        mix(seed ^ mix(k &+ 1))
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

extension NoiseSource {
    /// The seed of the node at `path` in a search tree: a root's path is [index] (so root i
    /// has the seed of best-of-n's candidate i), and each step down mixes in the child's
    /// position. A node's noise therefore depends only on where it sits in the tree, never
    /// on the batch or wave it was computed in, so any node replays alone.
    public static func seed(jobSeed: UInt64, path: [UInt64]) -> UInt64 {
        path.reduce(jobSeed) { childSeed($0, $1) }
    }

    /// A neighbour of `pivot` (tt-scale-flux's zero-order step, made reproducible): a
    /// random direction from `seed`, made orthogonal to the pivot, mixed in at cosine
    /// similarity `similarity`, and scaled to the pivot's norm.
    public static func neighbour(of pivot: ArraySlice<Float>, similarity: Double, seed: UInt64) -> [Float] {
        let p = pivot.map(Double.init)
        var u = gaussian(seed: seed, count: p.count).map(Double.init)
        let pp = p.reduce(0) { $0 + $1 * $1 }
        let norm = pp.squareRoot()
        guard norm > 0 else { return u.map(Float.init) }
        let proj = zip(u, p).reduce(0) { $0 + $1.0 * $1.1 } / pp
        for i in u.indices { u[i] -= proj * p[i] }
        let un = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let c = min(1, max(-1, similarity)), s = (1 - c * c).squareRoot()
        return p.indices.map { i in Float(c * p[i] + s * (un > 0 ? u[i] / un * norm : 0)) }
    }

    /// Forward noising of a flow state from t to t2 > t (x_t = (1-t) x0 + t ε), keeping the
    /// marginals: x_t2 = a x_t + b ε' with a = (1-t2)/(1-t), b = sqrt(t2² - a² t²).
    public static func renoise(_ x: ArraySlice<Float>, from t: Double, to t2: Double, seed: UInt64) -> [Float] {
        precondition(t < 1 && t2 > t)
        let a = (1 - t2) / (1 - t)
        let b = max(0, t2 * t2 - a * a * t * t).squareRoot()
        let e = gaussian(seed: seed, count: x.count)
        return zip(x, e).map { Float(a * Double($0.0) + b * Double($0.1)) }
    }
}
