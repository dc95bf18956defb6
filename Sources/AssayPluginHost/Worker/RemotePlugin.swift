import CAssayABI

/// A plugin instance in a worker process: the calls the daemon makes on it, each one a
/// request to the worker (see `PluginWorker` for crashes, hangs and cancellation).
public final class RemotePlugin: Sendable {
    public let worker: PluginWorker
    let id: String
    let kind: PluginKind
    let hasViews: Bool
    let hasPromptCheck: Bool

    init(worker: PluginWorker, id: String, kind: PluginKind, hasViews: Bool, hasPromptCheck: Bool) {
        self.worker = worker
        self.id = id
        self.kind = kind
        self.hasViews = hasViews
        self.hasPromptCheck = hasPromptCheck
    }

    private func request(_ op: WorkerOp, prompt: String, images: [RGBImage], context: PluginCallContext) -> (WorkerRequest, [UInt8]) {
        var r = WorkerRequest(op: op)
        r.plugin = id
        r.jobID = context.jobID
        r.prompt = prompt
        r.widths = images.map(\.width)
        r.heights = images.map(\.height)
        var body = [UInt8]()
        body.reserveCapacity(images.reduce(0) { $0 + $1.pixels.count })
        for i in images { body += i.pixels }
        return (r, body)
    }

    func score(prompt: String, images: [RGBImage], context: PluginCallContext) throws -> (scores: [Double], details: [String?]) {
        let (r, body) = request(.score, prompt: prompt, images: images, context: context)
        let reply = try worker.call(r, body: body, pluginID: id, kind: kind, context: context)
        guard let scores = reply.scores, scores.count == images.count else {
            throw PluginCallError(pluginID: id, code: ASSAY_ERR_INTERNAL, message: "the worker returned \(reply.scores?.count ?? 0) scores for \(images.count) images")
        }
        return (scores, reply.texts ?? Array(repeating: nil, count: images.count))
    }

    func reflect(prompt: String, images: [RGBImage], details: [String?]?, history: [String?]?,
                 context: PluginCallContext) throws -> [String] {
        var (r, body) = request(.reflect, prompt: prompt, images: images, context: context)
        r.details = details
        r.history = history
        return try texts(try worker.call(r, body: body, pluginID: id, kind: kind, context: context), count: images.count)
    }

    func reflectViews(prompt: String, names: [String], images: [[RGBImage]], details: [String?]?,
                      context: PluginCallContext) throws -> [String] {
        var (r, body) = request(.reflectViews, prompt: prompt, images: images.flatMap { $0 }, context: context)
        r.viewNames = names
        r.details = details
        return try texts(try worker.call(r, body: body, pluginID: id, kind: kind, context: context), count: images.count)
    }

    func checkPrompt(_ prompt: String, context: PluginCallContext) throws -> Bool {
        guard hasPromptCheck else { return false }
        var r = WorkerRequest(op: .checkPrompt)
        r.plugin = id
        r.jobID = context.jobID
        r.prompt = prompt
        return try worker.call(r, body: [], pluginID: id, kind: kind, context: context).checked ?? false
    }

    private func texts(_ reply: WorkerReply, count: Int) throws -> [String] {
        let t = reply.texts ?? []
        guard t.count == count, t.allSatisfy({ $0 != nil }) else {
            throw PluginCallError(pluginID: id, code: ASSAY_ERR_INTERNAL, message: "the worker returned \(t.count) texts for \(count) items")
        }
        return t.map { $0! }
    }
}
