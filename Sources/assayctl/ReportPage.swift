import Foundation

/// The HTML of `assayctl report`: one file, no script, no external resource. Images are
/// data: URIs; the style sheet is inline.
///
/// Layout: a header (prompt, strategy and its options, models, verifiers, budget against
/// NFEs used, stop reason, the result image, the chosen path as a strip of thumbnails, a
/// legend), then the forest: each root is a card holding a top-down tree of nested lists
/// whose connectors are drawn in CSS. To keep a tree of a few hundred nodes readable:
/// - a node's children whose subtrees are single lines (leaves, x0 predictions, a neighbour
///   and its integration) are drawn small, beside the node, half left, half right, when
///   only one child branches on (or, when none does, beside the child on the chosen path):
///   the search runs down one column (a spine: a trajectory, zero-order's pivots) with its
///   alternatives at its sides;
/// - a run of more than `foldAbove` steps with at most two leaves beside each (long
///   chains of single-child nodes) folds its middle into a `<details>` element (click);
/// - where a node branches into more than `wideLevel` children, those whose subtrees are
///   single lines are bundled into one grid of small boxes;
/// - the roots wrap like words on a page.
/// The chosen path (root to result) is framed in amber, its connectors drawn amber too.
enum ReportPage {
    static let foldAbove = 7
    static let keepAtEnds = 2
    static let wideLevel = 6

    static func render(_ doc: ReportDocument) -> String {
        let builder = ReportPageBuilder(doc)
        return builder.page()
    }

    /// `s` with `& < > " '` as character references (for text and attribute values alike).
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\0": out += "\u{FFFD}"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Ops with a colour of their own; the rest are drawn grey.
    static let knownOps: [(op: String, colour: String, meaning: String)] = [
        ("noise", "#6b7785", "a root noise"),
        ("integrate", "#2f6fdf", "integration over a t range"),
        ("x0", "#9b59b6", "x0-prediction"),
        ("neighbour", "#e67e22", "zero-order neighbour of a pivot"),
        ("renoise", "#16a085", "forward noising to a higher t"),
        ("sde", "#27ae60", "stochastic step"),
        ("resample", "#8d6e63", "particle copy"),
        ("handover", "#e84393", "latent handed to another model role"),
        ("candidate", "#2f6fdf", "a finished candidate (manifest before version 2)"),
    ]
}

/// One page being written.
final class ReportPageBuilder {
    /// One node of a chain, with the single-line branches drawn beside it.
    struct Step {
        var main: Int
        var left: [Int] = []
        var right: [Int] = []
        var sides: [Int] { left + right }
    }

    let doc: ReportDocument
    var tree: ReportTree { doc.tree }
    let images = ReportImages()
    var out = ""
    /// Some node of the node's subtree is chosen.
    var onPath: [Bool]

    init(_ doc: ReportDocument) {
        self.doc = doc
        let tree = doc.tree
        onPath = Array(repeating: false, count: tree.nodes.count)
        // Deepest first, so children are settled before their parent.
        for n in tree.nodes.indices.sorted(by: { tree.depth[$0] > tree.depth[$1] }) {
            onPath[n] = doc.chosen.contains(n) || tree.children[n].contains { onPath[$0] }
        }
    }

    /// The child a chain goes on with from `n` (the others are single lines, drawn beside
    /// it): its only child; or its only child whose subtree branches; or, when every
    /// child's subtree is a single line, the one on the chosen path. Nil: `n` branches.
    func continuation(_ n: Int) -> Int? {
        let kids = tree.children[n]
        if kids.count <= 1 { return kids.first }
        let branching = kids.filter { !tree.isLine[$0] }
        if branching.count == 1 { return branching[0] }
        if branching.isEmpty { return kids.first { onPath[$0] } }
        return nil
    }

    /// The chain from `start`, and the children its last node branches into.
    func chain(from start: Int) -> (steps: [Step], rest: [Int]) {
        var steps: [Step] = []
        var n = start
        while let next = continuation(n) {
            let sides = tree.children[n].filter { $0 != next }
            let half = sides.count / 2
            steps.append(Step(main: n, left: Array(sides[..<half]), right: Array(sides[half...])))
            n = next
        }
        steps.append(Step(main: n))
        return (steps, tree.children[n])
    }

    /// The nodes of a single line, from its first.
    func line(from start: Int) -> [Int] {
        var nodes = [start]
        while let next = tree.children[nodes.last!].first, nodes.count <= tree.nodes.count { nodes.append(next) }
        return nodes
    }

    func h(_ s: String) -> String { ReportPage.escape(s) }

    // MARK: page

    func page() -> String {
        out.reserveCapacity(64 * 1024)
        let title = "Assay job \(doc.jobID ?? "?")" + (doc.prompt.map { ": " + $0 } ?? "")
        out += """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="generator" content="assayctl report">
        <title>\(h(title))</title>
        <style>
        \(ReportPageBuilder.css)
        </style>
        </head>
        <body>

        """
        header()
        forest()
        out += "<footer>Written by <code>assayctl report</code> from <code>\(h(doc.manifestPath))</code>"
        out += " · \(tree.nodes.count) node\(tree.nodes.count == 1 ? "" : "s")"
        out += " · \(images.inlinedBytes / 1024) KiB of inline images</footer>\n"
        out += "</body>\n</html>\n"
        return out
    }

    // MARK: header

    func header() {
        out += "<header>\n<div class=\"title\"><h1>Assay job \(h(doc.jobID ?? "?"))</h1>"
        if let s = doc.state { out += "<span class=\"state state-\(ReportNode.domSafe(s))\">\(h(s))</span>" }
        if let r = doc.stopReason { out += "<span class=\"stop\">stop reason: <b>\(h(r))</b></span>" }
        out += "<span class=\"version\">\(doc.version.map { "manifest version \($0)" } ?? "no manifest_version (before version 2)")</span></div>\n"
        out += "<div class=\"summary\">\n<div class=\"facts\">\n"
        out += "<blockquote class=\"prompt\" id=\"prompt\">\(h(doc.prompt ?? "(no prompt)"))</blockquote>\n<dl>\n"
        func row(_ label: String, _ html: String) { out += "<dt>\(h(label))</dt><dd>\(html)</dd>\n" }
        row("strategy", doc.strategy.map { "<b>\(h($0))</b>" } ?? "?")
        if !doc.strategyOptions.isEmpty {
            row("options", doc.strategyOptions.map { "<code>\(h($0.0))=\(h($0.1.text))</code>" }.joined(separator: " "))
        }
        if !doc.models.isEmpty {
            row("models", doc.models.map { "\(h($0.0)): <b>\(h($0.1))</b>" }.joined(separator: " · "))
        }
        if !doc.verifiers.isEmpty { row("verifiers", doc.verifiers.map(h).joined(separator: " · ")) }
        if let seed = doc.seed { row("seed", h(seed.text)) }
        var nfe = "<b>\(doc.nfeUsed.map(String.init) ?? "?")</b> used"
        if let budget = doc.budgetNFE {
            nfe += " of \(budget) budget"
            if let used = doc.nfeUsed, budget > 0 {
                let pct = min(100, max(0, Double(used) * 100 / Double(budget)))
                nfe += " (\(Int(pct.rounded()))%)<div class=\"budget\"><i style=\"width:\(String(format: "%.1f", pct))%\"></i></div>"
            }
        }
        row("NFEs", nfe)
        if doc.verifierCalls != nil || doc.reflectorCalls != nil {
            row("calls", "\(doc.verifierCalls.map(String.init) ?? "?") verifier · \(doc.reflectorCalls.map(String.init) ?? "?") reflector")
        }
        if let best = doc.bestScore { row("best score", h(ReportFormat.score(best))) }
        let roots = tree.roots.count
        row(doc.isTree ? "tree" : "candidates", doc.isTree
            ? "\(tree.nodes.count) nodes · \(roots) root\(roots == 1 ? "" : "s") · depth \(tree.maxDepth) · \(tree.leafCount) leaves · Σ node NFEs \(tree.roots.map { tree.subtreeNFE[$0] }.reduce(0, &+))"
            : "\(tree.nodes.count)")
        if !doc.chosenPath.isEmpty {
            row("chosen path", doc.chosenPath.map { "<a href=\"#\(tree.nodes[$0].domID)\">\(h(tree.nodes[$0].label))</a>" }
                .joined(separator: " → "))
        }
        let table = conditionsNeedTable
        if !table {
            // One condition, the job's prompt: its guidance and negative prompt here (a
            // manifest before version 2 has them in its plan).
            let c = doc.conditions.first
            if let negative = c?.negativePrompt ?? doc.plan["negative_prompt"]?.string { row("negative prompt", h(negative)) }
            if let g = c?.guidance ?? doc.plan["guidance"]?.number { row("guidance", h(ReportFormat.score(g))) }
        }
        if let e = doc.error { row("error", "<span class=\"error\">\(h(e))</span>") }
        out += "</dl>\n"
        if table { conditions() }
        if !doc.plan.isEmpty {
            out += "<details class=\"plan\"><summary>full plan</summary><table>\n"
            for k in doc.plan.keys.sorted() {
                out += "<tr><th>\(h(k))</th><td><code>\(h(doc.plan[k]!.json))</code></td></tr>\n"
            }
            out += "</table></details>\n"
        }
        out += "</div>\n"
        resultFigure()
        out += "</div>\n"
        pathStrip()
        legend()
        if !doc.notes.isEmpty {
            out += "<ul class=\"notes\">" + doc.notes.map { "<li>\(h($0))</li>" }.joined() + "</ul>\n"
        }
        out += "</header>\n"
    }

    /// Several conditions, or one that is not simply the job's prompt: a table of them.
    var conditionsNeedTable: Bool {
        let cs = doc.conditions
        return cs.count > 1 || cs.contains { !$0.extra.isEmpty || ($0.prompt != nil && $0.prompt != doc.prompt) }
    }

    func conditions() {
        let cs = doc.conditions
        out += "<table class=\"conditions\"><tr><th>condition</th><th>prompt</th><th>negative prompt</th><th>guidance</th><th>other</th></tr>\n"
        for (i, c) in cs.enumerated() {
            out += "<tr><td>\(i)</td><td>\(h(c.prompt ?? "-"))</td><td>\(h(c.negativePrompt ?? "-"))</td>"
            out += "<td>\(c.guidance.map { h(ReportFormat.score($0)) } ?? "-")</td>"
            out += "<td>\(h(c.extra.map { "\($0.0)=\($0.1.text)" }.joined(separator: " ")))</td></tr>\n"
        }
        out += "</table>\n"
    }

    func resultFigure() {
        out += "<figure class=\"result\">"
        if let r = doc.result {
            out += thumb(r, alt: "result image", big: true)
        } else if let i = doc.resultIndex, let image = tree.nodes[i].image {
            out += thumb(image, alt: "result image", big: true)
        } else {
            out += "<div class=\"thumb big none\">no result image</div>"
        }
        var caption = "result"
        if let i = doc.resultIndex {
            caption += " · <a href=\"#\(tree.nodes[i].domID)\">\(h(tree.nodes[i].label))</a>"
            if let s = tree.nodes[i].scores.first(where: { $0.score != nil }) {
                caption += " · \(h(s.verifier)) \(h(ReportFormat.score(s.score!)))"
            }
        }
        out += "<figcaption>\(caption)</figcaption></figure>\n"
    }

    func pathStrip() {
        guard doc.chosenPath.count > 1 || (doc.isTree && !doc.chosenPath.isEmpty) else { return }
        out += "<ol class=\"path\" title=\"the chosen path, root to result\">"
        let path = doc.chosenPath, long = path.count > 14
        for (k, i) in path.enumerated() {
            let n = tree.nodes[i]
            if long && k >= 6 && k < path.count - 6 {
                if k == 6 { out += "<li class=\"arrow\">→</li><li class=\"more\">⋯ \(path.count - 12) more</li>" }
                continue
            }
            if k > 0 { out += "<li class=\"arrow\">→</li>" }
            out += "<li><a href=\"#\(n.domID)\" class=\"op-\(opClass(n.op))\">"
            if let image = n.image { out += thumb(image, alt: n.label, big: false, tiny: true) } else {
                out += "<span class=\"thumb tiny none\"></span>"
            }
            out += "<span>\(h(n.label))<br><small>\(h(n.op))</small></span></a></li>"
        }
        out += "</ol>\n"
    }

    func legend() {
        var ops: [String] = []
        for n in tree.nodes where !ops.contains(n.op) { ops.append(n.op) }
        out += "<div class=\"legend\">"
        for op in ops {
            let meaning = ReportPage.knownOps.first { $0.op == op }?.meaning ?? "an operation this report does not know"
            out += "<span class=\"op-\(opClass(op))\" title=\"\(h(meaning))\"><i></i>\(h(op))</span>"
        }
        out += "<span class=\"chosen-key\"><i></i>chosen path</span>"
        out += "<span class=\"hint\">NFE: the node's own model evaluations · Σ: its whole branch (the node and everything below it)</span>"
        out += "</div>\n"
    }

    // MARK: tree

    enum Work {
        case branch(Int)
        case bundle([Int])
        case html(String)
    }

    func forest() {
        out += "<main class=\"forest\">\n"
        if tree.nodes.isEmpty { out += "<p class=\"empty\">This manifest records no nodes and no candidates.</p>\n" }
        for r in tree.roots {
            out += "<div class=\"root-card\(onPath[r] ? " on-path" : "")\"><ul class=\"tree\">"
            branches([.branch(r)])
            out += "</ul></div>\n"
        }
        out += "</main>\n"
    }

    /// Writes branches without recursion (a manifest may hold a very deep tree).
    func branches(_ start: [Work]) {
        var stack = Array(start.reversed())
        while let work = stack.popLast() {
            switch work {
            case .html(let s):
                out += s
            case .bundle(let starts):
                let sum = starts.map { tree.subtreeNFE[$0] }.reduce(0, &+)
                let path = starts.contains { onPath[$0] }
                let columns = min(starts.count, 4)
                out += "<li class=\"branch bundle-branch\(path ? " on-path" : "")\"><div class=\"bundle\">"
                out += "<div class=\"bundle-label\">\(starts.count) single-line branches · Σ \(sum) NFE</div>"
                out += "<div class=\"bundle-items\" style=\"grid-template-columns: repeat(\(columns), max-content)\">"
                for s in starts { lineColumn(s) }
                out += "</div></div></li>"
            case .branch(let s):
                let (chainSteps, rest) = chain(from: s)
                out += "<li class=\"branch\(onPath[s] ? " on-path" : "")\"><div class=\"chain\">"
                steps(chainSteps, mini: false)
                out += "</div>"
                if rest.isEmpty {
                    out += "</li>"
                    continue
                }
                out += "<ul>"
                var items: [Work] = []
                let bundled = rest.count > ReportPage.wideLevel ? rest.filter { tree.isLine[$0] } : []
                if bundled.count >= 2 {
                    var placed = false
                    for c in rest {
                        if !tree.isLine[c] { items.append(.branch(c)) } else if !placed { items.append(.bundle(bundled)); placed = true }
                    }
                } else {
                    items = rest.map { .branch($0) }
                }
                stack.append(.html("</ul></li>"))
                stack += items.reversed()
            }
        }
    }

    /// A single line as a column of small boxes (beside a chain, or in a bundle).
    func lineColumn(_ start: Int) {
        out += "<div class=\"chain mini-chain\(onPath[start] ? " on-path" : "")\">"
        steps(line(from: start).map { Step(main: $0) }, mini: true)
        out += "</div>"
    }

    /// A step is light when at most two leaves sit beside it: runs of light steps longer
    /// than `foldAbove` fold their middle.
    func isLight(_ s: Step) -> Bool {
        s.sides.count <= 2 && s.sides.allSatisfy { tree.children[$0].isEmpty }
    }

    func steps(_ steps: [Step], mini: Bool) {
        let keep = ReportPage.keepAtEnds
        var k = 0
        while k < steps.count {
            var end = k
            while end < steps.count && isLight(steps[end]) { end += 1 }
            if end - k > ReportPage.foldAbove {
                // steps[k..<end] are light: keep the ends, fold the middle.
                for j in k..<(k + keep) { if j > 0 { link(steps[j - 1], steps[j]) }; step(steps[j], mini: mini) }
                let middle = Array(steps[(k + keep)..<(end - keep)])
                link(steps[k + keep - 1], middle[0])
                fold(middle, mini: mini)
                link(middle.last!, steps[end - keep])
                for j in (end - keep)..<end { if j > end - keep { link(steps[j - 1], steps[j]) }; step(steps[j], mini: mini) }
                k = end
            } else {
                let stop = max(end, k + 1)
                for j in k..<stop { if j > 0 { link(steps[j - 1], steps[j]) }; step(steps[j], mini: mini) }
                k = stop
            }
        }
    }

    func fold(_ middle: [Step], mini: Bool) {
        let nodes = middle.flatMap { [$0.main] + $0.sides }
        let sum = nodes.map { max(0, tree.nodes[$0].nfe ?? 0) }.reduce(0, &+)
        let path = nodes.contains { doc.chosen.contains($0) }
        let first = tree.nodes[middle.first!.main].label, last = tree.nodes[middle.last!.main].label
        out += "<details class=\"fold\(path ? " on-path" : "")\"><summary>⋯ \(middle.count) more steps, \(h(first)) … \(h(last))"
        out += " · \(nodes.count) nodes · \(sum) NFE\(path ? " · on the chosen path" : "") (click to open)</summary><div class=\"chain\">"
        for (k, s) in middle.enumerated() {
            if k > 0 { link(middle[k - 1], s) }
            step(s, mini: mini)
        }
        out += "</div></details>"
    }

    func link(_ a: Step, _ b: Step) {
        let path = doc.chosen.contains(a.main) && doc.chosen.contains(b.main)
        out += "<div class=\"link\(path ? " on-path" : "")\"></div>"
    }

    func step(_ s: Step, mini: Bool) {
        if s.sides.isEmpty {
            out += "<div class=\"step\">"
            node(s.main, mini: mini)
            out += "</div>"
            return
        }
        // The main node in the middle column, a line below it running on to the next step
        // past the branches on either side.
        let next = tree.children[s.main].first { !s.sides.contains($0) }
        let path = doc.chosen.contains(s.main) && next.map { doc.chosen.contains($0) } == true
        out += "<div class=\"step with-side\">"
        sideGroup(s.left, "left")
        out += "<div class=\"main\(path ? " on-path" : "")\">"
        node(s.main, mini: mini)
        out += "</div>"
        sideGroup(s.right, "right")
        out += "</div>"
    }

    func sideGroup(_ starts: [Int], _ which: String) {
        let wide = starts.count > 4 ? " wide" : ""
        out += "<div class=\"side \(which)\(starts.isEmpty ? " empty" : "")\(wide)\">"
        for s in starts { lineColumn(s) }
        out += "</div>"
    }

    func opClass(_ op: String) -> String {
        ReportPage.knownOps.contains { $0.op == op } ? op : "other"
    }

    // MARK: one node

    func node(_ i: Int, mini: Bool) {
        let n = tree.nodes[i]
        var classes = "node op-\(opClass(n.op))"
        if doc.chosen.contains(i) { classes += " chosen" }
        if doc.resultIndex == i { classes += " result" }
        if mini { classes += " mini" }
        out += "<div class=\"\(classes)\" id=\"\(h(n.domID))\" data-node=\"\(h(n.key ?? ""))\" title=\"\(h(tooltip(n)))\">"
        out += "<div class=\"head\"><span class=\"nid\">\(h(n.label))</span>"
        if n.op != "candidate" { out += "<span class=\"opname\">\(h(n.op))</span>" }
        if doc.resultIndex == i { out += "<span class=\"badge result-badge\">\(doc.isTree ? "result" : "best")</span>" }
        if let c = n.candidate, n.op != "candidate" { out += "<span class=\"badge\">cand \(c)</span>" }
        out += "</div>"
        if let image = n.image { out += thumb(image, alt: n.label, big: false) } else {
            out += "<div class=\"thumb none\">no image</div>"
        }
        var who: [String] = []
        if let r = n.role { who.append(r) }
        if let m = n.model { who.append(m) }
        if !who.isEmpty { out += "<div class=\"kv who\">\(h(who.joined(separator: " · ")))</div>" }
        if n.tFrom != nil || n.tTo != nil {
            out += "<div class=\"kv\">t \(n.tFrom.map(ReportFormat.time) ?? "?") → \(n.tTo.map(ReportFormat.time) ?? "?")"
            if let steps = n.steps { out += " · \(steps) steps" }
            out += "</div>"
        }
        var tags: [String] = []
        if let p = n.pool { tags.append("pool " + h(p)) }
        if let st = n.strength { tags.append("strength " + h(ReportFormat.score(st))) }
        if let c = n.condition, doc.conditions.count > 1 { tags.append("cond \(c)") }
        if let seed = n.seed, n.op == "candidate" { tags.append("seed " + h(seed.text)) }
        if let sm = n.sampler { tags.append("sampler " + h(sm)) }
        if let f = n.flopRatio { tags.append("FLOPs ×" + h(ReportFormat.score(f))) }
        if !tags.isEmpty { out += "<div class=\"kv\">\(tags.joined(separator: " · "))</div>" }
        if n.feedback != nil || n.negativePrompt != nil {
            out += "<div class=\"reflection\">"
            if let f = n.feedback { out += "<div>reflector: \(h(f))</div>" }
            if let neg = n.negativePrompt { out += "<div>negative prompt: <q>\(h(neg))</q></div>" }
            out += "</div>"
        }
        if !n.scores.isEmpty || n.meanRank != nil {
            out += "<div class=\"scores\">"
            for s in n.scores {
                let value = s.score.map(ReportFormat.score) ?? "?"
                var bar = ""
                if let v = s.score, v.isFinite, v >= 0, v <= 1 {
                    bar = "<b style=\"width:\(String(format: "%.0f", v * 100))%\"></b>"
                }
                out += "<div class=\"score\" title=\"\(h(s.verifier)): \(h(value))\"><span class=\"verifier\">\(h(s.verifier))</span>"
                out += "<i class=\"bar\">\(bar)</i><span class=\"value\">\(h(value))</span></div>"
            }
            if let r = n.meanRank {
                out += "<div class=\"score\"><span class=\"verifier\">mean rank</span><span class=\"value\">\(h(ReportFormat.score(r)))</span></div>"
            }
            out += "</div>"
        }
        if n.nfe != nil || n.op != "candidate" {
            out += "<div class=\"nfe\">NFE \(n.nfe.map(String.init) ?? "?")"
            if !tree.children[i].isEmpty { out += " · <b title=\"NFEs of this whole branch\">Σ \(tree.subtreeNFE[i])</b>" }
            out += "</div>"
        }
        out += "</div>"
    }

    func tooltip(_ n: ReportNode) -> String {
        var lines = ["\(n.label): \(n.op)"]
        let who = [n.role, n.model].compactMap { $0 }
        if !who.isEmpty { lines.append(who.joined(separator: " · ")) }
        if let p = n.parentKey { lines.append("parent #\(p)") }
        if let c = n.condition {
            lines.append("condition \(c)" + (doc.condition(c)?.prompt.map { ": " + $0 } ?? ""))
        }
        if let s = n.seedPath { lines.append("seed path \(s.json)") }
        if let s = n.seed { lines.append("seed \(s.text)") }
        if let l = n.latent { lines.append("latent sha256 \(l)") }
        if let image = n.image {
            lines.append("image \(image)")
            if case .missing(let why) = images.load(doc.file(image)) { lines.append("(\(why))") }
        }
        for (k, v) in n.extra { lines.append("\(k): \(v.text)") }
        return lines.joined(separator: "\n")
    }

    /// An image as a data: URI, or a placeholder saying why there is none.
    func thumb(_ name: String, alt: String, big: Bool, tiny: Bool = false) -> String {
        let size = big ? " big" : tiny ? " tiny" : ""
        switch images.load(doc.file(name)) {
        case .image(let uri, _):
            return "<img class=\"thumb\(size)\" src=\"\(uri)\" alt=\"\(h(alt))\">"
        case .missing(let why):
            if tiny { return "<span class=\"thumb tiny missing\" title=\"\(h(name + ": " + why))\"></span>" }
            return "<div class=\"thumb\(size) missing\" title=\"\(h(name + ": " + why))\">image missing<small>\(h(name))</small></div>"
        }
    }

    // MARK: style

    static var css: String {
        var opRules = ReportPage.knownOps.map { ".op-\($0.op) { --op: \($0.colour); }" }.joined(separator: "\n")
        opRules += "\n.op-other { --op: #555; }"
        return """
        :root { --line: #a9b0ba; --path: #e0a000; --bg: #f4f5f7; --card: #fff; --ink: #1d2330; --muted: #6a7380; }
        * { box-sizing: border-box; }
        body { margin: 0; padding: 16px 20px 40px; background: var(--bg); color: var(--ink);
               font: 13px/1.35 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
        a { color: inherit; }
        code { font: 12px ui-monospace, "DejaVu Sans Mono", monospace; background: #eef0f3; padding: 0 3px; border-radius: 3px; }
        header { background: var(--card); border: 1px solid #dde1e6; border-radius: 8px; padding: 14px 18px; margin-bottom: 18px; }
        .title { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
        h1 { font-size: 20px; margin: 0; }
        .state { padding: 1px 8px; border-radius: 10px; background: #dfe3e8; font-weight: 600; }
        .state-done { background: #d3f2dc; color: #13652c; } .state-failed { background: #fbd9d9; color: #8a1414; }
        .state-cancelled { background: #fde9c8; color: #7a4a00; }
        .stop, .version { color: var(--muted); }
        .summary { display: flex; gap: 24px; align-items: flex-start; margin-top: 10px; }
        .facts { flex: 1; min-width: 0; }
        .prompt { margin: 0 0 10px; padding: 8px 12px; border-left: 4px solid var(--path); background: #fff8e6;
                  font-size: 16px; white-space: pre-wrap; overflow-wrap: anywhere; }
        dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: 0; }
        dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
        .budget { display: inline-block; vertical-align: middle; width: 160px; height: 8px; margin-left: 8px;
                  background: #e4e7eb; border-radius: 4px; overflow: hidden; }
        .budget i { display: block; height: 100%; background: #2f6fdf; }
        .error { color: #a01010; }
        table.conditions, .plan table { border-collapse: collapse; margin-top: 8px; }
        table.conditions td, table.conditions th, .plan td, .plan th { border: 1px solid #e1e4e8; padding: 2px 6px; text-align: left;
                  vertical-align: top; overflow-wrap: anywhere; }
        .plan { margin-top: 8px; } .plan summary { cursor: pointer; color: var(--muted); }
        figure.result { margin: 0; text-align: center; }
        figcaption { color: var(--muted); margin-top: 4px; }
        .reflection { font-size: 11px; border-left: 3px solid #b58900; padding-left: 4px; margin: 3px 0; max-width: 220px; }
        .path { list-style: none; display: flex; flex-wrap: wrap; align-items: center; gap: 4px; padding: 8px 0 0; margin: 8px 0 0;
                border-top: 1px solid #eceef1; }
        .path li a { display: flex; align-items: center; gap: 5px; text-decoration: none; padding: 3px 6px 3px 3px;
                border: 2px solid var(--path); border-radius: 6px; background: #fff8e6; border-left: 5px solid var(--op); }
        .path .more { color: var(--muted); }
        .path .arrow { color: var(--path); font-weight: 700; }
        .legend { display: flex; flex-wrap: wrap; gap: 6px 14px; margin-top: 10px; color: var(--muted); }
        .legend span { display: inline-flex; align-items: center; gap: 4px; }
        .legend i { width: 12px; height: 12px; border-radius: 3px; background: var(--op); display: inline-block; }
        .legend .chosen-key i { background: #fff; border: 3px solid var(--path); }
        .legend .hint { flex-basis: 100%; }
        .notes { margin: 10px 0 0; padding-left: 18px; color: #8a5a00; }
        footer { margin-top: 24px; color: var(--muted); }
        .empty { color: var(--muted); }

        .forest { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
        .root-card { background: #fafbfc; border: 1px solid #dde1e6; border-radius: 8px; padding: 10px; max-width: 100%; overflow-x: auto; }

        /* A top-down tree of nested lists: each li draws the connector above it. */
        .tree, .tree ul { display: flex; justify-content: center; margin: 0; padding: 0; }
        .tree ul { position: relative; padding-top: 16px; }
        .tree li { list-style: none; position: relative; padding: 16px 5px 0; display: flex; flex-direction: column; align-items: center; }
        .tree > li { padding-top: 0; }
        .tree li::before, .tree li::after { content: ""; position: absolute; top: 0; right: 50%; width: 50%; height: 16px;
                border-top: 2px solid var(--line); }
        .tree li::after { right: auto; left: 50%; border-left: 2px solid var(--line); }
        .tree li:only-child::before, .tree li:only-child::after, .tree > li::before, .tree > li::after { display: none; }
        .tree li:only-child { padding-top: 0; }
        .tree li:first-child::before, .tree li:last-child::after { border: 0 none; }
        .tree li:last-child::before { border-right: 2px solid var(--line); border-radius: 0 6px 0 0; }
        .tree li:first-child::after { border-radius: 6px 0 0 0; }
        .tree ul::before { content: ""; position: absolute; top: 0; left: 50%; height: 16px; border-left: 2px solid var(--line); }
        .tree li.on-path::after { border-left-color: var(--path); border-left-width: 3px; }
        .tree li.on-path:last-child::before { border-right-color: var(--path); border-right-width: 3px; }
        .tree ul:has(> li.on-path)::before { border-left-color: var(--path); border-left-width: 3px; }

        .tree li { flex-shrink: 0; }
        .chain { display: flex; flex-direction: column; align-items: center; }
        .link { width: 2px; height: 12px; background: var(--line); flex: none; }
        .link.on-path { width: 3px; background: var(--path); }
        .step { display: flex; justify-content: center; }
        .step.with-side { display: grid; grid-template-columns: 1fr auto 1fr; align-items: start; }
        .step.with-side > .main { align-self: stretch; display: flex; flex-direction: column; align-items: center; }
        .step.with-side > .main::after { content: ""; flex: 1; min-height: 4px; width: 2px; background: var(--line); }
        .step.with-side > .main.on-path::after { width: 3px; background: var(--path); }
        .side { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 6px; max-width: 246px; position: relative; }
        .side.wide { max-width: 356px; }
        .side.right { padding-left: 16px; justify-self: start; }
        .side.left { padding-right: 16px; justify-self: end; justify-content: flex-end; }
        .side::before { content: ""; position: absolute; top: 30px; width: 16px; border-top: 2px dashed var(--line); }
        .side.right::before { left: 0; } .side.left::before { right: 0; } .side.empty::before { display: none; }
        .mini-chain { padding-top: 0; }
        .fold { margin: 0; border: 1px dashed var(--line); border-radius: 6px; padding: 4px 8px; background: #fff; max-width: 480px; }
        .fold.on-path { border: 2px dashed var(--path); }
        .fold summary { cursor: pointer; color: var(--muted); }
        .fold[open] { max-width: none; }
        .bundle { border: 1px dashed var(--line); border-radius: 8px; padding: 6px; background: #fff; }
        .bundle-branch.on-path > .bundle { border: 2px dashed var(--path); }
        .bundle-label { color: var(--muted); text-align: center; margin-bottom: 4px; }
        .bundle-items { display: grid; gap: 8px; justify-content: center; align-items: start; }

        .node { width: 160px; background: var(--card); border: 1px solid #cfd5dc; border-left: 5px solid var(--op);
                border-radius: 6px; padding: 4px 6px 5px; position: relative; }
        .node.chosen { border: 3px solid var(--path); border-left: 6px solid var(--op); box-shadow: 0 0 0 3px #ffe7a6; }
        .node.result { box-shadow: 0 0 0 4px #ffd35c; }
        .node.mini { width: 104px; font-size: 11px; padding: 3px 4px; }
        .node .head { display: flex; gap: 4px; align-items: baseline; flex-wrap: wrap; }
        .nid { font-weight: 700; } .opname { color: var(--op); font-weight: 600; }
        .badge { background: #eef0f3; border-radius: 8px; padding: 0 5px; font-size: 10px; color: var(--muted); }
        .result-badge { background: var(--path); color: #fff; }
        .kv { color: var(--muted); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
        .nfe { margin-top: 2px; font-variant-numeric: tabular-nums; }
        .thumb { display: block; width: 96px; height: 96px; margin: 4px auto; image-rendering: pixelated; object-fit: contain;
                 background: #eef0f3; border-radius: 3px; }
        .node.mini .thumb { width: 64px; height: 64px; }
        .thumb.big { width: 192px; height: 192px; }
        .thumb.tiny { width: 32px; height: 32px; margin: 0; display: inline-block; flex: none; }
        div.thumb { display: flex; flex-direction: column; align-items: center; justify-content: center; color: #8a929c;
                    font-size: 11px; text-align: center; overflow: hidden; }
        .thumb.none { height: 28px; background: repeating-linear-gradient(45deg, #eef0f3 0 6px, #e3e6ea 6px 12px); }
        .thumb.big.none { height: 192px; }
        .node.mini .thumb.none { height: 22px; }
        .thumb.missing { border: 1px dashed #c0392b; color: #c0392b; background: #fdf1f0; }
        .thumb.missing small { color: #8a929c; overflow-wrap: anywhere; padding: 0 3px; }
        .scores { font-size: 11px; font-variant-numeric: tabular-nums; }
        .score { display: flex; align-items: center; gap: 4px; }
        .score .verifier { flex: 1; min-width: 0; color: var(--muted); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
        .score .bar { flex: none; width: 30px; height: 5px; background: #eef0f3; border-radius: 2px; overflow: hidden; }
        .score .bar b { display: block; height: 100%; background: #2f6fdf; }
        .score .value { flex: none; }
        .node.mini .score .bar { display: none; }
        \(opRules)
        """
    }
}
