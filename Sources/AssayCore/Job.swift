import AssayPluginHost

public enum JobState: String, Sendable, Codable {
    case queued, running, done, failed, cancelled

    public var isFinal: Bool { self == .done || self == .failed || self == .cancelled }
}

/// What a client can read about a job at any moment (D-Bus properties are built from it).
public struct JobSnapshot: Sendable {
    public var state: JobState = .queued
    public var progress: Double = 0
    public var nfeUsed: Int = 0
    public var verifierCalls: Int = 0
    public var reflectorCalls: Int = 0
    public var bestScore: Double = .nan
    public var resultPath: String = ""
    public var manifestPath: String = ""
    public var candidatesDirectory: String = ""
    public var error: String = ""
    public var stopReason: String = ""
    public var candidates: Int = 0
    /// Model FLOPs run over FLOPs uncached so far (nil: the models report no FLOPs).
    public var flopRatio: Double?
}

/// One generation request: a prompt, its options, and its observable state.
///
/// State changes go through `update`, which notifies the observer (the D-Bus surface) from
/// the thread that changed it; the observer must hop to its own thread.
public final class Job: @unchecked Sendable {
    public let id: UInt64
    public let prompt: String
    /// The resolved options it runs with (validated at submission).
    public let plan: JobPlan
    /// Who submitted it, for per-client queue caps and fairness.
    public let client: String
    public let submittedNs = DispatchTimeClock.now()

    private let snapshotState = Locked(JobSnapshot())
    private let cancelFlag = Locked(false)
    private let observerBox = Locked<(@Sendable (Job) -> Void)?>(nil)
    /// Set when the job finishes.
    public let finishedNs = Locked<UInt64?>(nil)

    public init(id: UInt64, prompt: String, plan: JobPlan, client: String) {
        self.id = id
        self.prompt = prompt
        self.plan = plan
        self.client = client
    }

    public var snapshot: JobSnapshot { snapshotState.current }
    public var state: JobState { snapshotState.withLock { $0.state } }

    public func setObserver(_ observer: @escaping @Sendable (Job) -> Void) {
        observerBox.withLock { $0 = observer }
    }

    /// Changes the snapshot and tells the observer.
    public func update(_ change: (inout JobSnapshot) -> Void) {
        let final = snapshotState.withLock { s -> Bool in
            change(&s)
            return s.state.isFinal
        }
        if final { finishedNs.withLock { if $0 == nil { $0 = DispatchTimeClock.now() } } }
        observerBox.current?(self)
    }

    public var isCancelRequested: Bool { cancelFlag.current }

    /// The daemon is stopping: the job stops like a cancelled one, but it is not over for
    /// its client. Nothing final is written, so its record says it did not finish and the
    /// next start runs it again from its plan.
    public func interruptForShutdown() {
        shutdownFlag.withLock { $0 = true }
        requestCancel()
    }

    public var isInterruptedForShutdown: Bool { shutdownFlag.current }
    private let shutdownFlag = Locked(false)

    /// Asks the job to stop; takes effect at its next model evaluation (or at once if queued,
    /// by the scheduler).
    public func requestCancel() { cancelFlag.withLock { $0 = true } }
}
