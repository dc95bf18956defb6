import AssayCore
import AssayDBus
import Glibc

/// `io.assay.Job1` on /io/assay/Assay1/jobs/<n>.
extension AssayService {
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
            let snap = entry.job.snapshot
            guard !snap.resultPath.isEmpty else {
                throw AssayError.notReady("job \(entry.job.id) has no result (state \(snap.state.rawValue)): wait for its Finished signal")
            }
            let fd = open(snap.resultPath, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw AssayError.notFound("the result file \(snap.resultPath) cannot be opened: \(String(cString: strerror(errno)))")
            }
            defer { close(fd) } // libdbus duplicates it into the message
            let r = msg.makeReturn()
            r.append(.unixFD(fd))
            return r
        default:
            throw unknownMethod(interface, member)
        }
    }
}
