import AssayDBus
import Foundation
import XCTest

/// Thousands of hostile calls against a real daemon under a low descriptor limit (issue 11,
/// part 4): wrong signatures, unknown members and objects, garbage arguments, descriptors
/// where none belong and where they do. Every call is answered, the daemon lives, and its
/// descriptors and memory come back to where they were.
final class HostileCallsTests: XCTestCase {
    /// A small deterministic generator (the run is the same every time).
    struct RNG {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ a: [T]) -> T { a[int(a.count)] }
    }

    func rss(_ pid: Int32) -> Int {
        let status = Shell.run(["cat", "/proc/\(pid)/status"]).stdout
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0 // KiB
    }

    func descriptors(_ pid: Int32) -> Set<Int> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap { Int($0) })
    }

    func settled(_ pid: Int32) -> Set<Int> {
        var last = descriptors(pid)
        for _ in 0..<50 {
            usleep(150_000)
            let now = descriptors(pid)
            if now == last { return now }
            last = now
        }
        return last
    }

    func testThousandsOfHostileCallsLeaveTheDaemonUpWithDescriptorsAndMemoryFlat() throws {
        let d = try Daemon()
        let job = try d.submit("a red disk", ["save_candidates": .bool(true), "strategy": .string("best-of-n"), "n": .uint32(2)])
        XCTAssertEqual(try d.waitFinished(job), "done")
        // Warm every path once, so that what is allocated for good is allocated.
        for member in ["ListPlugins", "ListJobs", "ListStrategies"] { _ = try d.callManager(member) }
        _ = try? d.client.call(destination: Daemon.name, path: job, interface: "io.assay.Job1", member: "OpenResult", [])
            .forEach { $0.closeUnixFDs() }
        // Score reads descriptors on worker threads with a timer (Dispatch makes its timer
        // and thread descriptors once, on first use).
        for _ in 0..<3 {
            let null = open("/dev/null", O_RDONLY)
            _ = try? d.callManager("Score", [.string("a red disk"), .array(elementSignature: "h", [.unixFD(null)]), .strings([]), .vardict([:])])
            close(null)
        }

        let baseFDs = settled(d.pid)
        let limit = (baseFDs.max() ?? 0) + 6 // a handful free: messages carry up to 5
        XCTAssertEqual(Shell.run(["prlimit", "--pid", "\(d.pid)", "--nofile=\(limit):"]).status, 0)
        let baseRSS = rss(d.pid)

        var rng = RNG(state: 0xA55A)
        let paths = [Daemon.manager, job, "/io/assay/Assay1/jobs/999999", "/", "/io/assay/Assay1/jobs/x", "/io/assay"]
        let interfaces: [String?] = ["io.assay.Manager1", "io.assay.Job1", "org.freedesktop.DBus.Properties",
                                     "org.freedesktop.DBus.Introspectable", "io.assay.Nope1", nil]
        let members = ["Submit", "Score", "ListPlugins", "ListJobs", "ListStrategies", "Cancel", "OpenResult", "OpenManifest",
                       "OpenCandidate", "Get", "GetAll", "Set", "Introspect", "Frobnicate", "ReloadPlugins"]
        func fd() -> Int32 {
            if rng.int(2) == 0 { return open("/dev/null", O_RDONLY) }
            var p: [Int32] = [-1, -1]
            pipe(&p)
            close(p[1]) // an empty pipe that ends at once
            return p[0]
        }
        func value(_ depth: Int = 0) -> DBusValue {
            switch rng.int(depth > 1 ? 6 : 9) {
            case 0: return .string(String(repeating: rng.pick(["a", "ä", "\u{1F600}", "%", " "]), count: rng.int(300)))
            case 1: return .uint32(UInt32(truncatingIfNeeded: rng.next()))
            case 2: return .int64(Int64(bitPattern: rng.next()))
            case 3: return .double(rng.pick([0, -1, .nan, .infinity, 1e308]))
            case 4: return .unixFD(fd())
            case 5: return .bool(rng.int(2) == 0)
            case 6: return .variant(value(depth + 1))
            case 7: return .vardict(Dictionary(uniqueKeysWithValues: (0..<rng.int(4)).map {
                ("\(rng.pick(["strategy", "n", "seed", "verifiers", "fd", "x"]))\($0)", value(depth + 1)) }))
            default: return .array(elementSignature: "h", (0..<rng.int(4)).map { _ in .unixFD(fd()) })
            }
        }
        let calls = 5000
        var answered = 0, withDescriptors = 0
        var names: [String: Int] = [:]
        let started = Date()
        for k in 0..<calls {
            let member = rng.pick(members)
            var args: [DBusValue]
            switch rng.int(5) {
            case 0: args = []
            case 4: args = [.unixFD(fd()), value()]
            case 1 where member == "Score":
                // Score's own shape with hostile content: descriptors that are not PNGs.
                args = [.string(rng.pick(["a red circle", "", "x"])), .array(elementSignature: "h", (0..<rng.int(5)).map { _ in .unixFD(fd()) }),
                        .strings(rng.pick([[], ["example-colour"], ["nope"]])), .vardict([:])]
            case 2: args = [.string(rng.pick(["a red disk", "", "x y z"])), .vardict(["fd": .variant(.unixFD(fd())), "n": .uint32(0)])]
            default: args = (0..<rng.int(5)).map { _ in value() }
            }
            if args.contains(where: { $0.signature.contains("h") }) { withDescriptors += 1 }
            do {
                // Half the calls go where the member lives, so the handlers see hostile
                // arguments, not only the router.
                let home: (String, String?) = ["Submit", "Score", "ListPlugins", "ListJobs", "ListStrategies", "ReloadPlugins"].contains(member)
                    ? (Daemon.manager, "io.assay.Manager1")
                    : ["Get", "GetAll", "Set"].contains(member) ? (rng.pick([Daemon.manager, job]), "org.freedesktop.DBus.Properties")
                    : member == "Introspect" ? (rng.pick(paths), "org.freedesktop.DBus.Introspectable") : (job, "io.assay.Job1")
                let coherent = rng.int(2) == 0
                let msg = DBusMessage.methodCall(destination: Daemon.name, path: coherent ? home.0 : rng.pick(paths),
                                                 interface: coherent ? home.1 : rng.pick(interfaces), member: member)
                msg.append(contentsOf: args)
                let reply = try d.client.call(msg, timeoutMs: 10_000)
                reply.arguments().forEach { $0.closeUnixFDs() }
                names["ok", default: 0] += 1
            } catch let e as DBusError {
                XCTAssertFalse(["org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.ServiceUnknown",
                                "org.freedesktop.DBus.Error.Disconnected"].contains(e.name),
                               "call \(k) (\(member)) was not answered: \(e.name): \(e.message)")
                names[e.name, default: 0] += 1
                if e.name == "org.freedesktop.DBus.Error.ServiceUnknown" { break }
            }
            for a in args { a.closeUnixFDs() }
            answered += 1
        }
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(answered, calls)
        XCTAssertGreaterThan(withDescriptors, calls / 4)
        XCTAssertLessThan(seconds, 120, "the hostile calls took too long")
        d.assertAlive()

        XCTAssertEqual(Shell.run(["prlimit", "--pid", "\(d.pid)", "--nofile=\(limit + 1000):"]).status, 0)
        let afterFDs = settled(d.pid)
        let leaked = afterFDs.subtracting(baseFDs).sorted().map { fd -> String in
            var buf = [CChar](repeating: 0, count: 512)
            let n = readlink("/proc/\(d.pid)/fd/\(fd)", &buf, 511)
            return "\(fd) -> " + (n > 0 ? String(cString: buf) : "?")
        }
        XCTAssertEqual(afterFDs, baseFDs, "descriptors left open in the daemon: \(leaked)")
        let grown = rss(d.pid) - baseRSS
        XCTAssertLessThan(grown, 8 * 1024, "RSS grew by \(grown) KiB over \(calls) hostile calls (\(names))")
        // Still serving real work.
        let after = try d.submit("a blue disk")
        XCTAssertEqual(try d.waitFinished(after), "done")
        print("hostile calls: \(calls) in \(String(format: "%.1f", seconds)) s, \(withDescriptors) with descriptors; RSS +\(grown) KiB; replies \(names)")
    }
}
