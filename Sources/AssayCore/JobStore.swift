import AssayPluginHost
import FoundationEssentials
import Glibc

/// Jobs on disk, so that none is lost or overwritten across a crash or a restart.
///
/// The store is the state directory's `jobs/` folder itself, one folder per job:
/// - an id is taken by creating `jobs/ID` (mkdir is atomic), counting up from the highest
///   folder present, so an id never repeats while its folder exists, even with two daemons
///   on one state directory, and a new job never writes over an old job's files;
/// - `jobs/ID/job.json` (this type's `Record`) is written durably at Submit, before the
///   client hears of the job, and again when the job ends without a manifest (cancelled
///   while queued);
/// - `jobs/ID/manifest.json`, written durably and last by the runner, is what says the job
///   finished: its state, counts and files.
///
/// Why files and not SQLite: every record has one writer (the daemon's loop thread), no
/// query spans jobs, and a job's results already live in its folder; a folder per job with
/// atomic, fsynced writes gives the same durability with nothing to link, nothing to
/// migrate, and state an administrator can read and clean with `ls` and `rm -r`.
///
/// `recover` reads it back at start-up: finished jobs whose retention has not run out go
/// back on the bus; queued and running ones run again from their recorded plan (the plan
/// has the seed, and replay is deterministic, so a rerun makes the result the interrupted
/// run would have made); a job whose record cannot be read is reported, never dropped
/// silently.
public final class JobStore: @unchecked Sendable {
    /// What is kept of a job from Submit on.
    public struct Record: Codable, Sendable {
        public var recordVersion = 1
        public var id: UInt64
        public var prompt: String
        public var plan: JobPlan
        public var client: String
        public var uid: UInt32?
        /// Seconds since the epoch.
        public var submitted: Double
        /// Set when the job ended without a manifest (cancelled while queued).
        public var state: JobState?
        public var stopReason: String?
        public var error: String?
        public var finished: Double?

        public init(id: UInt64, prompt: String, plan: JobPlan, client: String, uid: UInt32?, submitted: Double) {
            self.id = id
            self.prompt = prompt
            self.plan = plan
            self.client = client
            self.uid = uid
            self.submitted = submitted
        }

        enum CodingKeys: String, CodingKey {
            case recordVersion = "record_version", id, prompt, plan, client, uid, submitted, state
            case stopReason = "stop_reason", error, finished
        }
    }

    /// A job found at start-up.
    public enum Recovered: Sendable {
        /// Ended; stays on the bus for `retention` more seconds.
        case finished(Record, JobSnapshot, retention: Double)
        /// Was queued or running: run it again.
        case rerun(Record, wasRunning: Bool)
        /// Its folder has a record that cannot be read.
        case unreadable(id: UInt64, reason: String)
    }

    public let root: String
    public var jobsFolder: String { root + "/jobs" }
    private let next = Locked<UInt64>(1)

    public init(root: String) throws {
        self.root = root
        try FileIO.makeDirectories(root + "/jobs", mode: 0o755)
        next.withLock { $0 = (JobStore.ids(in: root + "/jobs").max() ?? 0) + 1 }
    }

    public func directory(for id: UInt64) -> String { "\(jobsFolder)/\(id)" }

    static func ids(in folder: String) -> [UInt64] {
        guard let d = opendir(folder) else { return [] }
        defer { closedir(d) }
        var out: [UInt64] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if let id = UInt64(name), String(id) == name { out.append(id) }
        }
        return out
    }

    /// Takes a new id by creating its folder.
    public func reserveID() throws -> UInt64 {
        try next.withLock { n -> UInt64 in
            for _ in 0..<100_000 {
                let id = n
                n += 1
                if mkdir(directory(for: id), 0o755) == 0 { return id }
                guard errno == EEXIST else {
                    throw AssayError.failed("cannot make the job folder \(directory(for: id)): \(String(cString: strerror(errno)))")
                }
            }
            throw AssayError.failed("no free job id in \(jobsFolder)")
        }
    }

    /// Gives back an id whose job never existed for a client (Submit failed after it).
    public func release(_ id: UInt64) {
        unlink(directory(for: id) + "/job.json")
        rmdir(directory(for: id))
    }

    public func write(_ record: Record) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try FileIO.write(Array(try encoder.encode(record)) + [10], to: directory(for: record.id) + "/job.json", durable: true)
    }

    public func read(_ id: UInt64) throws -> Record {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try decoder.decode(Record.self, from: Data(try FileIO.read(directory(for: id) + "/job.json")))
    }

    /// Records that a job ended without a manifest (the runner writes one otherwise).
    public func recordEnd(_ job: Job, uid: UInt32?, submitted: Double) {
        let s = job.snapshot
        guard s.state.isFinal, s.manifestPath.isEmpty else { return }
        var r = Record(id: job.id, prompt: job.prompt, plan: job.plan, client: job.client, uid: uid, submitted: submitted)
        r.state = s.state
        r.stopReason = s.stopReason
        r.error = s.error.isEmpty ? nil : s.error
        r.finished = JobStore.now()
        try? write(r)
    }

    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Every job of the state directory that is still of interest, oldest first; removes
    /// what a crash left half-written (temporary files; a rerun job's partial results).
    /// Folders without a record (written before records existed) are left alone.
    public func recover(retention: Double, now: Double = JobStore.now()) -> [Recovered] {
        var out: [Recovered] = []
        for id in JobStore.ids(in: jobsFolder).sorted() {
            let dir = directory(for: id)
            JobStore.removeTemporaries(in: dir)
            guard FileIO.exists(dir + "/job.json") else { continue }
            let record: Record
            do { record = try read(id) } catch {
                out.append(.unreadable(id: id, reason: "\(error)"))
                continue
            }
            let manifestPath = dir + "/manifest.json"
            if let state = record.state, state.isFinal {
                let left = (record.finished ?? record.submitted) + retention - now
                guard left > 0 else { continue }
                var s = JobSnapshot()
                s.state = state
                s.stopReason = record.stopReason ?? ""
                s.error = record.error ?? ""
                out.append(.finished(record, s, retention: left))
                continue
            }
            var st = stat()
            if stat(manifestPath, &st) == 0 {
                let finished = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
                let left = finished + retention - now
                guard left > 0 else { continue }
                do {
                    let m = try Manifest.decode(try FileIO.read(manifestPath))
                    out.append(.finished(record, JobStore.snapshot(m, dir: dir), retention: left))
                } catch {
                    out.append(.unreadable(id: id, reason: "its manifest cannot be read: \(error)"))
                }
                continue
            }
            // Queued or running when the daemon stopped: what the run wrote is partial.
            let wasRunning = FileIO.exists(dir + "/result.png") || FileIO.exists(dir + "/candidates") || FileIO.exists(dir + "/nodes")
            unlink(dir + "/result.png")
            for sub in ["candidates", "nodes"] { JobStore.removeFolder(dir + "/" + sub) }
            out.append(.rerun(record, wasRunning: wasRunning))
        }
        return out
    }

    /// A finished job's snapshot from its manifest.
    static func snapshot(_ m: Manifest, dir: String) -> JobSnapshot {
        var s = JobSnapshot()
        s.state = JobState(rawValue: m.state) ?? .failed
        s.stopReason = m.stopReason
        s.error = m.error ?? ""
        s.nfeUsed = m.nfeUsed
        s.verifierCalls = m.verifierCalls
        s.reflectorCalls = m.reflectorCalls
        s.bestScore = m.bestScore ?? .nan
        s.resultPath = m.result.map { dir + "/" + $0 } ?? ""
        s.manifestPath = dir + "/manifest.json"
        s.candidatesDirectory = FileIO.exists(dir + "/candidates") ? dir + "/candidates" : ""
        s.candidates = m.candidates.count
        s.flopRatio = m.flopRatio
        if s.state == .done { s.progress = 1 }
        return s
    }

    static func removeTemporaries(in dir: String) {
        for sub in ["", "/candidates", "/nodes"] {
            for name in FileIO.listFiles(dir + sub) where name.contains(FileIO.temporaryMarker) {
                unlink(dir + sub + "/" + name)
            }
        }
    }

    static func removeFolder(_ dir: String) {
        for name in FileIO.listFiles(dir) { unlink(dir + "/" + name) }
        rmdir(dir)
    }
}
