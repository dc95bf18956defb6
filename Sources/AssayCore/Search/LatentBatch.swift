/// Trajectory states as values: rows of latents at one time t, each row a node of the
/// job's search tree. Copying a batch is cheap and branching is explicit: the toolkit's
/// operations take a batch and return a new one whose rows are new child nodes, so two
/// branches of the same state never share a row.
public struct LatentBatch: Sendable {
    /// Node id of each row (`SearchToolkit.nodes`).
    public internal(set) var nodes: [Int]
    /// The latents, row-major: `count` rows of `sampleSize` floats.
    public internal(set) var x: [Float]
    /// The time all rows are at (1 = noise, 0 = clean).
    public internal(set) var t: Float
    /// Condition of each row (index into `SearchToolkit.conditions`).
    public internal(set) var conditions: [Int]
    /// The model role whose latent space the rows live in.
    public internal(set) var role: String
    /// The guided velocity at (x, t) of each row when the toolkit already paid for it (an
    /// x0-prediction computes it); the next integration starts from it instead of paying
    /// again. Nil when unknown.
    var velocity: [Float]?

    public var count: Int { nodes.count }
    public var sampleSize: Int { nodes.isEmpty ? 0 : x.count / nodes.count }

    init(nodes: [Int], x: [Float], t: Float, conditions: [Int], role: String, velocity: [Float]? = nil) {
        precondition(conditions.count == nodes.count && (nodes.isEmpty || x.count % nodes.count == 0))
        self.nodes = nodes
        self.x = x
        self.t = t
        self.conditions = conditions
        self.role = role
        self.velocity = velocity
    }

    /// Latent of row `i`.
    public func latent(_ i: Int) -> ArraySlice<Float> {
        let ss = sampleSize
        return x[i * ss..<(i + 1) * ss]
    }

    /// The rows at `indices` (in that order, repeats allowed) as a batch of the same nodes.
    /// Selection is not branching: the rows keep their node ids, so continue only one of
    /// two overlapping selections, or branch with `SearchToolkit.copy`.
    public func rows(_ indices: [Int]) -> LatentBatch {
        let ss = sampleSize
        var xs = [Float](), vs: [Float]? = velocity == nil ? nil : []
        xs.reserveCapacity(indices.count * ss)
        for i in indices {
            xs.append(contentsOf: x[i * ss..<(i + 1) * ss])
            if let v = velocity { vs!.append(contentsOf: v[i * ss..<(i + 1) * ss]) }
        }
        return LatentBatch(nodes: indices.map { nodes[$0] }, x: xs, t: t, conditions: indices.map { conditions[$0] },
                           role: role, velocity: vs)
    }

    /// Rows whose node is in `keep`, in this batch's order.
    public func rows(nodes keep: Set<Int>) -> LatentBatch {
        rows(nodes.indices.filter { keep.contains(nodes[$0]) })
    }

    /// Several batches at the same time and role as one.
    public static func joined(_ parts: [LatentBatch]) -> LatentBatch {
        guard let first = parts.first else { return LatentBatch(nodes: [], x: [], t: 1, conditions: [], role: "base") }
        precondition(parts.allSatisfy { $0.t == first.t && $0.role == first.role }, "joined batches must share t and role")
        let allV = parts.allSatisfy { $0.velocity != nil }
        return LatentBatch(nodes: parts.flatMap(\.nodes), x: parts.flatMap(\.x), t: first.t,
                           conditions: parts.flatMap(\.conditions), role: first.role,
                           velocity: allV ? parts.flatMap { $0.velocity! } : nil)
    }
}
