import CAssayABI
import Dispatch
import FoundationEssentials
import Glibc
import Logging

extension PluginKind: Codable {}

/// The plugin worker process: `assayd --plugin-worker` with its end of the channel on
/// descriptor 3. It loads one plugin file with the daemon's own loader (every check the
/// daemon makes in process happens here, in a process whose crash costs nothing) and then
/// serves calls one at a time until the channel closes. It ends with the daemon, even in
/// the middle of a stuck plugin call, so an abandoned worker never outlives it.
public enum PluginWorkerMain {
    public static let flag = "--plugin-worker"
    /// The environment variable through which the daemon gives its workers its log level.
    public static let logLevelVariable = "ASSAY_WORKER_LOG_LEVEL"
    static let channelFD: Int32 = 3

    public static func run() -> Never {
        // The daemon's end of the channel closes when it dies, which ends the loop below;
        // a worker stuck in a plugin call notices a new parent instead (PR_SET_PDEATHSIG
        // would fire when the daemon *thread* that spawned it ends, not the daemon).
        let parent = getppid()
        if parent == 1 { _exit(0) }
        // Plugin log lines go where the daemon's go (its stderr, the journal under systemd).
        let level = getenv(logLevelVariable).flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .info
        LoggingSystem.bootstrap {
            var h = StreamLogHandler.standardError(label: $0)
            h.logLevel = level
            return h
        }
        let watch = DispatchSource.makeTimerSource(queue: .global())
        watch.schedule(deadline: .now() + 0.5, repeating: 0.5)
        watch.setEventHandler { if getppid() != parent { _exit(0) } }
        watch.resume()
        signal(SIGPIPE, SIG_IGN)
        let channel = WorkerChannel(fd: channelFD)
        var instances: [String: PluginInstance] = [:]
        var file: LoadedFile?
        var arena: SharedArena?
        var control: SharedArena?
        while true {
            let message: (header: [UInt8], body: [UInt8], attached: Int32?)
            do { message = try channel.receiveKeeping() } catch { _exit(0) }
            var reply = WorkerReply()
            do {
                let request = try JSONDecoder().decode(WorkerRequest.self, from: Data(message.header))
                if request.op == .arena {
                    guard let fd = message.attached else { throw WorkerError.io("no arena descriptor") }
                    arena = nil
                    arena = try SharedArena(received: fd)
                } else if request.op == .control {
                    guard let fd = message.attached else { throw WorkerError.io("no control descriptor") }
                    control = try SharedArena(received: fd)
                    if let limit = request.memoryLimit {
                        // A plugin that allocates past it gets NULL (or the worker dies), not the
                        // machine's memory: its call fails, the daemon and other workers go on.
                        var l = rlimit(rlim_cur: rlim_t(limit), rlim_max: rlim_t(limit))
                        guard setrlimit(__rlimit_resource_t(RLIMIT_DATA.rawValue), &l) == 0 else {
                            throw WorkerError.io("cannot set the memory limit: \(String(cString: strerror(errno)))")
                        }
                    }
                } else if let fd = message.attached {
                    close(fd)
                    throw WorkerError.io("an unexpected descriptor")
                } else if request.op == .load {
                    guard file == nil else { throw WorkerError.io("a worker loads one file") }
                    let options = request.options
                    let loader = try DlopenPluginLoader(privateDirectory: request.privateDirectory, instanceOptions: { id in
                        (options[id] ?? []).map { ($0.key, $0.value) }
                    })
                    do {
                        let loaded = try loader.load(path: request.path, bytes: message.body, sha256: request.sha256,
                                                     generation: request.generation)
                        file = loaded
                        for i in loaded.instances { instances[i.id] = i }
                        reply.abiVersion = loaded.instances.first?.library.abiVersion
                        reply.instances = loaded.instances.map {
                            WorkerInstance(id: $0.id, name: $0.name, version: $0.version, summary: $0.summary, kind: $0.kind,
                                           hasViews: ReflectorPlugin($0)?.hasViews ?? false, hasPromptCheck: $0.hasPromptCheck,
                                           model: describeModel($0))
                        }
                        reply.refused = loaded.refused.map { WorkerRefusal(id: $0.id, kind: $0.kind, version: $0.version, reason: $0.reason) }
                    } catch let e as PluginLoadError {
                        reply.code = ASSAY_ERR_INVALID_ARGUMENT
                        reply.message = e.reason
                    }
                } else {
                    guard let instance = instances[request.plugin] else {
                        throw WorkerError.io("this worker has no plugin '\(request.plugin)'")
                    }
                    try serve(request, body: message.body, instance: instance, arena: arena, control: control, channel: channel,
                              into: &reply)
                }
            } catch let e as PluginCallError {
                reply.code = e.code
                reply.message = e.message
            } catch {
                reply.code = ASSAY_ERR_INTERNAL
                reply.message = "\(error)"
            }
            do { try channel.send(reply) } catch { _exit(0) }
        }
    }

    private static func images(_ r: WorkerRequest, _ body: [UInt8]) throws -> [RGBImage] {
        guard r.widths.count == r.heights.count else { throw WorkerError.io("image sizes do not pair up") }
        var out: [RGBImage] = []
        var off = 0
        for (w, h) in zip(r.widths, r.heights) {
            let n = w * h * 3
            guard w > 0, h > 0, off + n <= body.count else { throw WorkerError.io("the images do not fit the message") }
            out.append(RGBImage(width: w, height: h, pixels: Array(body[off..<off + n])))
            off += n
        }
        return out
    }

    private static func describeModel(_ i: PluginInstance) -> WorkerModel? {
        guard let m = ModelPlugin(i) else { return nil }
        return WorkerModel(info: m.info, latentSpace: i.latentSpaceID, blocks: ModelBlocks(m)?.info,
                           reference: ModelReference(m).map {
                               WorkerReferenceInfo(imageWidth: $0.imageWidth, imageHeight: $0.imageHeight,
                                                   maxInstructionWords: $0.maxInstructionWords)
                           })
    }

    private static func serve(_ r: WorkerRequest, body: [UInt8], instance: PluginInstance, arena: SharedArena?,
                              control: SharedArena?, channel: WorkerChannel, into reply: inout WorkerReply) throws {
        // The plugin's host->is_cancelled reads the daemon's flag in the control page.
        let flag = control.map { UInt(bitPattern: $0.base) } ?? 0 // the page outlives the call
        let context = PluginCallContext(jobID: r.jobID, isCancelled: {
            UnsafePointer<UInt32>(bitPattern: flag).map { $0.pointee != 0 } ?? false
        })
        func model() throws -> (ModelPlugin, SharedArena) {
            guard let m = ModelPlugin(instance) else { throw WorkerError.io("'\(r.plugin)' is not a model") }
            guard let arena else { throw WorkerError.io("no shared arena") }
            return (m, arena)
        }
        func blocks() throws -> (ModelBlocks, ModelInfo, SharedArena) {
            let (m, a) = try model()
            guard let b = ModelBlocks(m) else { throw WorkerError.io("'\(r.plugin)' has no blocks") }
            return (b, m.info, a)
        }
        func offset(_ k: Int) throws -> Int {
            guard k < r.offsets.count else { throw WorkerError.io("missing tensor offset \(k)") }
            return r.offsets[k]
        }
        let n = r.n
        guard n >= 0 && n <= 1 << 20 else { throw WorkerError.io("bad row count \(n)") }
        switch r.op {
        case .modelEncode:
            let (m, a) = try model()
            let e = try m.encode(r.prompt, context: context)
            try a.floats(at: try offset(0), count: e.count).update(from: e, count: e.count)
        case .modelEncodeReference:
            let (m, a) = try model()
            guard let ref = ModelReference(m) else { throw WorkerError.io("'\(r.plugin)' takes no reference image") }
            let image = try images(r, body)
            guard image.count == 1 else { throw WorkerError.io("one reference image expected") }
            let e = try ref.encode(r.prompt, instruction: r.instruction, image: image[0], context: context)
            try a.floats(at: try offset(0), count: e.count).update(from: e, count: e.count)
        case .modelVelocity:
            let (m, a) = try model()
            let ss = m.info.sampleSize, cs = m.info.conditionSize
            try m.velocity(n: n, x: try a.floats(at: try offset(0), count: n * ss), t: try a.floats(at: try offset(1), count: n),
                           conditions: try a.floats(at: try offset(2), count: n * cs),
                           out: try a.floats(at: try offset(3), count: n * ss), context: context)
        case .modelDecode:
            let (m, a) = try model()
            let ss = m.info.sampleSize, ib = m.info.imageWidth * m.info.imageHeight * 3
            let x = Array(UnsafeBufferPointer(start: try a.floats(at: try offset(0), count: n * ss), count: n * ss))
            let imgs = try m.decode(x, count: n, context: context)
            let out = try a.bytes(at: try offset(1), count: n * ib)
            for (k, img) in imgs.enumerated() { (out + k * ib).update(from: img.pixels, count: ib) }
        case .blocksPrologue:
            let (b, info, a) = try blocks()
            let ss = info.sampleSize, cs = info.conditionSize
            try b.prologue(n: n, x: try a.floats(at: try offset(0), count: n * ss), t: try a.floats(at: try offset(1), count: n),
                           conditions: try a.floats(at: try offset(2), count: n * cs),
                           hidden: try a.floats(at: try offset(3), count: n * b.info.hiddenSize),
                           context: try a.floats(at: try offset(4), count: n * b.info.contextSize), context: context)
        case .blocksBlock:
            let (b, _, a) = try blocks()
            guard r.index >= 0 && r.index < b.info.blockCount else { throw WorkerError.io("bad block index \(r.index)") }
            try b.block(r.index, n: n, hidden: try a.floats(at: try offset(0), count: n * b.info.hiddenSize),
                        context: try a.floats(at: try offset(1), count: n * b.info.contextSize), context: context)
        case .blocksEpilogue:
            let (b, info, a) = try blocks()
            try b.epilogue(n: n, hidden: try a.floats(at: try offset(0), count: n * b.info.hiddenSize),
                           context: try a.floats(at: try offset(1), count: n * b.info.contextSize),
                           v: try a.floats(at: try offset(2), count: n * info.sampleSize), context: context)
        case .samplerAdvance:
            guard let sampler = SamplerPlugin(instance) else { throw WorkerError.io("'\(r.plugin)' is not a sampler") }
            guard let acc = r.access, let arena else { throw WorkerError.io("a sampler call without its model access") }
            try advance(sampler, r, acc, arena: arena, channel: channel, context: context)
        case .arena, .control, .callbackEvaluate, .callbackPrologue, .callbackBlock, .callbackBlockRows, .callbackEpilogue:
            break
        case .score:
            guard let v = VerifierPlugin(instance) else { throw WorkerError.io("'\(r.plugin)' is not a verifier") }
            let (scores, details) = try v.score(prompt: r.prompt, images: try images(r, body), context: context)
            reply.scores = scores
            reply.texts = details
        case .reflect:
            guard let p = ReflectorPlugin(instance) else { throw WorkerError.io("'\(r.plugin)' is not a reflector") }
            reply.texts = try p.reflect(prompt: r.prompt, images: try images(r, body), details: r.details, history: r.history,
                                        context: context)
        case .reflectViews:
            guard let p = ReflectorPlugin(instance), let names = r.viewNames, !names.isEmpty else {
                throw WorkerError.io("'\(r.plugin)' cannot reflect on views")
            }
            let flat = try images(r, body)
            guard flat.count % names.count == 0 else { throw WorkerError.io("views do not divide the images") }
            let rows = stride(from: 0, to: flat.count, by: names.count).map { Array(flat[$0..<$0 + names.count]) }
            reply.texts = try p.reflectViews(prompt: r.prompt, names: names, images: rows, details: r.details, context: context)
        case .checkPrompt:
            reply.checked = try instance.checkPrompt(r.prompt, context: context)
        case .load:
            break
        }
    }

    /// A sampler's advance in the worker: the model access it gets forwards every
    /// evaluation (and block call) to the daemon through the channel and the arena, and
    /// waits for the answer, so NFEs are counted and refused by the daemon as before.
    private static func advance(_ sampler: SamplerPlugin, _ r: WorkerRequest, _ acc: WorkerModelAccess, arena: SharedArena,
                                channel: WorkerChannel, context: PluginCallContext) throws {
        let ss = acc.channels * acc.height * acc.width, n = acc.batch
        let hs = acc.rows * (acc.blocks?.hiddenSize ?? 0), cs = acc.rows * (acc.blocks?.contextSize ?? 0)
        guard r.offsets.count == 6 else { throw WorkerError.io("a sampler call needs 6 tensor offsets") }
        let xMain = try arena.floats(at: r.offsets[0], count: n * ss)
        let cbX = try arena.floats(at: r.offsets[1], count: n * ss), cbV = try arena.floats(at: r.offsets[2], count: n * ss)
        let hidden = try arena.floats(at: r.offsets[3], count: hs), ctx = try arena.floats(at: r.offsets[4], count: cs)
        let rowList = try arena.floats(at: r.offsets[5], count: acc.rows)
        /// Sends a callback and waits for the daemon's answer (an ABI result code). If the
        /// daemon is gone, so is this worker.
        func ask(_ op: WorkerOp, t: Float = 0, index: Int = 0, count: Int = 0) -> Int32 {
            var q = WorkerRequest(op: op)
            q.plugin = r.plugin
            q.t = t
            q.index = index
            q.n = count
            do {
                try channel.send(q)
                let m = try channel.receive()
                return try JSONDecoder().decode(WorkerReply.self, from: Data(m.header)).code
            } catch {
                _exit(0)
            }
        }
        var blocks: BlockAccess?
        if let b = acc.blocks {
            blocks = BlockAccess(info: b, rows: acc.rows, prologue: { x, t, h, c in
                cbX.update(from: x, count: n * ss)
                let code = ask(.callbackPrologue, t: t)
                if code == ASSAY_OK { h.update(from: hidden, count: hs); c.update(from: ctx, count: cs) }
                return code
            }, block: { index, h, c in
                hidden.update(from: h, count: hs)
                ctx.update(from: c, count: cs)
                let code = ask(.callbackBlock, index: index)
                if code == ASSAY_OK { h.update(from: hidden, count: hs) }
                return code
            }, blockRows: { index, list, h, c in
                hidden.update(from: h, count: hs)
                ctx.update(from: c, count: cs)
                let raw = UnsafeMutableRawPointer(rowList).assumingMemoryBound(to: UInt32.self)
                for (k, row) in list.enumerated() { raw[k] = row }
                let code = ask(.callbackBlockRows, index: index, count: list.count)
                if code == ASSAY_OK { h.update(from: hidden, count: hs) }
                return code
            }, epilogue: { h, c, v in
                hidden.update(from: h, count: hs)
                ctx.update(from: c, count: cs)
                let code = ask(.callbackEpilogue)
                if code == ASSAY_OK { v.update(from: cbV, count: n * ss) }
                return code
            })
        }
        let access = ModelAccess(batch: n, channels: acc.channels, height: acc.height, width: acc.width,
                                 nfePerEvaluation: acc.nfePerEvaluation, blocks: blocks, evaluate: { x, t, v in
            cbX.update(from: x, count: n * ss)
            let code = ask(.callbackEvaluate, t: t)
            if code == ASSAY_OK { v.update(from: cbV, count: n * ss) }
            return code
        })
        var x = Array(UnsafeBufferPointer(start: xMain, count: n * ss))
        try sampler.advance(&x, from: r.from, to: r.to, access: access,
                            options: (r.samplerOptions ?? []).map { ($0.key, $0.value) }, context: context)
        x.withUnsafeBufferPointer { xMain.update(from: $0.baseAddress!, count: n * ss) }
    }
}
