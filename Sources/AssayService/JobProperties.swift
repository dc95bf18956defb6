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
            "ReflectorCalls": .uint32(UInt32(clamping: s.reflectorCalls)),
            "FlopRatio": .double(s.flopRatio ?? 1),
            "Candidates": .uint32(UInt32(clamping: s.candidates)),
            // NaN means "no verifier score" (no verifier, or none yet). D-Bus doubles are
            // IEEE 754, so NaN travels as it is; every binding reads it as NaN.
            "BestScore": .double(s.bestScore),
            "ResultPath": .string(s.resultPath),
            "ManifestPath": .string(s.manifestPath),
            "CandidatesPath": .string(s.candidatesDirectory),
            "Error": .string(s.error),
        ]
    }
}
