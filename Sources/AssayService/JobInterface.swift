import AssayCore
import AssayPluginHost
import AssayDBus
import Glibc

/// `io.assay.Job1` on /io/assay/Assay1/jobs/<n>.
extension AssayService {
    /// A file a job writes when it ends, or NotReady while it has none.
    func replyWithJobFile(_ msg: DBusMessage, _ entry: JobEntry, _ path: KeyPath<JobSnapshot, String>,
                          _ what: String) throws -> DBusMessage {
        let snap = entry.job.snapshot
        guard !snap[keyPath: path].isEmpty else {
            throw AssayError.notReady("job \(entry.job.id) has no \(what) (state \(snap.state.rawValue)): wait for its Finished signal")
        }
        return try replyWithFile(msg, snap[keyPath: path])
    }

    /// Replies with a read-only descriptor of `path`: a client of another user (or in a
    /// sandbox) reads results without access to the daemon's state directory.
    func replyWithFile(_ msg: DBusMessage, _ path: String) throws -> DBusMessage {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw AssayError.notFound("\(path) cannot be opened: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) } // libdbus duplicates it into the message
        let r = msg.makeReturn()
        r.append(.unixFD(fd))
        return r
    }

    /// A job as its interface's handlers and getters see it: the snapshot to read (the
    /// current one for calls; the emitted and the new one when diffing for signals).
    struct JobView {
        let service: AssayService
        let entry: JobEntry
        let snapshot: JobSnapshot
        var job: Job { entry.job }
    }

    /// `io.assay.Job1`, declared once (see `BusInterface`).
    static let jobBus = BusInterface<JobView>(
        name: jobInterface,
        methods: [
            BusMethod("Cancel") { v, msg in
                let s = v.service
                if s.config.restrictAdmin, let owner = v.entry.uid {
                    let caller = s.callerUID(msg)
                    guard caller == owner || caller == 0 else {
                        throw AssayError.accessDenied("only the user who submitted job \(v.job.id), or root, may cancel it")
                    }
                }
                if v.job.state.isFinal {
                    throw AssayError.notReady("job \(v.job.id) already ended (\(v.job.state.rawValue)); there is nothing to cancel")
                }
                s.scheduler.cancel(v.job)
                return msg.makeReturn()
            },
            BusMethod("OpenResult", out: [BusArg("png", "h")]) { v, msg in try v.service.replyWithJobFile(msg, v.entry, \.resultPath, "result") },
            BusMethod("OpenManifest", out: [BusArg("json", "h")]) { v, msg in try v.service.replyWithJobFile(msg, v.entry, \.manifestPath, "manifest") },
            BusMethod("OpenCandidate", in: [BusArg("index", "u")], out: [BusArg("png", "h")]) { v, msg in
                guard case .uint32(let index)? = msg.arguments(keepingFDs: false).first else { throw AssayError.invalidArgument("OpenCandidate(u index)") }
                let snap = v.snapshot
                guard !snap.candidatesDirectory.isEmpty else {
                    throw AssayError.notReady("job \(v.job.id) kept no candidate images: submit it with save_candidates=true")
                }
                let file = snap.candidatesDirectory + "/" + String(index).leftPadded(3) + ".png"
                guard access(file, F_OK) == 0 else {
                    throw AssayError.notFound("job \(v.job.id) has no candidate \(index) (it made \(snap.candidates))")
                }
                return try v.service.replyWithFile(msg, file)
            },
        ],
        signals: [BusSignal("Finished", [BusArg("state", "s")])],
        properties: [
            BusProperty("State", "s", .emits) { .string($0.snapshot.state.rawValue) },
            BusProperty("StopReason", "s", .emits) { .string($0.snapshot.stopReason) },
            BusProperty("Prompt", "s", .constant) { .string($0.job.prompt) },
            BusProperty("Strategy", "s", .constant) { .string($0.job.plan.strategy) },
            BusProperty("Model", "s", .constant) { .string($0.job.plan.model) },
            BusProperty("Seed", "t", .constant) { .uint64($0.job.plan.seed) },
            BusProperty("Progress", "d", .emits) { .double($0.snapshot.progress) },
            BusProperty("NfeUsed", "u", .emits) { .uint32(UInt32(clamping: $0.snapshot.nfeUsed)) },
            BusProperty("NfeBudget", "u", .constant) { .uint32(UInt32(clamping: $0.job.plan.budgetNFE)) },
            BusProperty("VerifierCalls", "u", .emits) { .uint32(UInt32(clamping: $0.snapshot.verifierCalls)) },
            BusProperty("ReflectorCalls", "u", .emits) { .uint32(UInt32(clamping: $0.snapshot.reflectorCalls)) },
            BusProperty("FlopRatio", "d", .emits) { .double($0.snapshot.flopRatio ?? 1) },
            BusProperty("Candidates", "u", .emits) { .uint32(UInt32(clamping: $0.snapshot.candidates)) },
            // NaN means "no verifier score" (no verifier, or none yet). D-Bus doubles are
            // IEEE 754, so NaN travels as it is; every binding reads it as NaN.
            BusProperty("BestScore", "d", .emits) { .double($0.snapshot.bestScore) },
            BusProperty("ResultPath", "s", .emits) { .string($0.snapshot.resultPath) },
            BusProperty("ManifestPath", "s", .emits) { .string($0.snapshot.manifestPath) },
            BusProperty("CandidatesPath", "s", .emits) { .string($0.snapshot.candidatesDirectory) },
            BusProperty("Error", "s", .emits) { .string($0.snapshot.error) },
        ])
}
