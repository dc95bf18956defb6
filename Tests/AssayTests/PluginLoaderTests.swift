import AssayPluginHost
import XCTest

/// The loader, in process, against real .so files built by the build.
final class PluginLoaderTests: XCTestCase {
    var directory = ""

    override func setUp() {
        _ = TestEnvironment.pluginsBuilt
        directory = TestEnvironment.temporaryDirectory("loader")
    }

    func registry(_ files: [String], events: Locked<[RegistryEvent]> = Locked([])) throws -> PluginRegistry {
        for f in files {
            let src = f.hasPrefix("/") ? f : TestEnvironment.fixturesDirectory + "/" + f
            try FileManager.default.copyItem(atPath: src, toPath: directory + "/" + (f as NSString).lastPathComponent)
        }
        let loader = try DlopenPluginLoader(privateDirectory: directory + "/.private")
        let r = PluginRegistry(directories: [directory], loader: loader, onEvent: { e in events.withLock { $0.append(e) } })
        r.scanAll()
        return r
    }

    func refusal(_ r: PluginRegistry, _ file: String) -> String {
        r.records().first { $0.path.hasSuffix("/" + file) && $0.state == .refused }?.reason ?? "(not refused)"
    }

    func testWrongMajorIsRefusedWithAReason() throws {
        let events = Locked<[RegistryEvent]>([])
        let r = try registry(["bad_major.so"], events: events)
        XCTAssertTrue(refusal(r, "bad_major.so").contains("ABI version 99."), refusal(r, "bad_major.so"))
        XCTAssertTrue(refusal(r, "bad_major.so").contains("major must be 1"))
        XCTAssertNil(r.instance(id: "fixture-bad-major"))
        XCTAssertTrue(events.current.contains { if case .loadFailed(let p, _) = $0 { return p.hasSuffix("bad_major.so") }; return false })
    }

    func testMissingEntrySymbolGarbageAndTruncatedFilesAreRefused() throws {
        try Data((0..<4096).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: directory + "/garbage.so"))
        let model = try Data(contentsOf: URL(fileURLWithPath: TestEnvironment.pluginsDirectory + "/example-model.so"))
        try model.prefix(model.count / 2).write(to: URL(fileURLWithPath: directory + "/truncated.so"))
        try Data().write(to: URL(fileURLWithPath: directory + "/empty.so"))
        let r = try registry(["no_entry.so"])
        XCTAssertTrue(refusal(r, "no_entry.so").contains("no `assay_entry` symbol"), refusal(r, "no_entry.so"))
        XCTAssertTrue(refusal(r, "garbage.so").contains("not an ELF"), refusal(r, "garbage.so"))
        XCTAssertTrue(refusal(r, "empty.so").contains("not an ELF"), refusal(r, "empty.so"))
        XCTAssertTrue(refusal(r, "truncated.so").contains("truncated"), refusal(r, "truncated.so"))
        XCTAssertTrue(r.instances(kind: .model).isEmpty)
    }

    func testBadDescriptorAndFailingInitAreRefusedAndOthersStillLoad() throws {
        let r = try registry(["bad_descriptor.so", "init_fails.so", "two_plugins.so"])
        XCTAssertTrue(refusal(r, "bad_descriptor.so").contains("no id"), refusal(r, "bad_descriptor.so"))
        XCTAssertTrue(refusal(r, "init_fails.so").contains("weights file missing"), refusal(r, "init_fails.so"))
        XCTAssertEqual(r.instances(kind: .verifier).map(\.id), ["fixture-a", "fixture-b"])
    }

    func testDuplicateIdIsRefusedNamingTheOwner() throws {
        let r = try registry([TestEnvironment.pluginsDirectory + "/example-verifier.so"])
        try FileManager.default.copyItem(atPath: TestEnvironment.pluginsDirectory + "/example-verifier.so", toPath: directory + "/copy.so")
        r.reload(path: directory + "/copy.so")
        let reason = refusal(r, "copy.so")
        XCTAssertTrue(reason.contains("already provided by") && reason.contains("example-verifier.so"), reason)
        XCTAssertEqual(r.instance(id: "example-colour")?.library.path, directory + "/example-verifier.so")
    }

    func testTheModelInterfaceWorksThroughTheHost() throws {
        let r = try registry([TestEnvironment.pluginsDirectory + "/example-model.so"])
        let model = try XCTUnwrap(r.instance(id: "example-model").flatMap(ModelPlugin.init))
        XCTAssertEqual(model.info.channels, 3)
        let ctx = PluginCallContext(jobID: 1)
        let cond = try model.encode("a red disk", context: ctx)
        XCTAssertEqual(cond.count, model.info.conditionSize)
        XCTAssertThrowsError(try model.encode(String(repeating: "x", count: 300), context: ctx)) { error in
            let e = error as? PluginCallError
            XCTAssertEqual(e?.isInvalidArgument, true)
            XCTAssertFalse(e?.message.isEmpty ?? true, "the plugin's reason must come through report_error")
        }
    }
}
