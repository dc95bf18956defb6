import AssayPluginHost

/// The jobs a daemon serves, by id, and how long a finished one stays: from Submit (or a
/// restart) until its retention after it ends has passed. Then it is forgotten here; its
/// files stay in the state directory. Time only: there is no cap on how many, so one
/// client's flood cannot push another client's finished job away before it was read.
///
/// `Entry` is what the front end keeps per job (the D-Bus surface keeps its signalling
/// state). Not thread-safe: one thread (the bus loop) owns it.
public final class JobRegistry<Entry> {
    private var entries: [UInt64: Entry] = [:]
    /// Seconds (monotonic) at which a finished job leaves.
    private var leaves: [UInt64: Double] = [:]
    public let retention: Double
    private let clock: () -> Double

    /// `clock`: monotonic seconds (tests pass their own).
    public init(retention: Double, clock: @escaping () -> Double = JobRegistry.monotonicSeconds) {
        self.retention = retention
        self.clock = clock
    }

    public static func monotonicSeconds() -> Double { Double(DispatchTimeClock.now()) / 1e9 }

    /// The entry of a job that is still served.
    public subscript(id: UInt64) -> Entry? {
        expire()
        return entries[id]
    }

    /// Ids of the jobs served now, in order.
    public var ids: [UInt64] {
        expire()
        return entries.keys.sorted()
    }

    public var all: [Entry] { ids.compactMap { entries[$0] } }

    public func add(_ id: UInt64, _ entry: Entry) { entries[id] = entry }

    /// The job ended: it stays `after` seconds more (default: the retention). Returns when
    /// to look again, in seconds from now, so an owner with a timer can call `expire`.
    @discardableResult
    public func ended(_ id: UInt64, after: Double? = nil) -> Double {
        let wait = max(0, after ?? retention)
        leaves[id] = clock() + wait
        return wait
    }

    /// Forgets the finished jobs whose time is up; returns their ids.
    @discardableResult
    public func expire() -> [UInt64] {
        let now = clock()
        let gone = leaves.filter { $0.value <= now }.map(\.key).sorted()
        for id in gone {
            entries.removeValue(forKey: id)
            leaves.removeValue(forKey: id)
        }
        return gone
    }
}
