import ArgumentParser
import AssayPluginHost
import AssayCore
import AssayDBus
import Foundation
import Glibc

/// `assay-bench`: starts its own private bus and assayd, measures the daemon's costs side by
/// side in one run, and prints each number beside its target. A tool, not a test: on a
/// shared, noisy machine compare the ratios and the PASS/MISS column, not single runs.
@main
struct AssayBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assay-bench",
        abstract: "Measure assayd: D-Bus latency, host overhead per model evaluation, hot-reload time, memory.",
        discussion: """
        Starts a private dbus-daemon and assayd (from the directory of this executable unless
        --assayd is given) with the example plugins, runs the measurements and prints one table
        (or --json). Nothing touches the user's session bus or state.
        """)

    @Option(name: .customLong("plugin-dir"), help: "The example plugins (default: <repo>/build/plugins).")
    var pluginDir: String?

    @Option(help: "The assayd executable (default: next to assay-bench).")
    var assayd: String?

    @Option(help: "Submits (and Properties.Get calls, interleaved) for the round-trip latencies.")
    var submits = 300

    @Option(name: .customLong("finish-runs"), help: "1-step jobs timed from Submit to Finished.")
    var finishRuns = 30

    @Option(name: .customLong("overhead-runs"), help: "best-of-n jobs (n 8, 20 steps, guidance 3) for the host overhead.")
    var overheadRuns = 5

    @Option(name: .customLong("isolation-rounds"), help: "Rounds of the same jobs with plugin workers and in process, alternated.")
    var isolationRounds = 2

    @Option(name: .customLong("reload-cycles"), help: "Plugin drop-ins timed for hot reload.")
    var reloadCycles = 10

    @Flag(help: "Print the results as one JSON object on stdout.")
    var json = false

    @Flag(name: .customLong("keep-temp"), help: "Keep the temporary directory (logs, state) and print its path.")
    var keepTemp = false

    func run() throws {
        let exeDir = Bench.executableDirectory()
        let daemonPath = assayd ?? exeDir + "/assayd"
        guard access(daemonPath, X_OK) == 0 else {
            throw ValidationError("no assayd at \(daemonPath): build it (swift build --product assayd) or pass --assayd")
        }
        let plugins = pluginDir ?? (Bench.repoRoot(from: exeDir) ?? FileManager.default.currentDirectoryPath) + "/build/plugins"
        guard FileManager.default.fileExists(atPath: plugins + "/example-model.so") else {
            throw ValidationError("no example-model.so in \(plugins): run `make -C Plugins examples` or pass --plugin-dir")
        }
        let bench = try Bench(assayd: daemonPath, plugins: plugins, keepTemp: keepTemp)
        defer { bench.cleanUp() }
        var results = Results()
        let mode = daemonPath.contains("/release/") ? "release" : daemonPath.contains("/debug/") ? "debug" : "unknown"
        results.values["assayd"] = daemonPath
        results.values["assayd_build"] = mode
        results.add("assayd build", mode + (mode == "debug" ? " (time a release build: swift build -c release)" : ""))
        try bench.measureIdleAndReload(&results, cycles: reloadCycles)
        try bench.measureLoaded(&results, submits: submits, finishRuns: finishRuns, overheadRuns: overheadRuns)
        try bench.measureIsolation(&results, rounds: isolationRounds)
        if json { try results.printJSON() } else { results.printTable() }
        if keepTemp { Console.error("assay-bench: logs and state kept in \(bench.temp)\n") }
    }
}

// MARK: results

struct Row {
    var name: String
    var measured: String
    var target: String
    /// nil: informational, no target.
    var pass: Bool?
}

struct Results {
    var rows: [Row] = []
    var values: [String: Any] = [:]

    mutating func add(_ name: String, _ measured: String, target: String = "-", pass: Bool? = nil) {
        rows.append(Row(name: name, measured: measured, target: target, pass: pass))
    }

    func printTable() {
        let w0 = max(6, rows.map(\.name.count).max() ?? 0), w1 = max(8, rows.map(\.measured.count).max() ?? 0)
        let w2 = max(6, rows.map(\.target.count).max() ?? 0)
        func line(_ a: String, _ b: String, _ c: String, _ d: String) {
            print(a.padding(toLength: w0, withPad: " ", startingAt: 0) + "  " + b.padding(toLength: w1, withPad: " ", startingAt: 0)
                  + "  " + c.padding(toLength: w2, withPad: " ", startingAt: 0) + "  " + d)
        }
        line("metric", "measured", "target", "verdict")
        line(String(repeating: "-", count: w0), String(repeating: "-", count: w1), String(repeating: "-", count: w2), "-------")
        for r in rows { line(r.name, r.measured, r.target, r.pass.map { $0 ? "PASS" : "MISS" } ?? "info") }
    }

    func printJSON() throws {
        var o = values
        o["verdicts"] = rows.filter { $0.pass != nil }.map { ["metric": $0.name, "measured": $0.measured, "target": $0.target,
                                                                "pass": $0.pass!] as [String: Any] }
        let data = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    }
}

func ms(_ ns: UInt64) -> Double { Double(ns) / 1e6 }

func fmt(_ d: Double, _ digits: Int = 2) -> String {
    guard d.isFinite else { return "\(d)" }
    return String(format: "%.\(digits)f", d)
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let s = values.sorted()
    let i = min(s.count - 1, max(0, Int((p * Double(s.count)).rounded(.up)) - 1))
    return s[i]
}

func median(_ values: [Double]) -> Double { percentile(values, 0.5) }

func nowNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
