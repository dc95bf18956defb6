import ArgumentParser
import AssayCore
import AssayWire
import AssayDBus
import AssayPluginHost

/// What to do with a job once it ends (generate, replay, wait).
struct ResultOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Write the result PNG here (read through OpenResult's descriptor).", valueName: "file.png"))
    var out: String?

    @Option(name: .customLong("contact-sheet"),
            help: ArgumentHelp("Write a grid of all candidates here (best framed in green, a score bar under each). Implies --save-candidates.",
                               valueName: "file.png"))
    var contactSheet: String?

    @Flag(help: "Print the summary as one JSON object on stdout.")
    var json = false

    @Flag(name: [.short, .long], help: "No progress line on stderr.")
    var quiet = false
}

/// Waits for `path` (already watched by `watcher`), writes the requested files, prints the
/// summary and ends with the exit code of the job's state.
func finishJob(_ client: Client, _ watcher: JobWatcher, path: String, _ options: ResultOptions,
               cancelOnInterrupt: Bool, expectedSHA256: String? = nil) throws {
    let props = try watcher.wait(for: path, cancelOnInterrupt: cancelOnInterrupt)
    var summary = JobSummary(path: path, properties: props)
    let state = props["State"]?.stringValue ?? ""
    var local: Failure?
    if state == "done" {
        do {
            if options.out != nil || expectedSHA256 != nil {
                let bytes = try client.resultBytes(path)
                if let expectedSHA256 {
                    let sha = SHA256.hex(bytes)
                    summary.extra.append(("reproduced", sha == expectedSHA256))
                    summary.extra.append(("result_sha256", sha))
                    if sha != expectedSHA256 {
                        local = Failure(ExitStatus.jobFailed, "replay of \(path) differs from the manifest's result (sha256 \(sha), expected \(expectedSHA256))")
                    }
                }
                if let out = options.out {
                    try LocalFile.write(bytes, to: out)
                    summary.extra.append(("out", out))
                }
            }
            if let sheet = options.contactSheet {
                let manifest = props["ManifestPath"]?.stringValue ?? ""
                guard !manifest.isEmpty else { throw Failure(ExitStatus.local, "job \(path) has no manifest") }
                let image = try ContactSheet.make(manifestPath: manifest)
                let png: [UInt8]
                do { png = try PNGEncoder.encode(image) } catch { throw Failure(ExitStatus.local, "\(error)") }
                try LocalFile.write(png, to: sheet)
                summary.extra.append(("contact_sheet", sheet))
            }
        } catch let f as Failure {
            local = f
        }
    }
    if options.json { try printJSON(summary.jsonObject) } else { print(summary.text) }
    if let local { throw local }
    let code = ExitStatus.forState(state)
    if code != ExitStatus.success {
        let why = props["Error"]?.stringValue ?? ""
        throw Failure(code, "job \(path) \(state)" + (why.isEmpty ? "" : ": \(why)"))
    }
}

/// Submits a job and follows it (generate, replay).
func submitAndFollow(_ bus: BusOptions, prompt: String, options: [String: DBusValue], result: ResultOptions,
                     noWait: Bool, expectedSHA256: String? = nil) throws {
    let client = try Client(bus)
    // Subscribe before Submit so that not even a very short job's signals are missed.
    let watcher = noWait ? nil : try JobWatcher(client: client, showProgress: !result.quiet)
    let path = try client.submit(prompt: prompt, options: options)
    guard let watcher else {
        if result.json { try printJSON(["job": path]) } else { print(path) }
        return
    }
    try finishJob(client, watcher, path: path, result, cancelOnInterrupt: true, expectedSHA256: expectedSHA256)
}

// MARK: generate

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a job, show its progress, write its result.",
        discussion: """
        Options left out take the daemon's defaults (model, verifier, steps, guidance, budget). \
        -n N with N > 1 and no --strategy means --strategy best-of-n. Ctrl-C cancels the job (exit 5).
        """)

    @OptionGroup var bus: BusOptions

    @Argument(help: "What the image should show, e.g. \"a red disk top left\".")
    var prompt: String

    @Option(help: "Search strategy: single, best-of-n, zero-order, paths, halving, particles, cofusion, reflect (`assayctl strategies` lists them with their options).")
    var strategy: String?

    @Option(name: .short, help: "Candidates for best-of-n (shorthand for --option n=N).")
    var n: UInt32?

    @Option(name: .customLong("option"),
            help: ArgumentHelp("A strategy option (see ListStrategies), e.g. iterations=3. Repeatable.", valueName: "key=value"))
    var strategyOptions: [String] = []

    @Option(name: .customLong("role"),
            help: ArgumentHelp("The model of a strategy's extra role, e.g. draft=shapes-turbo. Repeatable.", valueName: "role=model"))
    var roles: [String] = []

    @Option(help: "Reflector plugin id (for strategies that reflect).")
    var reflector: String?

    @Option(name: .customLong("target-score"), help: "Stop as soon as a finished candidate scores at least this (first verifier).")
    var targetScore: Double?

    @Option(help: "Model plugin id.")
    var model: String?

    @Option(name: .customLong("verifier"), help: "Verifier plugin id; repeat for several.")
    var verifiers: [String] = []

    @Option(help: "Sampler plugin id (default: the model's built-in sampler).")
    var sampler: String?

    @Option(name: .customLong("sampler-option"),
            help: ArgumentHelp("A sampler option; numbers are sent as numbers. Repeatable.", valueName: "key=value"))
    var samplerOptions: [String] = []

    @Option(help: "Seed (default: a random one, recorded in the manifest).")
    var seed: UInt64?

    @Option(help: "Sampling steps.")
    var steps: UInt32?

    @Option(help: "Classifier-free guidance scale (1 = none).")
    var guidance: Double?

    @Option(name: .customLong("negative-prompt"), help: "What the image should not show.")
    var negativePrompt: String?

    @Option(name: .customLong("budget-nfe"), help: "Model evaluations the job may use.")
    var budgetNFE: UInt32?

    @Option(name: .customLong("budget-verifier-calls"), help: "Verifier calls the job may use.")
    var budgetVerifierCalls: UInt32?

    @Option(name: .customLong("budget-reflector-calls"), help: "Reflector calls the job may use.")
    var budgetReflectorCalls: UInt32?

    @Option(name: .customLong("deadline-ms"), help: "Wall-clock limit of the job in milliseconds.")
    var deadlineMs: UInt32?

    @Flag(name: .customLong("save-candidates"), help: "Keep every candidate's PNG next to the result.")
    var saveCandidates = false

    @OptionGroup var result: ResultOptions

    @Flag(name: .customLong("no-wait"), help: "Print the job's object path and exit at once.")
    var noWait = false

    func validate() throws {
        for o in samplerOptions where !o.contains("=") || o.hasPrefix("=") {
            throw ValidationError("--sampler-option takes key=value, got '\(o)'")
        }
        for o in strategyOptions where !o.contains("=") || o.hasPrefix("=") {
            throw ValidationError("--option takes key=value, got '\(o)'")
        }
        for o in roles where !o.contains("=") || o.hasPrefix("=") {
            throw ValidationError("--role takes role=model, got '\(o)'")
        }
        if noWait && (result.out != nil || result.contactSheet != nil) {
            throw ValidationError("--no-wait cannot write --out or --contact-sheet: use `assayctl wait JOB --out FILE` later")
        }
    }

    var options: [String: DBusValue] {
        var o: [String: DBusValue] = [:]
        if let strategy { o["strategy"] = .string(strategy) } else if let n, n > 1 { o["strategy"] = .string("best-of-n") }
        if let n { o["n"] = .uint32(n) }
        if let model { o["model"] = .string(model) }
        if !verifiers.isEmpty { o["verifiers"] = .strings(verifiers) }
        if let sampler { o["sampler"] = .string(sampler) }
        if !samplerOptions.isEmpty {
            var d: [String: DBusValue] = [:]
            for item in samplerOptions {
                let eq = item.firstIndex(of: "=")!
                let key = String(item[..<eq]), value = String(item[item.index(after: eq)...])
                d[key] = Double(value).map { .double($0) } ?? .string(value)
            }
            o["sampler_options"] = .vardict(d)
        }
        func pairs(_ items: [String]) -> [(String, String)] {
            items.map { item in
                let eq = item.firstIndex(of: "=")!
                return (String(item[..<eq]), String(item[item.index(after: eq)...]))
            }
        }
        if !strategyOptions.isEmpty {
            // Whole numbers go as u, other numbers as d, anything else as s: what the
            // strategy's declarations expect (it converts u to d where it wants a number).
            o["strategy_options"] = .vardict(Dictionary(pairs(strategyOptions).map { k, v in
                (k, UInt32(v).map { .uint32($0) } ?? Double(v).map { .double($0) } ?? .string(v))
            }, uniquingKeysWith: { $1 }))
        }
        if !roles.isEmpty {
            o["models"] = .vardict(Dictionary(pairs(roles).map { ($0.0, DBusValue.string($0.1)) }, uniquingKeysWith: { $1 }))
        }
        if let reflector { o["reflector"] = .string(reflector) }
        if let targetScore { o["target_score"] = .double(targetScore) }
        if let budgetReflectorCalls { o["budget_reflector_calls"] = .uint32(budgetReflectorCalls) }
        if let seed { o["seed"] = .uint64(seed) }
        if let steps { o["steps"] = .uint32(steps) }
        if let guidance { o["guidance"] = .double(guidance) }
        if let negativePrompt { o["negative_prompt"] = .string(negativePrompt) }
        if let budgetNFE { o["budget_nfe"] = .uint32(budgetNFE) }
        if let budgetVerifierCalls { o["budget_verifier_calls"] = .uint32(budgetVerifierCalls) }
        if let deadlineMs { o["deadline_ms"] = .uint32(deadlineMs) }
        if saveCandidates || result.contactSheet != nil { o["save_candidates"] = .bool(true) }
        return o
    }

    func run() throws {
        try submitAndFollow(bus, prompt: prompt, options: options, result: result, noWait: noWait)
    }
}

// MARK: replay

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a manifest's plan again (same seed, same options) and check the result is identical.",
        discussion: "Exit 1 if the job is done but its result differs from the manifest's result_sha256.")

    @OptionGroup var bus: BusOptions

    @Argument(help: "A job's manifest.json.")
    var manifest: String

    @OptionGroup var result: ResultOptions

    @Flag(name: .customLong("no-wait"), help: "Print the job's object path and exit at once.")
    var noWait = false

    func run() throws {
        let m: Manifest
        do { m = try Manifest.decode(try LocalFile.read(manifest)) } catch let f as Failure { throw f } catch {
            throw Failure(ExitStatus.local, "\(manifest) is not a job manifest: \(error)")
        }
        var options = JobOptionsWire.encode(m.plan.asOptionValues)
        if result.contactSheet != nil { options["save_candidates"] = .bool(true) }
        try submitAndFollow(bus, prompt: m.prompt, options: options, result: result, noWait: noWait,
                            expectedSHA256: m.resultSHA256)
    }
}

// MARK: wait, status, cancel

struct Wait: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Wait until a job ends; print its summary (exit code from its state).")

    @OptionGroup var bus: BusOptions

    @Argument(help: "The job: its number or object path.")
    var job: String

    @OptionGroup var result: ResultOptions

    func run() throws {
        let path = try Client.jobPath(job)
        let client = try Client(bus)
        let watcher = try JobWatcher(client: client, showProgress: !result.quiet)
        try finishJob(client, watcher, path: path, result, cancelOnInterrupt: false)
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a job's properties.")

    @OptionGroup var bus: BusOptions

    @Argument(help: "The job: its number or object path.")
    var job: String

    @Flag(help: "Print one JSON object on stdout.")
    var json = false

    func run() throws {
        let path = try Client.jobPath(job)
        let client = try Client(bus)
        let summary = JobSummary(path: path, properties: try client.jobProperties(path))
        if json { try printJSON(summary.jsonObject) } else {
            print(summary.text)
            let p = summary.properties
            for (label, key) in [("prompt", "Prompt"), ("strategy", "Strategy"), ("model", "Model"), ("seed", "Seed"),
                                 ("progress", "Progress"), ("verifier calls", "VerifierCalls"), ("candidates", "Candidates")] {
                print(label.rightPadded(14) + " " + (p[key]?.description ?? "-"))
            }
        }
    }
}

struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a queued or running job.")

    @OptionGroup var bus: BusOptions

    @Argument(help: "The job: its number or object path.")
    var job: String

    func run() throws {
        let path = try Client.jobPath(job)
        _ = try Client(bus).call(path, Client.jobInterface, "Cancel")
        print("cancel requested: \(path)")
    }
}

// MARK: plugins, jobs, reload

struct Plugins: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the daemon's plugins (loaded and refused).")

    @OptionGroup var bus: BusOptions

    @Flag(help: "Print a JSON array on stdout.")
    var json = false

    func run() throws {
        let plugins = try Client(bus).plugins()
        if json { try printJSON(plugins.map { jsonValue(.vardict($0)) }); return }
        printTable(["ID", "KIND", "VERSION", "STATE", "PATH", "REASON"], plugins.map { p in
            ["id", "kind", "version", "state", "path", "reason"].map { p[$0]?.stringValue ?? "" }
                .map { $0.isEmpty ? "-" : $0 }
        })
    }
}

struct Strategies: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the daemon's search strategies and their options (pass them with generate --option key=value).")

    @OptionGroup var bus: BusOptions

    @Flag(help: "Print a JSON array on stdout.")
    var json = false

    func run() throws {
        let list = try Client(bus).manager("ListStrategies").first?.arrayValue?.compactMap(\.vardictValue) ?? []
        if json { try printJSON(list.map { jsonValue(.vardict($0)) }); return }
        for s in list {
            print("\(s["name"]?.stringValue ?? "?"): \(s["summary"]?.stringValue ?? "")")
            let options = s["options"]?.arrayValue?.compactMap(\.vardictValue) ?? []
            printTable(["  OPTION", "TYPE", "DEFAULT", "RANGE", "MEANING"], options.map { o in
                func text(_ v: DBusValue?) -> String {
                    switch v {
                    case .uint32(let u)?: return String(u)
                    case .double(let d)?: return String(d)
                    case .string(let x)?: return x
                    case .array(_, let items)?: return items.compactMap(\.stringValue).joined(separator: "|")
                    default: return "-"
                    }
                }
                let range = o["choices"] != nil ? text(o["choices"]) : "\(text(o["min"]))..\(text(o["max"]))"
                let sized = o["sizes_to_budget"] != nil ? " (grows with budget_nfe)" : ""
                return ["  " + text(o["name"]), text(o["type"]), text(o["default"]), range, text(o["help"]) + sized]
            })
        }
    }
}

struct Jobs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the jobs on the bus (queued, running, recently finished).")

    @OptionGroup var bus: BusOptions

    @Flag(help: "Print a JSON array on stdout.")
    var json = false

    func run() throws {
        let client = try Client(bus)
        var summaries: [JobSummary] = []
        for path in try client.jobs() {
            // A job may be retired between ListJobs and GetAll.
            do { summaries.append(JobSummary(path: path, properties: try client.jobProperties(path))) }
            catch let f as Failure where f.message.contains("io.assay.Error.NotFound") || f.message.contains("UnknownObject") {}
        }
        if json { try printJSON(summaries.map(\.jsonObject)); return }
        printTable(["JOB", "STATE", "PROGRESS", "PROMPT"], summaries.map { s in
            let progress = s.properties["Progress"]?.doubleValue ?? 0
            return [String(s.path.split(separator: "/").last ?? ""), s.properties["State"]?.stringValue ?? "?",
                    "\(Int((progress * 100).rounded(.down)))%", s.properties["Prompt"]?.stringValue ?? ""]
        })
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Rescan the plugin directories now (ReloadPlugins).")

    @OptionGroup var bus: BusOptions

    func run() throws {
        let client = try Client(bus)
        _ = try client.manager("ReloadPlugins", timeoutMs: 300_000)
        let plugins = try client.plugins()
        let loaded = plugins.filter { $0["state"]?.stringValue == "loaded" }.count
        print("reloaded: \(loaded) plugin\(loaded == 1 ? "" : "s") loaded, \(plugins.count - loaded) not")
    }
}
