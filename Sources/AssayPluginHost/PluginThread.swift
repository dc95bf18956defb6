import Dispatch

/// A plugin-management thread: the ABI's `[main-thread]` functions of one library (entry
/// init and deinit, factory calls, instance init and destroy) run on its library's thread,
/// one at a time, and nowhere else. One per loaded library generation, so a library whose
/// `init` takes long delays only itself: other files load, reload and unload meanwhile.
/// Instances may be released by a job thread; their teardown is queued here.
public final class PluginThread: @unchecked Sendable {
    let queue: DispatchQueue
    /// The reason reported with a NULL call by a `[main-thread]` function (instance init),
    /// read back by the loader on this same thread.
    var instanceError: String?
    private static let key = DispatchSpecificKey<Unmanaged<PluginThread>>()

    public init(label: String) {
        queue = DispatchQueue(label: label)
        queue.setSpecific(key: PluginThread.key, value: Unmanaged.passUnretained(self))
    }

    /// The management thread the caller runs on, if any.
    static var current: PluginThread? {
        DispatchQueue.getSpecific(key: PluginThread.key)?.takeUnretainedValue()
    }

    public var isCurrent: Bool { PluginThread.current === self }

    /// Runs `work` on this thread and waits (directly if already there).
    public func sync<T>(_ work: () throws -> T) rethrows -> T {
        if isCurrent { return try work() }
        return try queue.sync(execute: work)
    }

    /// Queues `work`; the thread object lives until it has run.
    public func async(_ work: @escaping @Sendable () -> Void) {
        queue.async { withExtendedLifetime(self) { work() } }
    }
}
