import AssayCore
import AssayDBus
import AssayPluginHost
import AssayWire
import Dispatch
import Glibc
import Logging

/// `Score(s prompt, ah images, as verifiers, a{sv} options) → aa{sv}` on the manager:
/// verifiers on any image, outside a job. Caps and their reasons: ``ScoreLimits``.
///
/// Threading: the call is checked on the bus thread (signature, caps, verifiers, the
/// prompt against each verifier's grammar: all cheap), then the descriptors are read,
/// decoded and scored on a worker queue (verifier `score` is a [job-thread] function),
/// and the reply is posted back to the bus thread. Every descriptor received is closed on
/// every path, refused calls included.
extension AssayService {
    static let scoreQueue = DispatchQueue(label: "io.assay.score", attributes: .concurrent)

    func handleScore(_ msg: DBusMessage) throws -> DBusMessage? {
        // Take the descriptors first, so that no path below can forget one.
        let args = msg.arguments()
        let fds = args.flatMap(\.unixFDs)
        var handedOff = false
        defer { if !handedOff { for fd in fds where fd >= 0 { close(fd) } } }

        // The signature was checked against the declaration (managerBus) before this runs.
        guard args.count == 4, case .string(let prompt) = args[0], case .array("h", let items) = args[1],
              case .array("s", let ids) = args[2], let options = JobOptionsWire.decode(args[3]) else {
            throw AssayError.invalidArgument("Score takes (s prompt, ah images, as verifiers, a{sv} options)")
        }
        if let key = options.keys.sorted().first {
            throw AssayError.invalidArgument("unknown option '\(key)'; Score takes no options yet (pass {})")
        }
        let limits = config.scoreLimits
        guard !items.isEmpty else { throw AssayError.invalidArgument("Score needs at least one image (one PNG descriptor each)") }
        guard items.count <= limits.maxImagesPerCall else {
            throw AssayError.invalidArgument("Score got \(items.count) images; at most \(limits.maxImagesPerCall) are accepted in one call: send them in several calls")
        }
        let verifierIDs = ids.compactMap(\.stringValue)
        let verifiers = try planner.scoringVerifiers(prompt: prompt, requested: verifierIDs).compactMap(VerifierPlugin.init)

        let client = clientKey(msg)
        let mine = scoreInFlight[client] ?? 0
        guard mine < limits.maxInFlightPerClient else {
            throw AssayError.queueFull("you already have \(mine) Score calls in progress, the per-client maximum: wait for their replies")
        }
        let total = scoreInFlight.values.reduce(0, +)
        guard total < limits.maxInFlight else {
            throw AssayError.queueFull("the daemon is already scoring \(total) calls, its maximum: try again shortly")
        }
        scoreInFlight[client] = mine + 1
        handedOff = true

        let imageFDs = items.map { v -> Int32 in if case .unixFD(let fd) = v { return fd } else { return -1 } }
        let loopRef = loop
        let counter = scoreCallsCounter
        let log = logger, startNs = DispatchTimeClock.now(), names = verifiers.map(\.instance.id).joined(separator: ",")
        Self.scoreQueue.async { [weak self] in
            let outcome: Result<DBusValue, DBusError>
            do {
                let files: [[UInt8]]
                do {
                    defer { for fd in fds where fd >= 0 { close(fd) } }
                    let deadline = DispatchTimeClock.now() + UInt64(limits.readTimeoutMs) * 1_000_000
                    var total = 0
                    files = try imageFDs.enumerated().map { i, fd in
                        let bytes = try ImageScorer.readDescriptor(fd, index: i, maxBytes: limits.maxBytesPerImage, deadlineNs: deadline)
                        total += bytes.count
                        guard total <= limits.maxBytesPerCall else {
                            throw AssayError.invalidImage("the images add up to more than \(limits.maxBytesPerCall) bytes (at image \(i)); send fewer in one call")
                        }
                        return bytes
                    }
                }
                let images = try ImageScorer.decode(files, limits: limits)
                let meter = BudgetMeter(nfeBudget: 0, verifierBudget: nil, deadlineMs: nil, isCancelled: { false })
                let results: [ImageScore]
                do {
                    defer { counter.withLock { $0 += UInt64(meter.verifierCalls) } }
                    results = try ImageScorer.score(prompt: prompt, images: images, verifiers: verifiers,
                                                    meter: meter, context: PluginCallContext(jobID: 0))
                }
                outcome = .success(.array(elementSignature: "a{sv}", results.enumerated().map { i, s in
                    .vardict([
                        "index": .uint32(UInt32(i)), "width": .uint32(UInt32(s.width)), "height": .uint32(UInt32(s.height)),
                        "scores": .dictionary(keySignature: "s", valueSignature: "d",
                                              s.scores.sorted { $0.key < $1.key }.map { (.string($0.key), .double($0.value)) }),
                        "details": .dictionary(keySignature: "s", valueSignature: "s",
                                               s.details.sorted { $0.key < $1.key }.map { (.string($0.key), .string($0.value)) }),
                    ])
                }))
            } catch let e as AssayError {
                outcome = .failure(DBusError(name: e.name, message: e.message))
            } catch {
                outcome = .failure(DBusError(name: "io.assay.Error.Failed", message: "\(error)"))
            }
            var meta: Logger.Metadata = ["client": "\(client)", "images": "\(imageFDs.count)", "verifiers": "\(names)",
                                         "ms": "\(Double(DispatchTimeClock.now() - startNs) / 1e6)"]
            if case .failure(let e) = outcome { meta["error"] = "\(e.name): \(e.message)" }
            log.info("score", metadata: meta)
            // Messages are made and sent on the bus thread only.
            loopRef.post {
                if let self {
                    let left = (self.scoreInFlight[client] ?? 1) - 1
                    self.scoreInFlight[client] = left > 0 ? left : nil
                }
                guard !msg.noReplyExpected else { return }
                switch outcome {
                case .success(let value):
                    let r = msg.makeReturn()
                    r.append(value)
                    loopRef.connection.send(r)
                case .failure(let e):
                    loopRef.connection.send(msg.makeError(e))
                }
            }
        }
        return nil
    }
}
