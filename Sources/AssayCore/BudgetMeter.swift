import AssayPluginHost

/// Why a job stopped.
public enum StopReason: String, Sendable, Codable {
    case completed, budget, deadline, cancelled, error
    /// A finished candidate reached the job's `target_score` (an anytime search's goal).
    case target
    /// The daemon stopped (crash or restart) while the job was queued or running, and it
    /// could not be run again from its plan.
    case restart
}

/// The host refused to start more work for a job.
public struct BudgetRefusal: Error, Sendable, CustomStringConvertible {
    public let reason: StopReason
    public let detail: String
    public var description: String { "\(reason.rawValue): \(detail)" }
}

/// Counts everything a job spends and refuses what would exceed its limits.
///
/// Every model evaluation, verifier call and reflector call of a job goes through
/// `reserve…` *before* it is made, so a job can never spend more than its budget: the call
/// that would cross the line is refused whole (not partly run). Thread-safe.
public final class BudgetMeter: @unchecked Sendable {
    public let nfeBudget: Int
    public let verifierBudget: Int?
    public let reflectorBudget: Int?
    public let deadlineNs: UInt64?
    private let isCancelled: @Sendable () -> Bool

    private struct Counts {
        var nfe = 0
        var verifierCalls = 0
        var reflectorCalls = 0
        var refused: StopReason?
    }
    private let counts = Locked(Counts())

    public init(nfeBudget: Int, verifierBudget: Int?, reflectorBudget: Int? = nil, deadlineMs: Int?,
                isCancelled: @escaping @Sendable () -> Bool) {
        self.nfeBudget = nfeBudget
        self.verifierBudget = verifierBudget
        self.reflectorBudget = reflectorBudget
        self.deadlineNs = deadlineMs.map { DispatchTimeClock.now() + UInt64($0) * 1_000_000 }
        self.isCancelled = isCancelled
    }

    public var nfeUsed: Int { counts.withLock { $0.nfe } }
    public var nfeLeft: Int { nfeBudget - nfeUsed }
    public var verifierCalls: Int { counts.withLock { $0.verifierCalls } }
    public var reflectorCalls: Int { counts.withLock { $0.reflectorCalls } }
    /// The first refusal, which is what ended the job early.
    public var firstRefusal: StopReason? { counts.withLock { $0.refused } }

    /// True when the job was cancelled or is past its deadline (cheap; plugins poll it).
    public var shouldStop: Bool {
        if isCancelled() { return true }
        if let d = deadlineNs, DispatchTimeClock.now() >= d { return true }
        return false
    }

    private func checkStop() throws {
        if let r = stopRefusal() { throw r }
        if counts.withLock({ $0.refused == .target }) { throw BudgetRefusal(reason: .target, detail: "the job reached its target") }
    }

    /// The refusal that applies now (cancelled or past the deadline), recorded as the job's
    /// stop reason; nil while the job may go on. For a plugin that stopped on its own after
    /// polling `is_cancelled`.
    public func stopRefusal() -> BudgetRefusal? {
        if isCancelled() { return refuse(.cancelled, "the job was cancelled") }
        if let d = deadlineNs, DispatchTimeClock.now() >= d { return refuse(.deadline, "the job's deadline passed") }
        return nil
    }

    private func refuse(_ reason: StopReason, _ detail: String) -> BudgetRefusal {
        counts.withLock { if $0.refused == nil { $0.refused = reason } }
        return BudgetRefusal(reason: reason, detail: detail)
    }

    /// Reserves `nfe` model evaluations or throws without reserving any.
    public func reserveNFE(_ nfe: Int) throws {
        try checkStop()
        let ok = counts.withLock { c -> Bool in
            guard c.nfe + nfe <= nfeBudget else { return false }
            c.nfe += nfe
            return true
        }
        if !ok { throw outOfBudget(needing: nfe) }
    }

    public func reserveVerifierCalls(_ calls: Int) throws {
        try checkStop()
        let ok = counts.withLock { c -> Bool in
            if let b = verifierBudget, c.verifierCalls + calls > b { return false }
            c.verifierCalls += calls
            return true
        }
        if !ok { throw refuse(.budget, "\(calls) more verifier calls would exceed the budget of \(verifierBudget ?? 0)") }
    }

    public func reserveReflectorCalls(_ calls: Int) throws {
        try checkStop()
        let ok = counts.withLock { c -> Bool in
            if let b = reflectorBudget, c.reflectorCalls + calls > b { return false }
            c.reflectorCalls += calls
            return true
        }
        if !ok { throw refuse(.budget, "\(calls) more reflector calls would exceed the budget of \(reflectorBudget ?? 0)") }
    }

    /// Records that the job stops on its budget without spending anything: for a strategy
    /// that sees the next step (`nfe` more) cannot be paid for and ends the search itself.
    public func outOfBudget(needing nfe: Int) -> BudgetRefusal {
        refuse(.budget, "\(nfe) more NFEs would exceed the budget of \(nfeBudget) (used \(nfeUsed))")
    }

    /// Records that the job reached its target (the stop reason) and returns the refusal
    /// that ends the search; nothing is spent afterwards.
    public func reachTarget(_ detail: String) -> BudgetRefusal {
        refuse(.target, detail)
    }
}
