import CAssayABI

/// The host side of `assay_model_access_t`: how a sampler reaches the model. The core
/// supplies `evaluate`, which counts NFEs and may refuse.
public final class ModelAccess {
    public let batch: Int
    public let channels: Int
    public let height: Int
    public let width: Int
    public let nfePerEvaluation: Int
    /// Returns an ABI result code (ASSAY_OK, ASSAY_ERR_BUDGET, ...).
    let evaluate: (UnsafePointer<Float>, Float, UnsafeMutablePointer<Float>) -> Int32

    public init(batch: Int, channels: Int, height: Int, width: Int, nfePerEvaluation: Int,
                evaluate: @escaping (UnsafePointer<Float>, Float, UnsafeMutablePointer<Float>) -> Int32) {
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
        self.nfePerEvaluation = nfePerEvaluation
        self.evaluate = evaluate
    }

    public static let ok = ASSAY_OK
    public static let refusedBudget = ASSAY_ERR_BUDGET
    public static let refusedCancelled = ASSAY_ERR_CANCELLED
    public static let failed = ASSAY_ERR_INTERNAL
}

/// A sampler plugin instance seen through `assay.sampler/1`.
public struct SamplerPlugin: Sendable {
    public let instance: PluginInstance
    private var ext: UnsafePointer<assay_sampler_ext_t> { instance.interface.assumingMemoryBound(to: assay_sampler_ext_t.self) }

    public init?(_ instance: PluginInstance) {
        guard instance.kind == .sampler else { return nil }
        self.instance = instance
    }

    /// Integrates `x` in place from `from` to `to` through `access`.
    public func advance(_ x: inout [Float], from: Double, to: Double, access: ModelAccess,
                        options: [(String, PluginOption)], context: PluginCallContext) throws {
        var raw = assay_model_access_t(
            host_data: Unmanaged.passUnretained(access).toOpaque(),
            batch: UInt32(access.batch), channels: UInt32(access.channels), height: UInt32(access.height),
            width: UInt32(access.width), nfe_per_evaluation: UInt32(access.nfePerEvaluation),
            evaluate: { model, x, t, v in
                guard let model, let x, let v, let data = model.pointee.host_data else { return ASSAY_ERR_INVALID_ARGUMENT }
                return Unmanaged<ModelAccess>.fromOpaque(data).takeUnretainedValue().evaluate(x, t, v)
            },
            get_extension: { _, _ in nil })
        let r = withExtendedLifetime(access) {
            context.withCall { call in
                withCOptions(options) { opts in
                    x.withUnsafeMutableBufferPointer { buf in
                        ext.pointee.advance(instance.plugin, call, &raw, buf.baseAddress, Float(from), Float(to), opts)
                    }
                }
            }
        }
        try context.check(r, plugin: instance.id, operation: "advance")
    }
}
