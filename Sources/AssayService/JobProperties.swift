import AssayCore
import AssayDBus

/// The `io.assay.Job1` properties of a job, from its snapshot.
enum JobProperties {
    static func values(_ job: Job, _ s: JobSnapshot) -> [String: DBusValue] {
        [
            "State": .string(s.state.rawValue),
            "StopReason": .string(s.stopReason),
            "Prompt": .string(job.prompt),
            "Strategy": .string(job.plan.strategy),
            "Model": .string(job.plan.model),
            "Seed": .uint64(job.plan.seed),
            "Progress": .double(s.progress),
            "NfeUsed": .uint32(UInt32(clamping: s.nfeUsed)),
            "NfeBudget": .uint32(UInt32(clamping: job.plan.budgetNFE)),
            "VerifierCalls": .uint32(UInt32(clamping: s.verifierCalls)),
            "Candidates": .uint32(UInt32(clamping: s.candidates)),
            // D-Bus has no NaN-free guarantee across bindings; "no score yet" is -inf... no:
            // clients expect a number, so NaN is sent as it is (IEEE doubles on the wire).
            "BestScore": .double(s.bestScore),
            "ResultPath": .string(s.resultPath),
            "ManifestPath": .string(s.manifestPath),
            "CandidatesPath": .string(s.candidatesDirectory),
            "Error": .string(s.error),
        ]
    }
}
