import Foundation
import Glibc

// The data behind `assayctl report`: a manifest read as plain JSON (any shape it may have),
// its nodes and the search tree they form. Nothing here trusts a field to exist or to have
// the expected type: a missing or odd field is shown as missing, never a crash.

/// A JSON value as the report reads it. Integers stay exact (seeds are 64-bit); booleans
/// stay booleans.
enum ReportJSON: Decodable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([ReportJSON])
    case object([String: ReportJSON])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int64.self) { self = .int(i); return }
        if let u = try? c.decode(UInt64.self) { self = .uint(u); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([ReportJSON].self) { self = .array(a); return }
        if let o = try? c.decode([String: ReportJSON].self) { self = .object(o); return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value")
    }

    /// Parses `bytes`; a description of what is wrong otherwise.
    static func parse(_ bytes: [UInt8]) -> Result<ReportJSON, ReportParseError> {
        do {
            return .success(try JSONDecoder().decode(ReportJSON.self, from: Data(bytes)))
        } catch let DecodingError.dataCorrupted(context) {
            let why = (context.underlyingError.map { "\($0)" } ?? context.debugDescription)
            return .failure(ReportParseError(message: why))
        } catch {
            return .failure(ReportParseError(message: "\(error)"))
        }
    }

    subscript(key: String) -> ReportJSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var object: [String: ReportJSON]? { if case .object(let o) = self { return o }; return nil }
    var array: [ReportJSON]? { if case .array(let a) = self { return a }; return nil }
    var string: String? { if case .string(let s) = self { return s }; return nil }
    var isNull: Bool { self == .null }

    /// A number, also from the strings the manifest writer uses for non-finite floats.
    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .uint(let u): return Double(u)
        case .double(let d): return d
        case .string(let s):
            switch s.lowercased() {
            case "nan": return .nan
            case "inf", "+inf", "infinity": return .infinity
            case "-inf", "-infinity": return -.infinity
            default: return nil
            }
        default: return nil
        }
    }

    /// An integer (a whole double counts too).
    var integer: Int? {
        switch self {
        case .int(let i): return Int(exactly: i)
        case .uint(let u): return Int(exactly: u)
        case .double(let d): return d.isFinite && d.rounded() == d && abs(d) < 9e15 ? Int(d) : nil
        default: return nil
        }
    }

    /// A node reference (`id`, `parent`, `chosen_path` items, `result_node`) as a key:
    /// integers in decimal, strings as they are; anything else is no reference.
    var key: String? {
        if let i = integer { return String(i) }
        if case .uint(let u) = self { return String(u) }
        if case .string(let s) = self, !s.isEmpty { return s }
        return nil
    }

    /// Short text for a scalar (strings bare), compact JSON for the rest.
    var text: String {
        switch self {
        case .string(let s): return s
        default: return json
        }
    }

    /// Compact JSON (keys sorted).
    var json: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .uint(let u): return String(u)
        case .double(let d): return ReportFormat.number(d)
        case .string(let s): return ReportFormat.quoted(s)
        case .array(let a): return "[" + a.map(\.json).joined(separator: ", ") + "]"
        case .object(let o):
            return "{" + o.keys.sorted().map { ReportFormat.quoted($0) + ": " + o[$0]!.json }.joined(separator: ", ") + "}"
        }
    }
}

struct ReportParseError: Error {
    let message: String
}

enum ReportFormat {
    /// Up to 4 significant digits ("0.8123", "1", "12.35"); nan / inf spelled out.
    static func score(_ d: Double) -> String { format(d, "%.4g") }

    /// Up to 3 significant digits (t values).
    static func time(_ d: Double) -> String { format(d, "%.3g") }

    /// Shortest exact form of a double.
    static func number(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d > 0 ? "inf" : "-inf" }
        if d.rounded() == d && abs(d) < 1e15 { return String(Int64(d)) }
        return "\(d)"
    }

    static func format(_ d: Double, _ spec: String) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d > 0 ? "inf" : "-inf" }
        return String(format: spec, d)
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if ch.value < 0x20 { out += String(format: "\\u%04x", ch.value) } else { out.unicodeScalars.append(ch) }
            }
        }
        return out + "\""
    }
}

// MARK: nodes

/// One node of the search tree (or, for a manifest before version 2, one candidate).
struct ReportNode {
    /// Position in the manifest's list.
    var index: Int
    /// The node's id as a key (decimal for integers); nil when the manifest gives none.
    var key: String?
    var parentKey: String?
    var op: String
    var role: String?
    var model: String?
    var tFrom: Double?
    var tTo: Double?
    var condition: Int?
    var seedPath: ReportJSON?
    var seed: ReportJSON?
    var nfe: Int?
    /// Integration steps of an `integrate` with its own count.
    var steps: Int?
    /// Strength of a random operation (a neighbour's cosine similarity, an sde step's churn).
    var strength: Double?
    var pool: String?
    /// Verifier → score, sorted by verifier id; a score that is not a number is nil.
    var scores: [(verifier: String, score: Double?)]
    var meanRank: Double?
    var image: String?
    var latent: String?
    var candidate: Int?
    /// The sampler plugin that integrated it, and the FLOPs it ran over uncached ones.
    var sampler: String?
    var flopRatio: Double?
    /// What a reflector said about this trajectory (visual reflection): its feedback and
    /// negative prompt, from the JSON object it wrote.
    var feedback: String?
    var negativePrompt: String?
    /// Fields the report does not know, shown in the node's tooltip.
    var extra: [(String, ReportJSON)]

    /// What the page calls it: "#17", or "candidate 3", or "node 5 in the list" without an id.
    var label: String {
        if let key { return op == "candidate" ? "candidate \(key.dropFirst())" : "#\(key)" }
        return "node [\(index)]"
    }

    /// A stable DOM id.
    var domID: String { "node-" + (key.map(ReportNode.domSafe) ?? "index-\(index)") }

    static func domSafe(_ s: String) -> String {
        String(s.unicodeScalars.map { c -> Character in
            (c.properties.isAlphabetic && c.isASCII) || ("0"..."9").contains(c) || c == "-" || c == "_" ? Character(c) : "_"
        })
    }

    static let knownKeys: Set<String> = [
        "id", "parent", "op", "role", "model", "t_from", "t_to", "condition", "seed_path", "seed", "nfe", "pool",
        "scores", "mean_rank", "image", "latent_sha256", "candidate", "index", "node", "details", "steps", "strength",
        "sampler", "flop_ratio", "reflection",
    ]

    init(index: Int, json: ReportJSON) {
        self.index = index
        key = json["id"]?.key
        parentKey = json["parent"]?.key
        op = json["op"]?.string.flatMap { $0.isEmpty ? nil : $0 } ?? "?"
        role = json["role"]?.string
        model = json["model"]?.string
        tFrom = json["t_from"]?.number
        tTo = json["t_to"]?.number
        condition = json["condition"]?.integer
        seedPath = json["seed_path"].flatMap { $0.isNull ? nil : $0 }
        seed = json["seed"].flatMap { $0.isNull ? nil : $0 }
        nfe = json["nfe"]?.integer ?? json["nfe"]?.number.flatMap { $0.isFinite && abs($0) < 9e15 ? Int($0.rounded()) : nil }
        steps = json["steps"]?.integer
        strength = json["strength"]?.number
        pool = json["pool"]?.string ?? json["pool"].flatMap { $0.isNull ? nil : $0.text }
        scores = ReportNode.scores(json["scores"])
        meanRank = json["mean_rank"]?.number
        image = json["image"]?.string.flatMap { $0.isEmpty ? nil : $0 }
        latent = json["latent_sha256"]?.string
        candidate = json["candidate"]?.integer
        sampler = json["sampler"]?.string
        flopRatio = json["flop_ratio"]?.number
        if let text = json["reflection"]?.string {
            let r = ReportJSON.parse(Array(text.utf8))
            if case .success(let obj) = r {
                feedback = obj["feedback"]?.string
                negativePrompt = obj["negative_prompt"]?.string
            } else {
                feedback = text
            }
        }
        extra = (json.object ?? [:]).filter { !ReportNode.knownKeys.contains($0.key) && !$0.value.isNull }
            .sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// A candidate of a manifest before version 2, as a root node.
    init(candidate json: ReportJSON, position: Int, model: String?) {
        self.init(index: position, json: json)
        let number = json["index"]?.integer ?? position
        key = "c\(number)"
        parentKey = nil
        op = "candidate"
        self.model = model
        candidate = number
    }

    static func scores(_ json: ReportJSON?) -> [(verifier: String, score: Double?)] {
        guard let o = json?.object else { return [] }
        return o.keys.sorted().map { ($0, o[$0]!.number) }
    }
}

struct ReportCondition {
    var prompt: String?
    var negativePrompt: String?
    var guidance: Double?
    var extra: [(String, ReportJSON)]
}

// MARK: the tree

/// The nodes as a forest. Every node appears exactly once: a node whose parent is not in
/// the manifest becomes a root (and is noted), and a cycle of parents is cut at one node.
struct ReportTree {
    var nodes: [ReportNode]
    var roots: [Int] = []
    var children: [[Int]]
    /// The node's own NFEs plus every descendant's.
    var subtreeNFE: [Int]
    /// The whole subtree is one line: no node in it has more than one child.
    var isLine: [Bool]
    var depth: [Int]
    var notes: [String] = []
    var indexByKey: [String: Int] = [:]

    init(_ nodes: [ReportNode]) {
        self.nodes = nodes
        children = Array(repeating: [], count: nodes.count)
        subtreeNFE = Array(repeating: 0, count: nodes.count)
        isLine = Array(repeating: true, count: nodes.count)
        depth = Array(repeating: 0, count: nodes.count)
        var duplicates: [String] = []
        for n in nodes {
            guard let k = n.key else { continue }
            if indexByKey[k] == nil { indexByKey[k] = n.index } else { duplicates.append(k) }
        }
        if !duplicates.isEmpty {
            notes.append("node ids used more than once: \(ReportTree.list(duplicates)) (children attach to the first)")
        }
        // Parent links (by key), in manifest order.
        var linked: [[Int]] = Array(repeating: [], count: nodes.count)
        var isRoot = Array(repeating: false, count: nodes.count)
        var missingParents: [String] = [], ownParent: [String] = []
        for n in nodes {
            if let p = n.parentKey {
                if let pi = indexByKey[p], pi != n.index {
                    linked[pi].append(n.index)
                } else {
                    isRoot[n.index] = true
                    if indexByKey[p] == nil { missingParents.append("\(n.label) → #\(p)") } else { ownParent.append(n.label) }
                }
            } else {
                isRoot[n.index] = true
            }
        }
        if !ownParent.isEmpty { notes.append("nodes that are their own parent (shown as roots): \(ReportTree.list(ownParent))") }
        if !missingParents.isEmpty {
            notes.append("parents not in the manifest (shown as roots): \(ReportTree.list(missingParents))")
        }
        // Breadth first from the roots; what that leaves unvisited hangs in a cycle of
        // parents, which is cut at its first node in manifest order.
        var visited = Array(repeating: false, count: nodes.count)
        var order: [Int] = []
        order.reserveCapacity(nodes.count)
        func walk(from start: Int) {
            visited[start] = true
            var head = order.count
            order.append(start)
            while head < order.count {
                let n = order[head]
                head += 1
                for c in linked[n] where !visited[c] {
                    visited[c] = true
                    children[n].append(c)
                    depth[c] = depth[n] + 1
                    order.append(c)
                }
            }
        }
        for i in nodes.indices where isRoot[i] {
            roots.append(i)
            walk(from: i)
        }
        var cut: [String] = []
        for i in nodes.indices where !visited[i] {
            roots.append(i)
            cut.append(nodes[i].label)
            walk(from: i)
        }
        if !cut.isEmpty { notes.append("cycles of parents, cut at (shown as roots): \(ReportTree.list(cut))") }
        // Sums and shapes, leaves first.
        for n in order.reversed() {
            var sum = max(0, nodes[n].nfe ?? 0)
            var line = children[n].count <= 1
            for c in children[n] {
                sum = sum.addingReportingOverflow(subtreeNFE[c]).overflow ? Int.max : sum + subtreeNFE[c]
                line = line && isLine[c]
            }
            subtreeNFE[n] = sum
            isLine[n] = line
        }
    }

    static func list(_ items: [String]) -> String {
        items.count <= 12 ? items.joined(separator: ", ") : items.prefix(12).joined(separator: ", ") + ", … (\(items.count) in all)"
    }

    var maxDepth: Int { depth.max().map { $0 + 1 } ?? 0 }
    var leafCount: Int { children.filter(\.isEmpty).count }
}

// MARK: the document

/// Everything the page shows, read from one manifest.
struct ReportDocument {
    var manifestPath: String
    var manifestDirectory: String
    var version: Int?
    var jobID: String?
    var prompt: String?
    var state: String?
    var stopReason: String?
    var error: String?
    var nfeUsed: Int?
    var verifierCalls: Int?
    var reflectorCalls: Int?
    var plan: [String: ReportJSON] = [:]
    var strategy: String?
    var strategyOptions: [(String, ReportJSON)] = []
    var models: [(String, String)] = []
    var verifiers: [String] = []
    var budgetNFE: Int?
    var seed: ReportJSON?
    var conditions: [ReportCondition] = []
    var result: String?
    var resultKey: String?
    var bestScore: Double?
    /// True for a manifest of version 2 or later that has nodes.
    var isTree = false
    var tree: ReportTree
    /// Node indices from a root to the result, in order.
    var chosenPath: [Int] = []
    var chosen: Set<Int> = []
    var resultIndex: Int?
    var notes: [String] = []

    /// Reads a manifest; only JSON that is not an object is refused.
    static func load(_ bytes: [UInt8], manifestPath: String) throws -> ReportDocument {
        let json: ReportJSON
        switch ReportJSON.parse(bytes) {
        case .success(let j): json = j
        case .failure(let e):
            throw Failure(ExitStatus.local, "\(manifestPath) is not a job manifest: it is not valid JSON (\(e.message))")
        }
        guard json.object != nil else {
            throw Failure(ExitStatus.local, "\(manifestPath) is not a job manifest: its JSON is not an object")
        }
        return ReportDocument(json, manifestPath: manifestPath)
    }

    init(_ m: ReportJSON, manifestPath: String) {
        self.manifestPath = manifestPath
        if let slash = manifestPath.lastIndex(of: "/") {
            let dir = String(manifestPath[..<slash])
            manifestDirectory = dir.isEmpty ? "/" : dir
        } else {
            manifestDirectory = "."
        }
        version = m["manifest_version"]?.integer
        jobID = m["job_id"]?.key
        prompt = m["prompt"].flatMap { $0.isNull ? nil : $0.text }
        state = m["state"]?.string
        stopReason = m["stop_reason"]?.string
        error = m["error"]?.string.flatMap { $0.isEmpty ? nil : $0 }
        nfeUsed = m["nfe_used"]?.integer
        verifierCalls = m["verifier_calls"]?.integer
        reflectorCalls = m["reflector_calls"]?.integer
        plan = m["plan"]?.object ?? [:]
        strategy = plan["strategy"]?.string
        budgetNFE = plan["budget_nfe"]?.integer
        seed = plan["seed"].flatMap { $0.isNull ? nil : $0 }
        verifiers = plan["verifiers"]?.array?.compactMap(\.string) ?? []
        if let models = plan["models"]?.object {
            self.models = models.keys.sorted().map { ($0, models[$0]!.text) }
        } else if let model = plan["model"]?.string {
            models = [("base", model)]
        }
        if let options = plan["strategy_options"]?.object {
            strategyOptions = options.keys.sorted().map { ($0, options[$0]!) }
        } else if let n = plan["n"], !n.isNull {
            strategyOptions = [("n", n)]
        }
        for c in m["conditions"]?.array ?? [] {
            let known: Set<String> = ["prompt", "negative_prompt", "guidance"]
            conditions.append(ReportCondition(
                prompt: c["prompt"]?.string, negativePrompt: c["negative_prompt"]?.string, guidance: c["guidance"]?.number,
                extra: (c.object ?? [:]).filter { !known.contains($0.key) && !$0.value.isNull }.sorted { $0.key < $1.key }
                    .map { ($0.key, $0.value) }))
        }
        result = m["result"]?.string.flatMap { $0.isEmpty ? nil : $0 }
        bestScore = m["best_score"]?.number

        let nodeList = m["nodes"]?.array ?? []
        let candidates = m["candidates"]?.array ?? []
        if (version ?? 0) >= 2 && !nodeList.isEmpty {
            isTree = true
            let objects = nodeList.filter { $0.object != nil }
            if objects.count < nodeList.count {
                notes.append("\(nodeList.count - objects.count) entries of nodes are not JSON objects (left out)")
            }
            tree = ReportTree(objects.enumerated().map { ReportNode(index: $0.offset, json: $0.element) })
            var candidateNodes: [String: Int] = [:]
            for c in candidates {
                if let node = c["node"]?.key, let index = c["index"]?.integer { candidateNodes[node] = index }
            }
            for i in tree.nodes.indices where tree.nodes[i].candidate == nil {
                if let k = tree.nodes[i].key, let c = candidateNodes[k] { tree.nodes[i].candidate = c }
            }
            resultKey = m["result_node"]?.key
            resultIndex = resultKey.flatMap { tree.indexByKey[$0] }
            if let k = resultKey, resultIndex == nil { notes.append("result_node #\(k) is not in the manifest") }
            if let path = m["chosen_path"]?.array {
                var missing: [String] = []
                for item in path {
                    if let k = item.key, let i = tree.indexByKey[k] { chosenPath.append(i) } else { missing.append(item.text) }
                }
                if !missing.isEmpty { notes.append("chosen_path names nodes not in the manifest: \(ReportTree.list(missing))") }
            } else if let r = resultIndex {
                // No recorded path: the result's ancestors (the tree has no cycles).
                var path = [r], seen: Set<Int> = [r]
                var current = r
                while let p = tree.nodes[current].parentKey.flatMap({ tree.indexByKey[$0] }), !seen.contains(p) {
                    path.append(p)
                    seen.insert(p)
                    current = p
                }
                chosenPath = path.reversed()
            }
            if resultIndex == nil, let last = chosenPath.last { resultIndex = last }
        } else {
            // Before version 2 (or no nodes): the candidates, side by side; the best is chosen.
            let base = models.first { $0.0 == "base" }?.1
            tree = ReportTree(candidates.filter { $0.object != nil }.enumerated()
                .map { ReportNode(candidate: $0.element, position: $0.offset, model: base) })
            if let best = m["best_index"]?.integer, let i = tree.indexByKey["c\(best)"] {
                chosenPath = [i]
                resultIndex = i
            }
            if (version ?? 0) >= 2 {
                notes.append("manifest version \(version!) without nodes: showing its candidates")
            } else {
                notes.append(version == nil
                    ? "a manifest without manifest_version (before version 2): it records no search tree, only its candidates"
                    : "manifest version \(version!) (before version 2): it records no search tree, only its candidates")
            }
        }
        chosen = Set(chosenPath)
        if let r = resultIndex { chosen.insert(r) }
        notes += tree.notes
    }

    /// The path of a file the manifest names, relative to the manifest's directory.
    func file(_ name: String) -> String {
        name.hasPrefix("/") ? name : manifestDirectory + "/" + name
    }

    /// The condition's prompt, when it differs from the job's.
    func condition(_ i: Int?) -> ReportCondition? {
        guard let i, conditions.indices.contains(i) else { return nil }
        return conditions[i]
    }
}

// MARK: images

/// Images read from disk and turned into data: URIs, each file once.
final class ReportImages {
    enum Entry {
        case image(uri: String, bytes: Int)
        case missing(String)
    }

    /// The largest image file inlined.
    static let maxBytes = 16 << 20

    private var cache: [String: Entry] = [:]
    private(set) var inlinedBytes = 0

    func load(_ path: String) -> Entry {
        if let e = cache[path] { return e }
        let e = read(path)
        cache[path] = e
        return e
    }

    private func read(_ path: String) -> Entry {
        var st = stat()
        guard stat(path, &st) == 0 else { return .missing("missing: " + String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .missing("not a regular file") }
        guard Int(st.st_size) <= ReportImages.maxBytes else { return .missing("too large to inline (\(st.st_size) bytes)") }
        let bytes: [UInt8]
        do { bytes = try LocalFile.read(path) } catch let f as Failure { return .missing(f.message) } catch {
            return .missing("\(error)")
        }
        guard let mime = ReportImages.mime(bytes) else { return .missing("not a PNG, JPEG, GIF or WebP image") }
        let uri = "data:\(mime);base64," + Data(bytes).base64EncodedString()
        inlinedBytes += uri.utf8.count
        return .image(uri: uri, bytes: bytes.count)
    }

    static func mime(_ b: [UInt8]) -> String? {
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if b.starts(with: [0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if b.starts(with: Array("GIF8".utf8)) { return "image/gif" }
        if b.count >= 12, b.starts(with: Array("RIFF".utf8)), Array(b[8..<12]) == Array("WEBP".utf8) { return "image/webp" }
        return nil
    }
}
