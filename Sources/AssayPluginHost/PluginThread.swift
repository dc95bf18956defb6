import Dispatch

/// The plugin-management thread: the ABI's `[main-thread]` functions (entry init and
/// deinit, factory calls, instance init and destroy) run here and nowhere else, one at a
/// time. Instances may be released by a job thread; their teardown is queued here.
public enum PluginThread {
    static let queue = DispatchQueue(label: "io.assay.plugin-management")
    private static let key = DispatchSpecificKey<Bool>()
    private static let marked: Bool = {
        queue.setSpecific(key: key, value: true)
        return true
    }()

    public static var isCurrent: Bool {
        _ = marked
        return DispatchQueue.getSpecific(key: key) == true
    }

    /// Runs `work` on the management thread and waits (directly if already there).
    public static func sync<T>(_ work: () throws -> T) rethrows -> T {
        _ = marked
        if isCurrent { return try work() }
        return try queue.sync(execute: work)
    }

    public static func async(_ work: @escaping @Sendable () -> Void) {
        _ = marked
        queue.async(execute: work)
    }
}
