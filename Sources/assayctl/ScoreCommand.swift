import ArgumentParser
import AssayDBus
import Foundation
import Glibc

// MARK: score

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score PNG files with the daemon's verifiers (Score), outside any job.",
        discussion: """
        Prints one row per image: each verifier's score and, for verifiers whose details say \
        "pass", pass or fail. No --verifier = every loaded verifier that can judge the prompt. \
        The files are sent as descriptors (the daemon need not be able to open them), 16 to a call.
        """)

    /// Images per Score call: the daemon's default cap (and dbus-daemon's default of 16
    /// descriptors a message).
    static let batch = 16

    @OptionGroup var bus: BusOptions

    @Option(help: "The prompt the images are judged against.")
    var prompt: String

    @Option(name: .customLong("verifier"), help: "Verifier plugin id; repeat for several (default: every one that can judge the prompt).")
    var verifiers: [String] = []

    @Flag(help: "Print a JSON array on stdout, one object per image.")
    var json = false

    @Argument(help: "PNG files.")
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one PNG file") }
    }

    func run() throws {
        let client = try Client(bus)
        var rows: [[String: DBusValue]] = []
        var start = 0
        while start < files.count {
            let chunk = Array(files[start..<min(files.count, start + Score.batch)])
            var fds: [Int32] = []
            defer { fds.forEach { close($0) } }
            for f in chunk {
                let fd = open(f, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw Failure(ExitStatus.local, "cannot open \(f): \(String(cString: strerror(errno)))") }
                fds.append(fd)
            }
            let r = try client.manager("Score", [
                .string(prompt), .array(elementSignature: "h", fds.map { .unixFD($0) }), .strings(verifiers), .vardict([:]),
            ], timeoutMs: 300_000)
            let results = r.first?.arrayValue?.compactMap(\.vardictValue) ?? []
            guard results.count == chunk.count else {
                throw Failure(ExitStatus.daemonError, "Score returned \(results.count) results for \(chunk.count) images")
            }
            rows += results
            start += chunk.count
        }
        let objects = zip(files, rows).map { Score.object(file: $0, $1) }
        if json { try printJSON(objects); return }

        let ids = Array(Set(objects.flatMap { ($0["scores"] as? [String: Double] ?? [:]).keys })).sorted()
        let withPass = ids.filter { id in objects.contains { ($0["pass"] as? [String: Bool])?[id] != nil } }
        var header = ["FILE", "SIZE"]
        for id in ids { header.append(id); if withPass.contains(id) { header.append(id + " pass") } }
        printTable(header, objects.map { o in
            var cells = [o["file"] as? String ?? "", "\(o["width"] ?? "?")x\(o["height"] ?? "?")"]
            let scores = o["scores"] as? [String: Double] ?? [:], pass = o["pass"] as? [String: Bool] ?? [:]
            for id in ids {
                cells.append(scores[id].map { String(format: "%.4f", $0) } ?? "-")
                if withPass.contains(id) { cells.append(pass[id].map { $0 ? "pass" : "fail" } ?? "-") }
            }
            return cells
        })
    }

    /// One image's result as a JSON object: file, width, height, scores, details (each
    /// parsed when it is JSON), pass (verifier → bool, where details have "pass").
    static func object(file: String, _ d: [String: DBusValue]) -> [String: Any] {
        var scores: [String: Double] = [:]
        if case .dictionary(_, _, let entries)? = d["scores"] {
            for (k, v) in entries { if let id = k.stringValue, let s = v.doubleValue { scores[id] = s } }
        }
        var details: [String: Any] = [:], pass: [String: Bool] = [:]
        if case .dictionary(_, _, let entries)? = d["details"] {
            for (k, v) in entries {
                guard let id = k.stringValue, let text = v.stringValue else { continue }
                if let parsed = try? JSONSerialization.jsonObject(with: Data(text.utf8)) {
                    details[id] = parsed
                    if let p = (parsed as? [String: Any])?["pass"] as? Bool { pass[id] = p }
                } else {
                    details[id] = text
                }
            }
        }
        return ["file": file, "width": Int(d["width"]?.doubleValue ?? 0), "height": Int(d["height"]?.doubleValue ?? 0),
                "scores": scores, "details": details, "pass": pass]
    }
}
