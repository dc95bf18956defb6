import AssayCore
import AssayDBus

/// The `io.assay.Job1` properties of a job, from its snapshot.
enum JobProperties {
    static func values(_ service: AssayService, _ entry: AssayService.JobEntry, _ s: JobSnapshot) -> [String: DBusValue] {
        AssayService.jobBus.values(AssayService.JobView(service: service, entry: entry, snapshot: s))
    }
}
