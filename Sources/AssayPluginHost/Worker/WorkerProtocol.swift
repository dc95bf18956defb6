/// The requests a daemon sends a plugin worker, and the replies (JSON headers on a
/// `WorkerChannel`; images and plugin files travel as the message body).
///
/// One request at a time per worker: the daemon sends, then waits for the reply (or for
/// the worker to die, or for its watchdog). The worker never calls back.
enum WorkerOp: String, Codable {
    /// Body: the plugin file. Loads it with the daemon's own loader (same checks).
    case load
    /// Body: the images' pixels, back to back (RGB, stride = width * 3).
    case score, reflect, reflectViews = "reflect_views"
    case checkPrompt = "check_prompt"
    /// Attaches the shared arena (a size-sealed memfd) that model tensors go through.
    case arena
    /// Attaches the control page (a size-sealed memfd): word 0 is the cancel flag the
    /// daemon raises while a call runs, which the plugin sees through host->is_cancelled.
    case control
    /// Model calls: inputs and outputs in the arena at `offsets` (order per op, below).
    case modelEncode = "model_encode"                      // out: condition
    case modelEncodeReference = "model_encode_reference"   // body: the image; out: condition
    case modelVelocity = "model_velocity"                  // x, t, conditions, out v
    case modelDecode = "model_decode"                      // x, out rgb
    case blocksPrologue = "blocks_prologue"                // x, t, conditions, out hidden, out context
    case blocksBlock = "blocks_block"                      // hidden (in place), context
    case blocksEpilogue = "blocks_epilogue"                // hidden, context, out v
    /// A sampler's `advance`: x in and out at offsets[0]. While it runs, the worker sends
    /// the daemon the callbacks below (the sampler asking for model evaluations), each
    /// answered by a `WorkerReply` before the worker goes on; the last message is the
    /// advance's own reply. Arena: x, cb x, cb v, hidden, context, row list.
    case samplerAdvance = "sampler_advance"
    case callbackEvaluate = "cb_evaluate"       // cb x at t -> cb v
    case callbackPrologue = "cb_prologue"       // cb x at t -> hidden, context
    case callbackBlock = "cb_block"             // index: hidden in place, context
    case callbackBlockRows = "cb_block_rows"    // index, n rows listed: hidden in place, context
    case callbackEpilogue = "cb_epilogue"       // hidden, context -> cb v
}

/// What a sampler's worker needs to know of the model access the daemon lends it.
struct WorkerModelAccess: Codable {
    var batch: Int
    var channels: Int
    var height: Int
    var width: Int
    var nfePerEvaluation: Int
    var blocks: ModelBlocksInfo?
    var rows: Int
}

struct WorkerRequest: Codable {
    var op: WorkerOp
    var plugin: String = ""
    var jobID: UInt64 = 0
    var prompt: String = ""
    /// Image sizes, in body order.
    var widths: [Int] = []
    var heights: [Int] = []
    var details: [String?]?
    var history: [String?]?
    var viewNames: [String]?
    // model calls
    var n: Int = 0
    var index: Int = 0
    var instruction: String = ""
    var offsets: [Int] = []
    // sampler calls
    var from: Double = 0
    var to: Double = 0
    var t: Float = 0
    var access: WorkerModelAccess?
    var samplerOptions: [WorkerOption]?
    // control
    /// The worker's data limit in bytes (RLIMIT_DATA: heap and private mappings), or nil.
    var memoryLimit: Int?
    // load
    var path: String = ""
    var sha256: String = ""
    var generation: UInt64 = 0
    var privateDirectory: String = ""
    var options: [String: [WorkerOption]] = [:]
}

struct WorkerOption: Codable {
    var key: String
    var value: PluginOption
}

/// One instance the worker made, as the daemon shows it.
struct WorkerInstance: Codable {
    var id: String
    var name: String
    var version: String
    var summary: String
    var kind: PluginKind
    var hasViews: Bool
    var hasPromptCheck: Bool
    /// For a model: what the daemon needs to know without calling it.
    var model: WorkerModel?
}

struct WorkerModel: Codable, Sendable {
    var info: ModelInfo
    var latentSpace: String?
    var blocks: ModelBlocksInfo?
    var reference: WorkerReferenceInfo?
}

struct WorkerReferenceInfo: Codable, Sendable {
    var imageWidth: Int
    var imageHeight: Int
    var maxInstructionWords: Int
}

struct WorkerRefusal: Codable {
    var id: String
    var kind: PluginKind?
    var version: String
    var reason: String
}

struct WorkerReply: Codable {
    /// ASSAY_OK, or the plugin's (or the loader's) error code.
    var code: Int32 = 0
    var message: String?
    var scores: [Double]?
    var texts: [String?]?
    var checked: Bool?
    // load
    var abiVersion: String?
    var instances: [WorkerInstance]?
    var refused: [WorkerRefusal]?
}
