import AssayDBus
import Foundation
import XCTest

/// Which files the daemon reads as plugins (issue 11, part 2): regular files only, read
/// without blocking; with `--trusted-plugins` (always on with `--system`) only files that
/// root owns and only root can write, below folders that only root can write. And a
/// daemon out of descriptors answers with an error instead of dying (part 4).
final class PluginFileTests: XCTestCase {
    /// The plugin's row in ListPlugins (loaded or refused) for a file path.
    func row(_ d: Daemon, file: String) throws -> [String: DBusValue]? {
        try d.plugins().first { $0["path"]?.stringValue == file }
    }

    /// A FIFO or a device named like a plugin: the watcher's reload refuses it at once
    /// (before, opening the FIFO blocked the loader and every later reload), a rescan
    /// answers, and a daemon started with one in its folder serves.
    func testAFIFOOrADeviceNamedSoIsRefusedWithoutBlocking() throws {
        let dir = TestEnvironment.temporaryDirectory("fifo-plugins")
        try FileManager.default.copyItem(atPath: TestEnvironment.pluginsDirectory + "/example-model.so", toPath: dir + "/example-model.so")
        XCTAssertEqual(mkfifo(dir + "/early.so", 0o644), 0)
        let d = try Daemon(pluginDirectories: [dir]) // starts: the scan skips the FIFO
        XCTAssertNotNil(try d.plugin("example-model"))

        XCTAssertEqual(mkfifo(dir + "/x.so", 0o644), 0)
        XCTAssertEqual(symlink("/dev/zero", dir + "/zero.so"), 0)
        try d.waitPlugins { rows in
            rows.contains { $0["path"]?.stringValue == dir + "/x.so" && $0["state"]?.stringValue == "refused" }
                && rows.contains { $0["path"]?.stringValue == dir + "/zero.so" && $0["state"]?.stringValue == "refused" }
        }
        let fifo = try XCTUnwrap(row(d, file: dir + "/x.so"))["reason"]?.stringValue ?? ""
        XCTAssertTrue(fifo.contains("not a regular file") && fifo.contains("FIFO"), fifo)
        let device = try XCTUnwrap(row(d, file: dir + "/zero.so"))["reason"]?.stringValue ?? ""
        XCTAssertTrue(device.contains("character device"), device)

        // A rescan answers promptly and drops what is not a regular file.
        let started = Date()
        _ = try d.callManager("ReloadPlugins")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "ReloadPlugins took too long")
        XCTAssertNil(try row(d, file: dir + "/x.so"))
        XCTAssertNotNil(try d.plugin("example-model"))
        // Hot reload still works after it.
        try FileManager.default.copyItem(atPath: TestEnvironment.pluginsDirectory + "/example-verifier.so", toPath: dir + "/.tmp")
        XCTAssertEqual(rename(dir + "/.tmp", dir + "/example-verifier.so"), 0)
        try d.waitPlugins { $0.contains { $0["path"]?.stringValue == dir + "/example-verifier.so" && $0["state"]?.stringValue == "loaded" } }
        d.assertAlive()
    }

    /// A folder chain only root can write, for the trusted case: the first of a few
    /// system folders that qualifies on this machine.
    func trustedBase() throws -> String {
        guard getuid() == 0 else { throw XCTSkip("the ownership checks need root to make root- and nobody-owned files (CI runs as root)") }
        func trusted(_ path: String) -> Bool {
            var p = path
            while true {
                var st = stat()
                guard lstat(p, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_uid == 0, st.st_mode & 0o022 == 0 else { return false }
                if p == "/" { return true }
                p = (p as NSString).deletingLastPathComponent
                if p.isEmpty { p = "/" }
            }
        }
        for base in ["/run", "/var/lib", "/root", "/opt"] where trusted(base) {
            var template = Array("\(base)/assay-trust-test-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { continue }
            let path = String(cString: made)
            chmod(path, 0o755)
            addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
            return path
        }
        throw XCTSkip("no folder chain on this machine is owned and writable by root only")
    }

    /// A copy of `source`'s bytes as a new regular file (the example folder holds links into
    /// build/plugins, which must not be touched).
    func install(_ source: String, _ target: String, mode: mode_t = 0o644, owner: uid_t = 0) throws {
        try Data(contentsOf: URL(fileURLWithPath: source)).write(to: URL(fileURLWithPath: target))
        XCTAssertEqual(chmod(target, mode), 0)
        XCTAssertEqual(chown(target, owner, 0), 0)
    }

    /// `--trusted-plugins` (what `--system` turns on): a world-writable file, a file owned
    /// by another user, a file in a group-writable folder and a symlink into /tmp are each
    /// refused with a reason naming the problem; the root-owned file loads. Without the
    /// flag (a user's own daemon) the same files load: the policy is what refuses them.
    func testTrustedPluginsRefuseFilesAndFoldersOthersCanWrite() throws {
        let base = try trustedBase()
        let good = base + "/plugins", shared = base + "/shared"
        XCTAssertEqual(mkdir(good, 0o755), 0)
        XCTAssertEqual(mkdir(shared, 0o755), 0)
        XCTAssertEqual(chmod(shared, 0o775), 0) // group-writable (mkdir applies the umask)
        let p = TestEnvironment.pluginsDirectory, f = TestEnvironment.fixturesDirectory
        try install(p + "/example-model.so", good + "/model.so")
        try install(p + "/example-verifier.so", good + "/verifier.so", mode: 0o666)
        try install(p + "/example-sampler.so", good + "/sampler.so", owner: 65534)
        try install(p + "/example-reflector.so", shared + "/reflector.so")
        let outside = TestEnvironment.temporaryDirectory("untrusted") // below /tmp: others can write it
        try install(f + "/dropin_verifier.so", outside + "/dropin.so")
        XCTAssertEqual(symlink(outside + "/dropin.so", good + "/dropin.so"), 0)

        let strict = try Daemon(pluginDirectories: [good, shared], arguments: ["--trusted-plugins"])
        XCTAssertNotNil(try strict.plugin("example-model"), "the root-owned file in a root-only folder chain must load")
        func reason(_ file: String) throws -> String {
            let listing = (try? strict.plugins()) ?? []
            let r = try XCTUnwrap(try row(strict, file: file), "no row for \(file): \(listing)")
            XCTAssertEqual(r["state"]?.stringValue, "refused", "\(file): \(r)")
            return r["reason"]?.stringValue ?? ""
        }
        var why = try reason(good + "/verifier.so")
        XCTAssertTrue(why.contains("writable by group and others") && why.contains("666"), why)
        why = try reason(good + "/sampler.so")
        XCTAssertTrue(why.contains("owned by uid 65534, not root"), why)
        why = try reason(shared + "/reflector.so")
        XCTAssertTrue(why.contains("the folder \(shared) is writable by its group"), why)
        why = try reason(good + "/dropin.so")
        XCTAssertTrue(why.contains("writable by") && why.contains("/tmp"), "the link must be checked where it leads: \(why)")
        for id in ["example-colour", "example-heun", "example-reflector", "fixture-dropin"] {
            XCTAssertNil(try strict.plugin(id), "\(id) loaded from an untrusted file")
        }
        // Made trustworthy, the file loads on the next scan.
        XCTAssertEqual(chmod(good + "/verifier.so", 0o644), 0)
        _ = try strict.callManager("ReloadPlugins")
        XCTAssertNotNil(try strict.plugin("example-colour"))
        strict.stop()

        let relaxed = try Daemon(pluginDirectories: [good, shared])
        let rows = try relaxed.plugins()
        for id in ["example-model", "example-colour", "example-heun", "example-reflector", "fixture-dropin"] {
            XCTAssertNotNil(try relaxed.plugin(id), "\(id) must load without --trusted-plugins: \(rows)")
        }
    }

    /// Descriptor numbers the daemon has open now (procfs listing).
    func openDescriptors(_ pid: Int32) -> Set<Int> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap { Int($0) })
    }

    /// The daemon's descriptors once they stop changing (a finished job's files and timers
    /// settle for a moment after it ends).
    func settledDescriptors(_ pid: Int32) -> Set<Int> {
        var last = openDescriptors(pid)
        for _ in 0..<50 {
            usleep(150_000)
            let now = openDescriptors(pid)
            if now == last { return now }
            last = now
        }
        return last
    }

    /// OpenResult with the daemon's descriptors nearly or wholly used up: either open()
    /// fails, or it succeeds and libdbus cannot duplicate the descriptor into the reply.
    /// Before, the second case trapped and took the daemon down (any local user could do it
    /// through the system bus). Now each is an error for that call, named for what ran out;
    /// with descriptors back the same call works, and the daemon holds no more than before.
    func testOpenResultOutOfDescriptorsIsAnErrorNotACrash() throws {
        let d = try Daemon()
        let job = try d.submit("a red disk")
        XCTAssertEqual(try d.waitFinished(job), "done")
        func openResult() throws -> Int32 {
            let r = try d.client.call(destination: Daemon.name, path: job, interface: "io.assay.Job1", member: "OpenResult", [])
            guard case .unixFD(let fd)? = r.first else { throw TestFailure("no descriptor in \(r)") }
            return fd
        }
        close(try openResult()) // warm: whatever the first call opens for good is open now
        let baseline = settledDescriptors(d.pid)
        let firstFree = (0..<100_000).first { !baseline.contains($0) }!
        func limit(_ n: Int) {
            // The soft limit only: raising a hard limit again needs CAP_SYS_RESOURCE.
            let r = Shell.run(["prlimit", "--pid", "\(d.pid)", "--nofile=\(n):"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        // Limits from "nothing free" up: the daemon's other threads may hold a descriptor
        // for a moment, so which limit hits which case is not exact; each case must occur.
        var outcomes: [String: Int] = [:]
        for n in firstFree...(firstFree + 3) {
            limit(n)
            for _ in 0..<15 {
                do {
                    close(try openResult())
                    outcomes["descriptor", default: 0] += 1
                } catch let e as DBusError {
                    switch e.name {
                    case "org.freedesktop.DBus.Error.LimitsExceeded":
                        XCTAssertTrue(e.message.contains("cannot pass a file descriptor"), e.message)
                        outcomes["dup failed", default: 0] += 1
                    case "io.assay.Error.NotFound":
                        XCTAssertTrue(e.message.contains("Too many open files"), e.message)
                        outcomes["open failed", default: 0] += 1
                    default:
                        XCTFail("unexpected error \(e.name): \(e.message)")
                    }
                }
            }
            XCTAssertTrue(d.process.isRunning, "assayd died at a descriptor limit of \(n); log:\n\(d.log)")
        }
        XCTAssertGreaterThan(outcomes["dup failed"] ?? 0, 0, "the reply's descriptor never failed to duplicate: \(outcomes)")
        XCTAssertGreaterThan(outcomes["open failed"] ?? 0, 0, "\(outcomes)")
        limit(firstFree + 64)
        d.assertAlive()
        let fd = try openResult()
        var st = stat()
        XCTAssertEqual(fstat(fd, &st), 0)
        XCTAssertGreaterThan(st.st_size, 0)
        close(fd)
        let after = settledDescriptors(d.pid)
        let links = after.symmetricDifference(baseline).map { fd -> String in
            var buf = [CChar](repeating: 0, count: 512)
            let n = readlink("/proc/\(d.pid)/fd/\(fd)", &buf, 511)
            return "\(fd) -> " + (n > 0 ? String(cString: buf) : "closed")
        }
        XCTAssertEqual(after, baseline, "the daemon's descriptors changed: \(links)")
    }
}

/// Each plugin instance gets a host struct of its own (issue 11, part 4).
final class HostStructTests: XCTestCase {
    /// A verifier that writes zeros over the host struct it was lent: its job finishes, and
    /// so do later jobs of other plugins that call their host (the Heun sampler polls
    /// `is_cancelled` every step). With one shared struct the next such call jumped to
    /// NULL and took the daemon down.
    func testAPluginThatScribblesOverItsHostStructBreaksNoOtherPlugin() throws {
        let d = try Daemon(pluginDirectories: [TestEnvironment.pluginsDirectory, TestEnvironment.fixturesDirectory])
        let scribbled = try d.submit("a red disk", ["strategy": .string("best-of-n"), "n": .uint32(2), "steps": .uint32(4),
                                                    "verifiers": .strings(["fixture-scribbler"])])
        XCTAssertEqual(try d.waitFinished(scribbled), "done")
        XCTAssertEqual(try d.number(scribbled, "BestScore"), 0.5)
        for seed in [1, 2] as [UInt64] {
            let other = try d.submit("a red disk", ["sampler": .string("example-heun"), "steps": .uint32(6), "seed": .uint64(seed),
                                                    "strategy": .string("best-of-n"), "n": .uint32(2),
                                                    "verifiers": .strings(["example-colour"])])
            let state = try d.waitFinished(other)
            XCTAssertEqual(state, "done", (try? d.string(other, "Error")) ?? "")
        }
        let again = try d.submit("a blue disk", ["verifiers": .strings(["fixture-scribbler"]), "strategy": .string("best-of-n"),
                                                 "n": .uint32(2), "steps": .uint32(4)])
        XCTAssertEqual(try d.waitFinished(again), "done")
        d.assertAlive()
    }
}

/// A plugin whose init is slow holds back neither the bus name nor other plugin files
/// (issue 11, part 2): files load at once, each library on its own management thread.
final class SlowInitTests: XCTestCase {
    func testASlowInitHoldsBackNeitherTheBusNameNorOtherPlugins() throws {
        let dir = TestEnvironment.temporaryDirectory("slow-init")
        for (from, to) in [(TestEnvironment.fixturesDirectory + "/slow_init_verifier.so", "a-slow.so"),
                           (TestEnvironment.pluginsDirectory + "/example-model.so", "model.so")] {
            try Data(contentsOf: URL(fileURLWithPath: from)).write(to: URL(fileURLWithPath: dir + "/" + to))
        }
        let started = Date()
        let d = try Daemon(pluginDirectories: [dir], arguments: ["--plugin-load-wait-seconds", "0.5",
                                                                  "--plugin-option", "fixture-slow-init.delay_ms=4000"])
        let tookName = Date().timeIntervalSince(started)
        XCTAssertLessThan(tookName, 3.5, "the bus name waited for the slow init")
        // The model (sorted after the slow file) loaded meanwhile and serves jobs at once.
        let listing = (try? d.plugins()) ?? []
        XCTAssertNotNil(try d.plugin("example-model"), "\(listing)")
        XCTAssertNil(try d.plugin("fixture-slow-init"), "the slow plugin cannot be ready yet")
        let job = try d.submit("a red disk", ["steps": .uint32(4)])
        XCTAssertEqual(try d.waitFinished(job), "done")
        // A file dropped in during the slow init loads without waiting for it.
        let dropped = Date()
        try Data(contentsOf: URL(fileURLWithPath: TestEnvironment.pluginsDirectory + "/example-verifier.so"))
            .write(to: URL(fileURLWithPath: dir + "/.tmp"))
        XCTAssertEqual(rename(dir + "/.tmp", dir + "/verifier.so"), 0)
        try d.waitPlugins(timeout: 10) { $0.contains { $0["id"]?.stringValue == "example-colour" && $0["state"]?.stringValue == "loaded" } }
        XCTAssertNil(try d.plugin("fixture-slow-init"), "the dropped-in file waited for the slow one")
        XCTAssertLessThan(Date().timeIntervalSince(dropped), 2.5)
        // The slow one joins when its init returns.
        try d.waitPlugins(timeout: 15) { $0.contains { $0["id"]?.stringValue == "fixture-slow-init" && $0["state"]?.stringValue == "loaded" } }
        XCTAssertTrue(d.log.contains("still loading"), d.log)
    }
}
