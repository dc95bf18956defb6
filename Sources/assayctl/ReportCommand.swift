import ArgumentParser
import AssayDBus
import Foundation

// MARK: report
//
// `assayctl report JOB [-o FILE]` writes one self-contained HTML page of a job's search
// tree and prints its path (default: job-<id>-report.html in the current directory).
//
//   assayctl report 7                                   # job 7 on the session bus
//   assayctl --system report 7 -o /tmp/seven.html       # on the system bus
//   assayctl report /io/assay/Assay1/jobs/7
//   assayctl report ~/.local/state/assay/jobs/7/manifest.json   # offline, no daemon
//   assayctl report ~/.local/state/assay/jobs/7                 # the job's directory
//
// JOB is a job number or object path, resolved on the bus through the job's
// `ManifestPath` property (io.assay.Job1), or a manifest.json (or a directory holding one),
// read directly. A number is always a job (write ./7 for a file named 7).
//
// The page holds everything: images are inlined as data: URIs (each node's `image`, a path
// relative to the manifest's directory), the style sheet is inline, there is no script and
// no reference to anything outside the file. It shows a header (prompt, strategy and its
// options, models, verifiers, seed, NFEs used against the budget, stop reason, the result
// image, the chosen path as a strip) and the search tree top-down: every node as a box with
// its image (or a placeholder), op, role and model, t range, pool, score per verifier, its
// own NFEs and Σ, the NFEs of its whole branch. The chosen path (root to result) is framed
// in amber. Long single-child chains fold their middle (click to open); wide levels bundle
// their single-line branches into a wrapping box; see `ReportPage` for the layout.
//
// A manifest before version 2 has no tree: its candidates are shown as roots, the best one
// chosen. A missing image is a placeholder, not an error. Exit codes: 0 written; 2 usage;
// 3/4 D-Bus (when JOB is a job); 6 a local problem (no such manifest, not JSON, cannot write).

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a self-contained HTML page of a job's search tree (every node, its image, scores and NFEs).",
        discussion: """
        JOB is a job number or object path (its manifest is found through the daemon's \
        ManifestPath property) or a manifest.json file or job directory (no daemon needed). \
        A number is always a job: write ./7 for a file named 7. Images are inlined, so the \
        page can be mailed or archived alone; it has no script and loads nothing. Prints \
        the path written.
        """)

    @OptionGroup var bus: BusOptions

    @Argument(help: "The job: its number, its object path, or its manifest.json (or job directory).")
    var job: String

    @Option(name: [.customShort("o"), .customLong("out")],
            help: ArgumentHelp("Write the page here (default: job-<id>-report.html in the current directory).",
                               valueName: "file.html"))
    var out: String?

    func run() throws {
        let manifest = try ReportCommand.manifestPath(job, bus: bus)
        let doc = try ReportDocument.load(try LocalFile.read(manifest), manifestPath: manifest)
        let html = ReportPage.render(doc)
        let id = doc.jobID ?? ReportCommand.jobNumber(job) ?? "unknown"
        let path = out ?? "job-\(ReportNode.domSafe(id))-report.html"
        try LocalFile.write(Array(html.utf8), to: path)
        print(path)
    }

    /// The manifest `arg` names: a file or directory here, else a job on the bus.
    static func manifestPath(_ arg: String, bus: BusOptions) throws -> String {
        let isNumber = !arg.isEmpty && arg.allSatisfy { $0.isASCII && $0.isNumber }
        var isDirectory: ObjCBool = false
        if !isNumber, FileManager.default.fileExists(atPath: arg, isDirectory: &isDirectory) {
            return isDirectory.boolValue ? (arg.hasSuffix("/") ? arg : arg + "/") + "manifest.json" : arg
        }
        if isNumber || arg.hasPrefix(Client.jobsPath + "/") {
            return try manifestFromDaemon(try Client.jobPath(arg), bus: bus)
        }
        if arg.contains("/") || arg.hasSuffix(".json") {
            throw Failure(ExitStatus.local, "cannot open \(arg): no such file or directory")
        }
        throw ValidationError("'\(arg)' is not a job: give its number (7), its object path (\(Client.jobsPath)/7) or its manifest.json")
    }

    static func manifestFromDaemon(_ path: String, bus: BusOptions) throws -> String {
        let client = try Client(bus)
        let props = try client.jobProperties(path)
        let manifest = props["ManifestPath"]?.stringValue ?? ""
        guard !manifest.isEmpty else {
            let state = props["State"]?.stringValue ?? "?"
            throw Failure(ExitStatus.local, "job \(path) has no manifest yet (state: \(state)); "
                + "a job writes it when it ends: `assayctl wait \(path.split(separator: "/").last ?? "")` first")
        }
        return manifest
    }

    /// `7` or `/io/assay/Assay1/jobs/7` → "7".
    static func jobNumber(_ arg: String) -> String? {
        let last = arg.split(separator: "/").last.map(String.init) ?? arg
        return !last.isEmpty && last.allSatisfy(\.isNumber) ? last : nil
    }
}
