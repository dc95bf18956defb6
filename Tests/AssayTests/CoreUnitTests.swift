@testable import AssayCore
import AssayPluginHost
import XCTest

final class CoreUnitTests: XCTestCase {
    func testSHA256StandardVectors() {
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testRanksAverageTiesAndHigherIsBetter() {
        XCTAssertEqual(Ranking.ranks([0.1, 0.9, 0.5]), [3, 1, 2])
        XCTAssertEqual(Ranking.ranks([1, 1, 0]), [1.5, 1.5, 3])
    }

    func testEnsembleUsesMeanRankNotRawScores() {
        // Verifier A has a huge scale and prefers candidate 0 by a little; verifier B and C
        // prefer candidate 1. Averaging raw scores would pick 0; mean rank picks 1.
        let a = [1000.0, 999.0, 0.0]
        let b = [0.1, 0.9, 0.5]
        let c = [0.2, 0.8, 0.7]
        let means = Ranking.meanRanks([a, b, c])
        XCTAssertEqual(Ranking.best(meanRanks: means, primaryScores: a), 1)
    }

    func testNoiseIsReproducibleAndStandardNormal() {
        let x = NoiseSource.gaussian(seed: 42, count: 100_000)
        XCTAssertEqual(x, NoiseSource.gaussian(seed: 42, count: 100_000))
        XCTAssertNotEqual(x, NoiseSource.gaussian(seed: 43, count: 100_000))
        let mean = x.reduce(0, +) / Float(x.count)
        let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(x.count)
        XCTAssertEqual(mean, 0, accuracy: 0.02)
        XCTAssertEqual(variance, 1, accuracy: 0.02)
        XCTAssertNotEqual(NoiseSource.candidateSeed(jobSeed: 1, index: 0), NoiseSource.candidateSeed(jobSeed: 1, index: 1))
    }

    func testScheduleEndpointsAndShift() {
        let uniform = Schedule.times(steps: 4, shift: 1)
        XCTAssertEqual(uniform, [1, 0.75, 0.5, 0.25, 0])
        let shifted = Schedule.times(steps: 4, shift: 3)
        XCTAssertEqual(shifted.first, 1)
        XCTAssertEqual(shifted.last, 0)
        XCTAssertGreaterThan(shifted[2], 0.5) // shift > 1 spends more steps at high noise
    }

    func testOptionsRejectWrongTypesUnknownKeysAndAbsurdValues() {
        func message(_ raw: [String: OptionValue]) -> String? {
            do { _ = try JobOptions.parse(raw); return nil } catch let e as AssayError { return e.message } catch { return "\(error)" }
        }
        XCTAssertEqual(message(["n": .string("8")]), "option 'n' must be an unsigned integer (u), got a string (s)")
        XCTAssertTrue(message(["nn": .unsigned(1)])!.contains("unknown option 'nn'"))
        XCTAssertTrue(message(["budget_nfe": .unsigned(UInt64(JobOptions.Limits.maxBudgetNFE) + 1)])!.contains("between 1 and"))
        XCTAssertTrue(message(["budget_nfe": .unsigned(0)])!.contains("between 1 and"))
        XCTAssertTrue(message(["guidance": .double(.nan)])!.contains("guidance"))
        XCTAssertTrue(message(["verifiers": .strings([])])!.contains("empty"))
        XCTAssertTrue(message(["verifiers": .strings(["a", "a"])])!.contains("twice"))
        XCTAssertTrue(message(["sampler_options": .dictionary(["x": .strings(["a"])])])!.contains("sampler_options['x']"))
        XCTAssertNil(message(["n": .unsigned(8), "seed": .unsigned(UInt64.max), "guidance": .double(2.5),
                              "verifiers": .strings(["a", "b"]), "save_candidates": .bool(true)]))
        XCTAssertThrowsError(try JobOptions.validatePrompt("   "))
        XCTAssertThrowsError(try JobOptions.validatePrompt(String(repeating: "a", count: 5000)))
    }

    func testMeterRefusesTheCallThatWouldCrossTheBudget() throws {
        let meter = BudgetMeter(nfeBudget: 10, verifierBudget: 3, deadlineMs: nil, isCancelled: { false })
        try meter.reserveNFE(6)
        XCTAssertThrowsError(try meter.reserveNFE(6)) { XCTAssertEqual(($0 as? BudgetRefusal)?.reason, .budget) }
        XCTAssertEqual(meter.nfeUsed, 6, "a refused reservation must not count")
        try meter.reserveNFE(4)
        XCTAssertEqual(meter.nfeUsed, 10)
        try meter.reserveVerifierCalls(3)
        XCTAssertThrowsError(try meter.reserveVerifierCalls(1))
        XCTAssertEqual(meter.firstRefusal, .budget)
    }

    func testMeterStopsOnCancelAndDeadline() {
        let cancelled = BudgetMeter(nfeBudget: 100, verifierBudget: nil, deadlineMs: nil, isCancelled: { true })
        XCTAssertThrowsError(try cancelled.reserveNFE(1)) { XCTAssertEqual(($0 as? BudgetRefusal)?.reason, .cancelled) }
        let late = BudgetMeter(nfeBudget: 100, verifierBudget: nil, deadlineMs: 1, isCancelled: { false })
        usleep(5_000)
        XCTAssertThrowsError(try late.reserveNFE(1)) { XCTAssertEqual(($0 as? BudgetRefusal)?.reason, .deadline) }
        XCTAssertEqual(late.nfeUsed, 0)
    }

    func testSchedulerServesClientsInTurnAndCapsEachClient() throws {
        let order = Locked<[String]>([])
        let gate = Locked(false)
        let scheduler = Scheduler(limits: .init(maxConcurrentJobs: 1, maxQueued: 10, maxQueuedPerClient: 3)) { job in
            while !gate.current { usleep(1000) }
            order.withLock { $0.append(job.client + job.prompt) }
        }
        let plan = JobPlan(strategy: "single", strategyOptions: StrategyOptions(), model: "m", models: ["base": "m"],
                           verifiers: [], sampler: nil, samplerOptions: [:], seed: 1,
                           steps: 1, guidance: 1, negativePrompt: nil, budgetNFE: 1, deadlineMs: nil,
                           budgetVerifierCalls: nil, saveCandidates: false)
        var id: UInt64 = 0
        func job(_ client: String, _ p: String) -> Job { id += 1; return Job(id: id, prompt: p, plan: plan, client: client) }
        for p in ["1", "2", "3"] { try scheduler.enqueue(job("a", p)) }
        XCTAssertThrowsError(try scheduler.enqueue(job("a", "4"))) { XCTAssertEqual(($0 as? AssayError)?.name, "io.assay.Error.QueueFull") }
        try scheduler.enqueue(job("b", "1"))
        try scheduler.enqueue(job("b", "2"))
        scheduler.start()
        gate.withLock { $0 = true }
        let deadline = Date().addingTimeInterval(10)
        while order.current.count < 5 && Date() < deadline { usleep(1000) }
        scheduler.shutdown()
        XCTAssertEqual(order.current, ["a1", "b1", "a2", "b2", "a3"])
    }
}

/// The job registry's retention: time only, no count cap, restored jobs with what is left.
final class JobRegistryTests: XCTestCase {
    func testFinishedJobsLeaveAfterTheirRetentionAndNotBefore() {
        var now = 100.0
        let r = JobRegistry<String>(retention: 10, clock: { now })
        for id in 1...1000 as ClosedRange<UInt64> { r.add(id, "job \(id)") }
        for id in 1...1000 as ClosedRange<UInt64> { r.ended(id) }   // all end at t = 100
        r.add(1001, "running")
        now = 109.9
        XCTAssertEqual(r.ids.count, 1001, "a job left before its retention (or a count cap dropped it)")
        r.ended(7, after: 0.05)                                      // e.g. a restored job with little left
        now = 109.96
        XCTAssertNil(r[7])
        XCTAssertEqual(r[8], "job 8")
        now = 110
        XCTAssertEqual(r.expire().count, 999)
        XCTAssertEqual(r.ids, [1001], "a running job never expires")
        XCTAssertEqual(r.all, ["running"])
    }
}
