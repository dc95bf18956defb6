import AssayCore
import AssayClient
import AssayDBus
import Foundation
import Glibc

/// The private bus, the daemons and the measurements.
final class Bench {
    static let name = "io.assay.Assay1"
    static let manager = "/io/assay/Assay1"
    static let managerInterface = "io.assay.Manager1"
    static let properties = "org.freedesktop.DBus.Properties"

    let assayd: String
    let plugins: String
    let temp: String
    let keepTemp: Bool
    let busAddress: String
    private let bus: Process

    init(assayd: String, plugins: String, keepTemp: Bool) throws {
        self.assayd = assayd
        self.plugins = plugins
        self.keepTemp = keepTemp
        temp = NSTemporaryDirectory() + "assay-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: temp, withIntermediateDirectories: true)
        let socket = temp + "/bus"
        busAddress = "unix:path=\(socket)"
        bus = Process()
        bus.executableURL = URL(fileURLWithPath: "/usr/bin/dbus-daemon")
        bus.arguments = ["--session", "--nofork", "--nopidfile", "--address=\(busAddress)"]
        bus.standardOutput = FileHandle.nullDevice
        bus.standardError = FileHandle.nullDevice
        try bus.run()
        for _ in 0..<500 {
            if FileManager.default.fileExists(atPath: socket), (try? DBusConnection(.address(busAddress))) != nil { return }
            usleep(10_000)
        }
        throw BenchError("dbus-daemon did not start")
    }

    func cleanUp() {
        if bus.isRunning { bus.terminate(); bus.waitUntilExit() }
        if !keepTemp { try? FileManager.default.removeItem(atPath: temp) }
    }

    static func executableDirectory() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }

    /// The nearest directory above `dir` with a Package.swift (the repository).
    static func repoRoot(from dir: String) -> String? {
        var d = dir
        while d != "/" && !d.isEmpty {
            if FileManager.default.fileExists(atPath: d + "/Package.swift") { return d }
            d = (d as NSString).deletingLastPathComponent
        }
        return nil
    }

    // MARK: daemon processes

    final class Daemon {
        let process: Process
        let log: String
        let client: DBusConnection
        var pid: Int32 { process.processIdentifier }

        init(_ bench: Bench, label: String, pluginDirs: [String], extra: [String] = []) throws {
            let state = bench.temp + "/state-\(label)"
            log = bench.temp + "/assayd-\(label).log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process = Process()
            process.executableURL = URL(fileURLWithPath: bench.assayd)
            process.arguments = ["--address", bench.busAddress, "--state-dir", state, "--log-level", "info"]
                + pluginDirs.flatMap { ["--plugin-dir", $0] } + extra
            process.standardError = FileHandle(forWritingAtPath: log)
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            client = try DBusConnection(.address(bench.busAddress))
            for _ in 0..<1000 {
                if AssayClient(connection: client).isServing() { return }
                if !process.isRunning { throw BenchError("assayd exited at start; see \(log)") }
                usleep(5_000)
            }
            throw BenchError("assayd did not take its bus name; see \(log)")
        }

        func stop() {
            if process.isRunning { process.terminate(); process.waitUntilExit() }
        }

        /// The shared typed client on this daemon's bus.
        var api: AssayClient { AssayClient(connection: client) }

        func manager(_ member: String, _ args: [DBusValue] = []) throws -> [DBusValue] { try api.manager(member, args) }

        func submit(_ prompt: String, _ options: [String: DBusValue]) throws -> String { try api.submit(prompt, options) }

        func get(_ path: String, _ interface: String, _ property: String) throws -> DBusValue {
            try api.property(path, property, interface: interface)
        }

        func plugins() throws -> [[String: DBusValue]] { try api.plugins() }

        /// Waits until the queue is empty and nothing runs.
        func drain(timeout: Double = 120) throws {
            let end = nowNs() + UInt64(timeout * 1e9)
            while nowNs() < end {
                let q = try get(Bench.manager, Bench.managerInterface, "QueueLength").doubleValue ?? 1
                let r = try get(Bench.manager, Bench.managerInterface, "RunningJobs").doubleValue ?? 1
                if q == 0 && r == 0 { return }
                usleep(10_000)
            }
            throw BenchError("the daemon's queue did not drain in \(timeout) s")
        }

        /// (VmRSS, VmHWM) in MiB.
        func memory() -> (rss: Double, hwm: Double) {
            let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            func field(_ name: String) -> Double {
                for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
                    let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? .nan
                    return kb / 1024
                }
                return .nan
            }
            return (field("VmRSS"), field("VmHWM"))
        }

        /// Every `swap_ms=N` the daemon logged.
        func swapTimes() -> [Double] {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            var out: [Double] = []
            for line in text.split(separator: "\n") {
                guard let r = line.range(of: "swap_ms=") else { continue }
                let digits = line[r.upperBound...].prefix { $0.isNumber }
                if let v = Double(digits) { out.append(v) }
            }
            return out
        }
    }

    // MARK: idle memory and hot reload (a daemon with an empty, watched plugin directory)

    func measureIdleAndReload(_ results: inout Results, cycles: Int) throws {
        let dir = temp + "/watched-plugins"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let d = try Daemon(self, label: "empty", pluginDirs: [dir])
        defer { d.stop() }
        usleep(300_000) // let start-up allocations settle
        _ = try d.plugins()
        let idle = d.memory()
        results.values["idle_rss_mib"] = idle.rss
        results.values["idle_hwm_mib"] = idle.hwm
        results.add("daemon RSS, idle, no plugins (VmRSS)", fmt(idle.rss, 1) + " MiB", target: "< 30 MiB", pass: idle.rss < 30)
        results.add("daemon peak RSS, idle (VmHWM)", fmt(idle.hwm, 1) + " MiB", target: "< 30 MiB", pass: idle.hwm < 30)

        // Alternate two different plugins renamed over one path: the first cycle is a
        // drop-in, every later one replaces a loaded plugin (a swap).
        let sources = [(plugins + "/example-verifier.so", "example-colour"), (plugins + "/example-sampler.so", "example-heun")]
        let target = dir + "/bench-plugin.so"
        var usable: [Double] = []
        for i in 0..<cycles {
            let (source, id) = sources[i % 2]
            let staging = dir + "/.staging-\(i)"
            try? FileManager.default.removeItem(atPath: staging)
            try FileManager.default.copyItem(atPath: source, toPath: staging)
            let t0 = nowNs()
            guard rename(staging, target) == 0 else { throw BenchError("rename into \(dir) failed") }
            let end = t0 + 10_000_000_000
            var seen = false
            while nowNs() < end {
                if try d.plugins().contains(where: {
                    $0["path"]?.stringValue == target && $0["id"]?.stringValue == id && $0["state"]?.stringValue == "loaded"
                }) { seen = true; break }
                usleep(1_000)
            }
            guard seen else { throw BenchError("\(id) dropped into \(dir) never became usable; see \(d.log)") }
            usable.append(ms(nowNs() - t0))
        }
        // The daemon logs swap_ms just after publishing the plugin: give the last line a moment.
        var swaps = d.swapTimes()
        for _ in 0..<200 where swaps.count < cycles {
            usleep(5_000)
            swaps = d.swapTimes()
        }
        results.values["dropin_to_usable_ms"] = usable
        results.values["swap_ms"] = swaps
        let debounce = 150.0
        if !swaps.isEmpty {
            let p50 = median(swaps), worst = swaps.max()!
            results.add("plugin load+swap, daemon's swap_ms p50 / max (\(swaps.count))", "\(fmt(p50, 0)) / \(fmt(worst, 0)) ms",
                        target: "< 50 ms", pass: worst < 50)
        } else {
            results.add("plugin load+swap (swap_ms)", "not logged", target: "< 50 ms", pass: false)
        }
        if !usable.isEmpty {
            let p50 = median(usable), worst = usable.max()!
            results.add("drop-in to usable p50 / max (\(usable.count), incl. \(Int(debounce)) ms debounce)",
                        "\(fmt(p50, 1)) / \(fmt(worst, 1)) ms", target: "< \(Int(debounce) + 50) ms", pass: p50 < debounce + 50)
        }
    }

    // MARK: the loaded daemon: latency, host overhead, memory

    func measureLoaded(_ results: inout Results, submits: Int, finishRuns: Int, overheadRuns: Int) throws {
        let big = String(max(1000, submits * 2))
        let d = try Daemon(self, label: "examples", pluginDirs: [plugins],
                           extra: ["--max-queued", big, "--max-queued-per-client", big])
        defer { d.stop() }
        usleep(200_000)
        let loadedIdle = d.memory()

        let tiny: [String: DBusValue] = ["strategy": .string("single"), "model": .string("example-model"), "steps": .uint32(1),
                                         "seed": .uint64(1)]
        // Warm-up, then Get and Submit interleaved so both see the same noise.
        for _ in 0..<10 { _ = try d.submit("a red disk", tiny); _ = try d.get(Bench.manager, Bench.managerInterface, "Version") }
        try d.drain()
        var submitMs: [Double] = [], getMs: [Double] = []
        for _ in 0..<submits {
            var t = nowNs()
            _ = try d.get(Bench.manager, Bench.managerInterface, "Version")
            getMs.append(ms(nowNs() - t))
            t = nowNs()
            _ = try d.submit("a red disk", tiny)
            submitMs.append(ms(nowNs() - t))
        }
        try d.drain()
        let sp50 = percentile(submitMs, 0.5), sp99 = percentile(submitMs, 0.99)
        let gp50 = percentile(getMs, 0.5), gp99 = percentile(getMs, 0.99)
        results.values["submit_ms"] = ["p50": sp50, "p99": sp99, "count": submitMs.count]
        results.values["get_ms"] = ["p50": gp50, "p99": gp99, "count": getMs.count]
        results.add("Submit round trip p50 / p99 (\(submits))", "\(fmt(sp50, 3)) / \(fmt(sp99, 3)) ms")
        results.add("Properties.Get round trip p50 / p99 (\(submits))", "\(fmt(gp50, 3)) / \(fmt(gp99, 3)) ms")
        results.add("  ratio Submit / Get (p50)", fmt(sp50 / gp50, 2) + "x")

        // Submit to Finished of a 1-step job, on an idle daemon.
        var finished: Set<String> = []
        try d.client.addMatch("type='signal',sender='\(Bench.name)',interface='io.assay.Job1',member='Finished',path_namespace='/io/assay/Assay1/jobs'")
        d.client.setHandler { msg in
            guard msg.type == .signal, msg.member == "Finished", let p = msg.path else { return false }
            finished.insert(p)
            return true
        }
        var finishMs: [Double] = []
        for _ in 0..<finishRuns {
            let t = nowNs()
            let path = try d.submit("a red disk", tiny)
            let end = t + 30_000_000_000
            while !finished.contains(path) && nowNs() < end { d.client.readWriteDispatch(timeoutMs: 5) }
            guard finished.contains(path) else { throw BenchError("no Finished for \(path)") }
            finishMs.append(ms(nowNs() - t))
        }
        let fp50 = percentile(finishMs, 0.5), fp99 = percentile(finishMs, 0.99)
        results.values["submit_to_finished_ms"] = ["p50": fp50, "p99": fp99, "count": finishMs.count]
        results.add("Submit -> Finished, 1-step job p50 / p99 (\(finishRuns))", "\(fmt(fp50, 2)) / \(fmt(fp99, 2)) ms")
        results.add("  ratio Submit->Finished / Submit (p50)", fmt(fp50 / sp50, 1) + "x")

        // Host overhead: best-of-n jobs' manifest timings, on the example model (microseconds
        // per evaluation, so the host's own cost shows) and on the embedded model.
        try measureOverhead(d, &results, finished: { finished }, label: "example-model", model: "example-model",
                            verifier: "example-colour", prompt: "a red disk top left", n: 8, steps: 20, runs: overheadRuns)
        if try d.plugins().contains(where: { $0["id"]?.stringValue == "shapes" && $0["state"]?.stringValue == "loaded" }) {
            try measureOverhead(d, &results, finished: { finished }, label: "shapes (embedded)", model: "shapes",
                                verifier: "shapes-checker", prompt: "a red circle left of a blue square", n: 4, steps: 20, runs: 1)
        } else {
            results.add("host share on the embedded model", "shapes not loaded", target: "< 1 %")
        }

        let after = d.memory()
        results.values["loaded_rss_mib"] = loadedIdle.rss
        results.values["after_jobs_rss_mib"] = after.rss
        results.values["after_jobs_hwm_mib"] = after.hwm
        results.add("daemon RSS, all plugins loaded (embedded model included), before jobs", fmt(loadedIdle.rss, 1) + " MiB")
        results.add("daemon RSS / peak (VmHWM) after \(submits + finishRuns + overheadRuns + 10) jobs",
                    "\(fmt(after.rss, 1)) / \(fmt(after.hwm, 1)) MiB")
    }

    /// What running plugins in worker processes costs: the same best-of-n jobs (model,
    /// verifier) on a daemon with workers (the default) and on one with
    /// --in-process-plugins, alternated; from their manifests: the job's time, the model's
    /// time per evaluation (velocity round trips through the worker's arena included) and
    /// the verifier's time per image.
    func measureIsolation(_ results: inout Results, rounds: Int) throws {
        let shapes = FileManager.default.fileExists(atPath: plugins + "/shapes.so")
        let (model, verifier, prompt, n) = shapes ? ("shapes", "shapes-checker", "a red circle left of a blue square", 4)
                                                   : ("example-model", "example-colour", "a red disk top left", 8)
        let options: [String: DBusValue] = ["strategy": .string("best-of-n"), "model": .string(model), "n": .uint32(UInt32(n)),
                                            "steps": .uint32(20), "seed": .uint64(42), "verifiers": .strings([verifier])]
        var verifierUs: [String: [Double]] = [:], modelUs: [String: [Double]] = [:], runMs: [String: [Double]] = [:]
        for _ in 0..<rounds {
            for (label, extra) in [("worker", [String]()), ("in-process", ["--in-process-plugins"])] {
                let d = try Daemon(self, label: "isolation-\(label)", pluginDirs: [plugins], extra: extra)
                defer { d.stop() }
                for k in 0..<3 {
                    let path = try d.submit(prompt, options)
                    let end = nowNs() + 300_000_000_000
                    var state = ""
                    while nowNs() < end {
                        state = try d.get(path, "io.assay.Job1", "State").stringValue ?? ""
                        if ["done", "failed", "cancelled"].contains(state) { break }
                        usleep(2_000)
                    }
                    guard state == "done" else { throw BenchError("isolation job on \(label) ended \(state)") }
                    if k == 0 { continue } // warm-up: first calls page the plugins in
                    let manifestPath = try d.get(path, "io.assay.Job1", "ManifestPath").stringValue ?? ""
                    let m = try Manifest.decode(Array(try Data(contentsOf: URL(fileURLWithPath: manifestPath))))
                    verifierUs[label, default: []].append(1000 * m.timings.verifierMs / Double(max(1, m.verifierCalls)))
                    modelUs[label, default: []].append(1000 * m.timings.modelMs / Double(max(1, m.nfeUsed)))
                    runMs[label, default: []].append(m.timings.runMs)
                }
            }
        }
        func med(_ d: [String: [Double]], _ k: String) -> Double { median(d[k] ?? []) }
        let share = 100 * (med(runMs, "worker") - med(runMs, "in-process")) / med(runMs, "in-process")
        results.values["isolation"] = ["model": model, "run_ms": runMs, "model_us_per_nfe": modelUs, "verifier_us_per_image": verifierUs]
        results.add("isolation: \(model) best-of-\(n) job, plugins in workers / in process (median of \(2 * rounds))",
                    "\(fmt(med(runMs, "worker"), 1)) / \(fmt(med(runMs, "in-process"), 1)) ms")
        results.add("  model time per NFE, workers / in process", "\(fmt(med(modelUs, "worker"), 1)) / \(fmt(med(modelUs, "in-process"), 1)) µs")
        results.add("  \(verifier) per image, workers / in process", "\(fmt(med(verifierUs, "worker"), 1)) / \(fmt(med(verifierUs, "in-process"), 1)) µs")
        results.add("  the workers' cost over the job's time", fmt(share, 2) + " %", target: "< 1 %", pass: share < 1)
    }

    /// Runs best-of-n jobs and reads their manifests: host share = (run - model - verifier) / run.
    func measureOverhead(_ d: Daemon, _ results: inout Results, finished: () -> Set<String>, label: String, model: String,
                         verifier: String, prompt: String, n: Int, steps: Int, runs: Int) throws {
        let options: [String: DBusValue] = ["strategy": .string("best-of-n"), "model": .string(model), "n": .uint32(UInt32(n)),
                                            "steps": .uint32(UInt32(steps)), "guidance": .double(3), "seed": .uint64(42),
                                            "verifiers": .strings([verifier])]
        var shares: [Double] = [], hostUs: [Double] = [], modelUs: [Double] = [], runMs: [Double] = []
        var evalShares: [Double] = [], evalUs: [Double] = [], fixedMs: [Double] = []
        var nfe = 0
        for _ in 0..<runs {
            let path = try d.submit(prompt, options)
            let end = nowNs() + 600_000_000_000
            while !finished().contains(path) && nowNs() < end { d.client.readWriteDispatch(timeoutMs: 5) }
            let state = try d.get(path, "io.assay.Job1", "State").stringValue ?? ""
            guard state == "done" else {
                let error = try d.get(path, "io.assay.Job1", "Error").stringValue ?? ""
                throw BenchError("best-of-n job \(path) on \(model) ended \(state): \(error)")
            }
            let manifestPath = try d.get(path, "io.assay.Job1", "ManifestPath").stringValue ?? ""
            let m = try Manifest.decode(Array(try Data(contentsOf: URL(fileURLWithPath: manifestPath))))
            let t = m.timings
            let host = t.runMs - t.modelMs - t.verifierMs
            nfe = m.nfeUsed
            shares.append(100 * host / t.runMs)
            hostUs.append(1000 * host / Double(max(1, m.nfeUsed)))
            modelUs.append(1000 * t.modelMs / Double(max(1, m.nfeUsed)))
            runMs.append(t.runMs)
            let evalHost = t.samplingMs - t.modelMs
            evalShares.append(100 * evalHost / t.runMs)
            evalUs.append(1000 * evalHost / Double(max(1, m.nfeUsed)))
            fixedMs.append(t.decodeMs + t.writeMs + (t.runMs - t.samplingMs - t.decodeMs - t.verifierMs - t.writeMs))
        }
        let share = median(shares)
        results.values["host_overhead_\(model)"] = ["share_percent": shares, "host_us_per_eval": hostUs,
                                                    "model_us_per_eval": modelUs, "run_ms": runMs, "nfe": nfe,
                                                    "eval_path_share_percent": evalShares, "eval_path_us_per_nfe": evalUs,
                                                    "fixed_ms": fixedMs]
        results.add("\(label): best-of-\(n) x \(steps) steps, guidance 3 (\(nfe) NFE), median of \(runs)", fmt(median(runMs), 1) + " ms")
        results.add("  host share of job time (run - model - verifier)", fmt(share, 2) + " %", target: "< 1 %", pass: share < 1)
        results.add("  host / model time per evaluation", "\(fmt(median(hostUs), 1)) / \(fmt(median(modelUs), 1)) µs")
        results.add("  of which in the evaluation path (sampling - model)", "\(fmt(median(evalUs), 2)) µs/NFE = \(fmt(median(evalShares), 2)) % of job",
                    target: "< 1 %", pass: median(evalShares) < 1)
        results.add("  per-job fixed costs (decode, PNG, manifest, set-up)", fmt(median(fixedMs), 2) + " ms")
    }
}
