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

    func handleJob(_ entry: JobEntry, _ msg: DBusMessage, interface: String?, member: String) throws -> DBusMessage? {
        if interface == AssayService.propertiesInterface {
            return try handleProperties(msg, member: member, interface: AssayService.jobInterface,
                                        values: JobProperties.values(entry.job, entry.job.snapshot))
        }
        guard interface == nil || interface == AssayService.jobInterface else { throw unknownMethod(interface, member) }
        switch member {
        case "Cancel":
            try requireSignature(msg, "", "Cancel()")
            if config.restrictAdmin, let owner = entry.uid {
                let caller = callerUID(msg)
                guard caller == owner || caller == 0 else {
                    throw AssayError.accessDenied("only the user who submitted job \(entry.job.id), or root, may cancel it")
                }
            }
            if entry.job.state.isFinal {
                throw AssayError.notReady("job \(entry.job.id) already ended (\(entry.job.state.rawValue)); there is nothing to cancel")
            }
            scheduler.cancel(entry.job)
            return msg.makeReturn()
        case "OpenResult":
            try requireSignature(msg, "", "OpenResult()")
            return try replyWithJobFile(msg, entry, \.resultPath, "result")
        case "OpenManifest":
            try requireSignature(msg, "", "OpenManifest()")
            return try replyWithJobFile(msg, entry, \.manifestPath, "manifest")
        case "OpenCandidate":
            try requireSignature(msg, "u", "OpenCandidate(u index)")
            guard case .uint32(let index)? = msg.arguments(keepingFDs: false).first else { throw AssayError.invalidArgument("OpenCandidate(u index)") }
            let snap = entry.job.snapshot
            guard !snap.candidatesDirectory.isEmpty else {
                throw AssayError.notReady("job \(entry.job.id) kept no candidate images: submit it with save_candidates=true")
            }
            let file = snap.candidatesDirectory + "/" + String(index).leftPadded(3) + ".png"
            guard access(file, F_OK) == 0 else {
                throw AssayError.notFound("job \(entry.job.id) has no candidate \(index) (it made \(snap.candidates))")
            }
            return try replyWithFile(msg, file)
        default:
            throw unknownMethod(interface, member)
        }
    }
}
