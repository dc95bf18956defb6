import AssayDBus
import Foundation

/// A job's properties as the summary every job command prints (text or one JSON object).
struct JobSummary {
    var path: String
    var properties: [String: DBusValue]
    /// Extra fields (output files, replay check), in order.
    var extra: [(String, Any)] = []

    static let fields: [(json: String, property: String)] = [
        ("state", "State"), ("stop_reason", "StopReason"), ("prompt", "Prompt"), ("strategy", "Strategy"),
        ("model", "Model"), ("seed", "Seed"), ("progress", "Progress"), ("nfe_used", "NfeUsed"),
        ("nfe_budget", "NfeBudget"), ("verifier_calls", "VerifierCalls"), ("candidates", "Candidates"),
        ("best_score", "BestScore"), ("result_path", "ResultPath"), ("manifest_path", "ManifestPath"),
        ("candidates_path", "CandidatesPath"), ("error", "Error"),
    ]

    var jsonObject: [String: Any] {
        var o: [String: Any] = ["job": path]
        for (key, prop) in JobSummary.fields { o[key] = properties[prop].map(jsonValue) ?? NSNull() }
        for (k, v) in extra { o[k] = v }
        return o
    }

    var text: String {
        func s(_ k: String) -> String { properties[k]?.stringValue ?? "" }
        func n(_ k: String) -> String { properties[k]?.doubleValue.map { String(Int($0)) } ?? "?" }
        var rows: [(String, String)] = [
            ("job", path),
            ("state", s("State") + (s("StopReason").isEmpty ? "" : " (stop reason: \(s("StopReason")))")),
            ("nfe", "\(n("NfeUsed"))/\(n("NfeBudget"))"),
            ("best score", formatScore(properties["BestScore"]?.doubleValue)),
        ]
        if !s("Error").isEmpty { rows.append(("error", s("Error"))) }
        rows.append(("result", s("ResultPath").isEmpty ? "-" : s("ResultPath")))
        rows.append(("manifest", s("ManifestPath").isEmpty ? "-" : s("ManifestPath")))
        if !s("CandidatesPath").isEmpty { rows.append(("candidates", s("CandidatesPath"))) }
        for (k, v) in extra { rows.append((k.replacingOccurrences(of: "_", with: " "), "\(v)")) }
        return rows.map { $0.0.rightPadded(14) + " " + $0.1 }.joined(separator: "\n")
    }
}

/// A D-Bus value as a JSON value (NaN and infinities become null).
func jsonValue(_ v: DBusValue) -> Any {
    switch v {
    case .bool(let b): return b
    case .double(let d): return d.isFinite ? d : NSNull()
    case .byte, .int16, .uint16, .int32, .uint32, .int64:
        return Int(v.doubleValue ?? 0)
    case .uint64(let u): return u <= UInt64(Int.max) ? Int(u) : u
    case .string(let s), .objectPath(let s), .signature(let s): return s
    case .unixFD(let fd): return Int(fd)
    case .variant(let inner): return jsonValue(inner)
    case .array(_, let items): return items.map(jsonValue)
    case .structure(let items): return items.map(jsonValue)
    case .dictionary(_, _, let entries):
        var o: [String: Any] = [:]
        for (k, val) in entries { o[k.stringValue ?? k.description] = jsonValue(val) }
        return o
    }
}

/// Prints one JSON value on a line of stdout.
func printJSON(_ value: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

/// A left-aligned text table; the last column is not padded.
func printTable(_ header: [String], _ rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { c in all.map { $0[c].count }.max() ?? 0 }
    for row in all {
        let cells = row.indices.map { c in c == row.count - 1 ? row[c] : row[c].rightPadded(widths[c]) }
        print(cells.joined(separator: "  ").trimmingTrailingSpaces())
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
